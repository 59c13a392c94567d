"""``lrm-dist eval``, the config's checks, and which held-out assets the job picks (no Ray)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lrm_dist.cli import main
from lrm_dist.config import ConfigError, load_config
from lrm_dist.eval.stage import eval_hash, split_assets, resolved_settings


def test_cli_rebuilds_the_report(scored_eval, capsys):
    eval_dir, _ = scored_eval
    workdir = eval_dir.parent
    assert main(["eval", "--set", f"workdir={workdir}", "--set", "eval.report.image_size=64", "--report-only"]) == 0
    assert f"report: {eval_dir / 'report'}" in capsys.readouterr().out
    assert (eval_dir / "report" / "index.html").is_file()


def test_cli_without_a_model_is_a_one_line_error(eval_workdir, capsys):
    assert main(["eval", "--set", f"workdir={eval_workdir}"]) == 2
    err = capsys.readouterr().err
    assert "no model to evaluate" in err and err.count("\n") == 1


def test_config_checks_thresholds():
    cfg = load_config(None, ["eval.fscore_thresholds=[0.05, 0.01]"])
    assert cfg.eval.fscore_thresholds == [0.01, 0.05]
    with pytest.raises(ConfigError, match="fscore_thresholds"):
        load_config(None, ["eval.fscore_thresholds=[0.01, -1]"])
    with pytest.raises(ConfigError, match="eval.n_points"):
        load_config(None, ["eval.n_points=10"])
    with pytest.raises(ConfigError, match="eval.categories"):
        load_config(None, ["eval.categories=[chair, spaceship]"])


def test_hash_changes_with_hashed_settings_only():
    base = load_config(None)
    h = eval_hash("digest", resolved_settings(base))
    assert eval_hash("digest", resolved_settings(load_config(None, ["eval.actors.count=8"]))) == h
    assert eval_hash("digest", resolved_settings(load_config(None, ["eval.seed=1"]))) != h
    assert eval_hash("digest", resolved_settings(load_config(None, ["serve.density_threshold=5"]))) != h
    assert eval_hash("other", resolved_settings(base)) != h


def test_inputs_are_canonicalised_as_the_model_was_trained():
    from lrm_dist.model.config import LRMConfig

    base = load_config(None)
    assert resolved_settings(base, LRMConfig(canonical_distance=2.0))["source_distance"] == 2.0  # its config.json
    assert resolved_settings(base, LRMConfig())["source_distance"] is None  # as rendered, like its training
    legacy = load_config(None, ["train.sample.source_distance=2.5"])  # a model that does not say: the recipe
    assert resolved_settings(legacy, LRMConfig())["source_distance"] == 2.5
    assert resolved_settings(legacy, LRMConfig(canonical_distance=2.0))["source_distance"] == 2.0


def test_split_assets_joins_renders_with_ground_truth(eval_workdir, tmp_path):
    manifest = eval_workdir / "assets" / "assets.parquet"
    table = pq.read_table(manifest)
    ids = sorted(table.column("asset_id").to_pylist())
    partial = tmp_path / "partial.parquet"
    pq.write_table(table.filter(pa.compute.not_equal(table.column("asset_id"), ids[0])), partial)
    targets, missing = split_assets(str(eval_workdir / "render"), str(partial), None)
    assert sorted(targets) == ids[1:] and [m["asset_id"] for m in missing] == [ids[0]]
    assert all(t["render_settings_hash"] == "synthetic-1" and t["shard"].startswith("shard-") for t in targets.values())
    chairs, _ = split_assets(str(eval_workdir / "render"), str(manifest), ["chair"])
    assert {t["category"] for t in chairs.values()} == {"chair"} and len(chairs) == 2
    with pytest.raises(FileNotFoundError, match="no rendered assets"):
        split_assets(str(tmp_path / "nothing"), str(manifest), None)


def test_split_assets_take_one_split(eval_workdir):
    from lrm_dist.shards.split import heldout_score

    manifest = eval_workdir / "assets" / "assets.parquet"
    ids = sorted(pq.read_table(manifest).column("asset_id").to_pylist())
    scores = sorted(heldout_score(a) for a in ids)
    fraction = (scores[1] + scores[2]) / 2  # exactly the two lowest-scoring assets are held out
    targets, _ = split_assets(str(eval_workdir / "render"), str(manifest), None, fraction)
    assert sorted(targets) == sorted(a for a in ids if heldout_score(a) < fraction) and len(targets) == 2
    training, _ = split_assets(str(eval_workdir / "render"), str(manifest), None, fraction, "training")
    assert sorted(training) == sorted(set(ids) - set(targets)) and len(training) == len(ids) - 2
    everything, _ = split_assets(str(eval_workdir / "render"), str(manifest), None, 0.0, "training")
    assert sorted(everything) == ids
    unseen, _ = split_assets(str(eval_workdir / "render"), str(manifest), None, fraction, "all")  # another set
    assert sorted(unseen) == ids
    with pytest.raises(ValueError, match="held_out split"):
        split_assets(str(eval_workdir / "render"), str(manifest), None, scores[0] / 2)
    with pytest.raises(ValueError, match="unknown split 'test' \\(held_out, training or all\\)"):
        split_assets(str(eval_workdir / "render"), str(manifest), None, fraction, "test")


def test_limit_takes_assets_in_turn_from_each_category():
    from lrm_dist.eval.stage import _first_per_category

    targets = {f"{c}-{i}": {"category": c} for c in ("bed", "chair", "table") for i in range(4)}
    chosen = _first_per_category(dict(sorted(targets.items())), 5)
    assert sorted(chosen) == ["bed-0", "bed-1", "chair-0", "chair-1", "table-0"]
    assert len(_first_per_category(targets, 50)) == 12
