"""The config argument, the same on every subcommand: ``-c/--config CONFIG`` everywhere, the positional CONFIG
wherever it is the last positional (all but ``infer``), two different configs one line and exit code 2.

Parse-level (nothing is trained, rendered or served), plus ``config show`` and the console script run for real.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from lrm_dist.cli import build_parser, main

# Each subcommand that takes a config, with the arguments it needs besides the config.
COMMANDS = {
    "config show": ["config", "show"],
    "assets": ["assets"],
    "render": ["render"],
    "upscale": ["upscale", "in", "out"],
    "train": ["train"],
    "eval": ["eval", "--report-only"],
    "infer": ["infer", "chair.png", "-o", "out"],
    "serve": ["serve"],
    "run": ["run", "--stages", "assets"],
}
POSITIONAL = [name for name in COMMANDS if name != "infer"]  # infer's positionals are its images


@pytest.fixture
def configs(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("render:\n  views: 5\n")
    b.write_text("render:\n  views: 6\n")
    return str(a), str(b)


def test_every_subcommand_takes_a_config():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    with_config = {name for name, parser in sub.choices.items() if any(a.dest == "config" for a in parser._actions)}
    assert with_config | {"config show"} == set(COMMANDS)  # `config` itself has actions; `show` takes the config


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("flag", ["-c", "--config"])
def test_option_form_on_every_subcommand(name, flag):
    args = build_parser().parse_args([*COMMANDS[name], flag, "my.yaml", "--set", "render.views=3"])
    assert args.config == "my.yaml" and args.overrides == ["render.views=3"]
    assert build_parser().parse_args(COMMANDS[name]).config is None  # none named: the demo config


@pytest.mark.parametrize("name", POSITIONAL)
def test_positional_form_is_kept(name):
    argv = COMMANDS[name]
    args = build_parser().parse_args([*argv, "my.yaml", "--set", "render.views=3"])
    assert args.config == "my.yaml" and args.overrides == ["render.views=3"]
    same = build_parser().parse_args([*argv, "my.yaml", "-c", "./my.yaml"])  # named twice, the same file
    assert same.config == "./my.yaml"
    if name == "upscale":
        assert (args.in_dir, args.out_dir) == ("in", "out")


@pytest.mark.parametrize("name", COMMANDS)
def test_two_different_configs_are_one_line_and_exit_2(name, capsys):
    first = ["a.yaml"] if name in POSITIONAL else ["-c", "a.yaml"]  # infer: the option twice
    given = [*COMMANDS[name], *first, "-c", "b.yaml"]
    with pytest.raises(SystemExit) as done:
        main(given)
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert err.splitlines() == [f"lrm-dist {name}: error: two configs given (a.yaml and b.yaml): name one"]


@pytest.mark.parametrize("name", COMMANDS)
def test_help_shows_the_config_the_same_way(name, capsys):
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*COMMANDS[name][:2 if name == "config show" else 1], "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert done.value.code == 0
    assert out.startswith(f"usage: lrm-dist {name} [-h] [-c CONFIG] [--set KEY=VALUE] ")
    assert "-c CONFIG, --config CONFIG pipeline config YAML (default: the built-in demo" in out
    assert ("CONFIG the same as -c CONFIG" in out) == (name in POSITIONAL)


def test_config_show_prints_the_resolved_value_in_either_form(configs, capsys):
    a, _ = configs
    shown = []
    for argv in (["-c", a], ["--config", a], [a]):
        assert main(["config", "show", *argv, "--set", "render.resolution=99"]) == 0
        shown.append(capsys.readouterr().out)
    assert shown[0] == shown[1] == shown[2]
    lines = shown[0].splitlines()
    assert any(line.startswith("render.views ") and "= 5 " in line for line in lines)
    assert any(line.startswith("render.resolution ") and "= 99 " in line for line in lines)


def test_infer_refuses_a_config_in_the_image_slot(configs, tmp_path, capsys):
    a, _ = configs
    assert main(["infer", a, "-o", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.splitlines() == [f"lrm-dist infer: error: {a} is a config, not an image: pass it as -c {a}"]
    assert not (tmp_path / "out").exists()


def test_console_script(configs):
    a, b = configs

    def lrm_dist(*argv):
        return subprocess.run([sys.executable, "-m", "lrm_dist.cli", *argv], capture_output=True, text=True, timeout=120)

    shown = lrm_dist("config", "show", "-c", a, "--set", "render.views=7")
    assert shown.returncode == 0, shown.stderr
    assert any(line.startswith("render.views ") and "= 7 " in line for line in shown.stdout.splitlines())
    both = lrm_dist("run", a, "--config", b)
    assert both.returncode == 2 and both.stdout == ""
    assert both.stderr.splitlines() == [f"lrm-dist run: error: two configs given ({a} and {b}): name one"]
