"""RunLayout: every stage's paths made once from the config, overrides applied, URLs kept as URLs."""

from __future__ import annotations

import dataclasses

import pytest

from lrm_dist.config import PipelineConfig, load_config
from lrm_dist.layout import RunLayout


def _cfg(workdir: str = "runs/x", **sections) -> PipelineConfig:
    return PipelineConfig.model_validate({"workdir": workdir, **sections})


def test_defaults_of_a_local_workdir():
    layout = _cfg("runs/x").layout()
    assert dataclasses.asdict(layout) == {
        "workdir": "runs/x",
        "assets_dir": "runs/x/assets",
        "assets_manifest": "runs/x/assets/assets.parquet",
        "meshes_dir": "runs/x/assets/meshes",
        "procedural_dir": "runs/x/assets/procedural",
        "render_dir": "runs/x/render",
        "render_manifest": "runs/x/render/render.parquet",
        "shard_index": "runs/x/render/shards.parquet",
        "shards_dir": "runs/x/render/shards",
        "train_dir": "runs/x/train",
        "train_config": "runs/x/train/lrm.config.yaml",
        "train_shards": "runs/x/render/shards",
        "train_storage": "runs/x/train/ray",
        "train_run_dir": "runs/x/train/ray/lrm",
        "train_tensorboard_dir": "runs/x/train/tensorboard/lrm",
        "model_dir": "runs/x/train/model",
        "eval_render_dir": "runs/x/render",
        "eval_assets_manifest": "runs/x/assets/assets.parquet",
        "eval_dir": "runs/x/eval",
        "eval_table": "runs/x/eval/eval.parquet",
        "eval_summary": "runs/x/eval/summary.parquet",
        "eval_provenance": "runs/x/eval/provenance.json",
        "eval_tensorboard_dir": "runs/x/eval/tensorboard",
        "report_dir": "runs/x/eval/report",
    }


def test_made_once_and_frozen():
    cfg = _cfg()
    layout = RunLayout.from_config(cfg)
    assert layout == cfg.layout()
    with pytest.raises(dataclasses.FrozenInstanceError):
        layout.render_dir = "elsewhere"  # type: ignore[misc]


def test_trailing_slash_and_absolute_workdir():
    layout = _cfg("/data/run/").layout()
    assert layout.assets_manifest == "/data/run/assets/assets.parquet"
    assert layout.model_dir == "/data/run/train/model"
    assert _cfg("/data/run/").stage_dir("render") == layout.render_dir == "/data/run/render"


@pytest.mark.parametrize(("override", "changed"), [
    ({"train": {"data": {"shards": "/data/s/*.tar"}}}, {"train_shards": "/data/s/*.tar"}),
    ({"train": {"storage_path": "/ray/store"}}, {"train_storage": "/ray/store", "train_run_dir": "/ray/store/lrm"}),
    ({"train": {"export_dir": "/models/m"}}, {"model_dir": "/models/m"}),
    ({"train": {"run_name": "r2"}}, {"train_config": "runs/x/train/r2.config.yaml", "train_run_dir": "runs/x/train/ray/r2",
                                     "train_tensorboard_dir": "runs/x/train/tensorboard/r2"}),
    ({"eval": {"render_dir": "/held/render"}}, {"eval_render_dir": "/held/render"}),
    ({"eval": {"assets_manifest": "/held/assets.parquet"}}, {"eval_assets_manifest": "/held/assets.parquet"}),
    ({"eval": {"out_dir": "/out/e1"}}, {"eval_dir": "/out/e1", "eval_table": "/out/e1/eval.parquet",
                                        "eval_summary": "/out/e1/summary.parquet",
                                        "eval_provenance": "/out/e1/provenance.json",
                                        "eval_tensorboard_dir": "/out/e1/tensorboard", "report_dir": "/out/e1/report"}),
])
def test_each_override_changes_only_its_paths(override, changed):
    default = dataclasses.asdict(_cfg().layout())
    layout = dataclasses.asdict(_cfg(**override).layout())
    assert {k: v for k, v in layout.items() if default[k] != v} == changed


def test_overrides_are_taken_as_written():
    """An override is used exactly as given (as the stages always did): no trailing slash stripped, no folding."""
    layout = _cfg(train={"export_dir": "s3://b/models/m/", "storage_path": "s3://b/ray"},
                  eval={"out_dir": "s3://b/evals/e/"}).layout()
    assert layout.model_dir == "s3://b/models/m/"
    assert layout.train_run_dir == "s3://b/ray/lrm"
    assert layout.eval_dir == "s3://b/evals/e/"
    assert layout.report_dir == "s3://b/evals/e/report"


def test_an_s3_workdir_gives_urls():
    layout = _cfg("s3://bucket/runs/x/").layout()
    for name, value in dataclasses.asdict(layout).items():
        if value is None:
            continue
        assert value.startswith("s3://bucket/runs/x"), (name, value)
        assert "s3:/b" not in value and "//" not in value.removeprefix("s3://"), (name, value)
    assert layout.shards_dir == "s3://bucket/runs/x/render/shards"
    assert layout.train_run_dir == "s3://bucket/runs/x/train/ray/lrm"
    assert layout.report_dir == "s3://bucket/runs/x/eval/report"


def test_the_default_config_file(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, [f"workdir={tmp_path}/w"])
    assert cfg.layout().assets_manifest == f"{tmp_path}/w/assets/assets.parquet"


def test_the_workdir_of_an_assets_manifest_inverts_the_layout_rule(tmp_path, monkeypatch):
    from lrm_dist.layout import workdir_of_assets_manifest

    monkeypatch.chdir(tmp_path)
    local = load_config(None, ["workdir=runs/x"]).layout()
    assert workdir_of_assets_manifest(local.assets_manifest) == str(tmp_path / "runs" / "x")  # absolute
    remote = load_config(None, ["workdir=s3://bucket/runs/x"]).layout()
    assert workdir_of_assets_manifest(remote.assets_manifest) == "s3://bucket/runs/x"
