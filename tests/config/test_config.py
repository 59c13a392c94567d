from pathlib import Path

import pytest

from lrm_dist.cli import main
from lrm_dist.config import ConfigError, dump_config, load_config, parse_overrides


def test_defaults_validate():
    cfg = load_config()
    assert cfg.workdir == "runs/default"
    assert cfg.render.views == 32
    assert cfg.assets.sources[0].kind == "procedural"


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("workdir: /tmp/x\nrender:\n  views: 4\n")
    cfg = load_config(path, ["render.views=8", "render.resolution=64", "seed=3"])
    assert (cfg.workdir, cfg.render.views, cfg.render.resolution, cfg.seed) == ("/tmp/x", 8, 64, 3)


def test_overrides_parse_yaml_values():
    assert parse_overrides(["a.b=1", "a.c=[1, 2]", "d=true", "e=x"]) == {"a": {"b": 1, "c": [1, 2]}, "d": True, "e": "x"}


@pytest.mark.parametrize(
    "override, needle",
    [
        ("render.views=abc", "render.views = 'abc'"),
        ("render.views=0", "render.views = 0"),
        ("render.nope=1", "render.nope"),
        ("render.engine=POVRAY", "render.engine = 'POVRAY'"),
    ],
)
def test_errors_name_key_and_value(override, needle):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert needle in str(err.value)


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="key.path=value"):
        parse_overrides(["render.views"])


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_unknown_category_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("assets:\n  sources:\n    - {kind: procedural, categories: [chair, lamp]}\n")
    with pytest.raises(ConfigError, match="'lamp'"):
        load_config(path)


def test_recipe_resolves_relative_to_config(tmp_path):
    (tmp_path / "recipe.yaml").write_text("sources:\n  - {kind: procedural, per_category: 2, categories: [bed]}\n")
    path = tmp_path / "c.yaml"
    path.write_text("assets:\n  recipe: recipe.yaml\n")
    cfg = load_config(path)
    assert cfg.assets.sources[0].per_category == 2 and cfg.assets.sources[0].categories == ["bed"]


def test_dump_round_trip(tmp_path):
    cfg = load_config(None, ["render.views=5"])
    path = tmp_path / "dump.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg


def test_repo_configs_and_recipes_validate():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for path in sorted((root / "configs").glob("*.yaml")):
        load_config(path)
    for path in sorted((root / "manifests").glob("*.yaml")):
        load_config(None, [f"assets.recipe={path}"])


def test_cli_reports_config_errors(capsys):
    assert main(["assets", "--set", "render.views=abc"]) == 2
    assert "render.views = 'abc'" in capsys.readouterr().err


@pytest.mark.parametrize("content, needle", [
    (b"workdir: \xff\xfe\n", "not UTF-8 text"),
    (b"workdir: [1,\n", "not valid YAML: expected the node content"),
])
def test_unreadable_config_files_are_one_line_naming_the_file(tmp_path, content, needle):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert needle in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("recipe, needle", [
    ("sources: [\n", "not valid YAML"),
    ("sources: [{kind: nope}]\n", "sources.0"),
])
def test_malformed_recipes_name_the_recipe(tmp_path, recipe, needle):
    (tmp_path / "rec.yaml").write_text(recipe)
    (tmp_path / "c.yaml").write_text("assets: {recipe: rec.yaml}\n")
    with pytest.raises(ConfigError, match=needle) as err:
        load_config(tmp_path / "c.yaml")
    assert "rec.yaml" in str(err.value)


def test_unparsable_override_value_names_the_override():
    with pytest.raises(ConfigError, match=r"override 'render.views=\[1,': the value is not valid YAML"):
        load_config(None, ["render.views=[1,"])


@pytest.mark.parametrize("workdir", ["", " "])
def test_an_empty_workdir_is_refused(workdir):
    with pytest.raises(ConfigError, match="workdir"):
        load_config(None, [f"workdir={workdir}"])


def test_config_show_lists_every_key_with_its_value_and_meaning(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: {max_steps: 77}\n")
    assert main(["config", "show", str(path), "--set", "render.views=5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    by_key = {line.split("=")[0].strip(): line for line in lines}
    assert by_key["train.max_steps"].split("=", 1)[1].split("#")[0].strip() == "77"
    assert by_key["render.views"].split("=", 1)[1].split("#")[0].strip() == "5"
    assert "# Optimizer steps of the whole run" in by_key["train.max_steps"]
    assert len(lines) > 150 and "train.loss.occupancy" in by_key


def test_version(capsys):
    from lrm_dist import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"lrm-dist {__version__}"


def test_python_dash_m_runs_the_same_cli():
    import subprocess
    import sys

    from lrm_dist import __version__

    done = subprocess.run([sys.executable, "-m", "lrm_dist", "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"lrm-dist {__version__}"
    bad = subprocess.run([sys.executable, "-m", "lrm_dist", "no-such-stage"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no-such-stage" in bad.stderr


def test_one_default_the_cli_without_a_config_runs_the_demo(capsys):
    from lrm_dist.config import DEFAULT_CONFIG

    assert (Path(__file__).resolve().parents[2] / "configs" / "default.yaml").resolve() == DEFAULT_CONFIG
    assert main(["config", "show"]) == 0
    shown = capsys.readouterr().out
    assert main(["config", "show", str(DEFAULT_CONFIG)]) == 0
    assert capsys.readouterr().out == shown
    assert any(line.split("=")[0].strip() == "train.max_steps" and "= 360 " in line for line in shown.splitlines())
