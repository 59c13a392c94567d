"""Quality per GPU-minute: train from scratch through the train stage, score held-out checkpoints with the eval stage.

Runs ``lrm_dist.train.train`` (Ray Train + DeepSpeed) on a config's shards, then exports every
checkpoint the run kept and scores each with ``lrm_dist.eval.evaluate`` on the held-out split, so the
printed table is a learning curve: held-out class-mean IoU, Chamfer-L1, normal consistency,
F-scores and empty predictions against training steps, seconds and samples/s. The last checkpoint
also gets the per-category table and the eval report, and so does each ``--other-set`` (its report in
``eval/<run>/other-<name>/report``: what the model makes of furniture built another way).

    # shards made on a CPU machine (Blender): lrm-dist run configs/quality.yaml --stages assets,render
    python benchmarks/quality.py configs/quality.yaml                       # one GPU, ~8 min of training
    python benchmarks/quality.py configs/default.yaml --set train.max_steps=60   # CPU smoke
    # how far it generalises: the last checkpoint also scored on assets of another construction
    #   (rendered with `lrm-dist run configs/quality.yaml --set workdir=runs/shaped --stages assets,render --set
    #    'assets.sources=[{kind: procedural, per_category: 10, seed: 7, style: shaped}]'`)
    python benchmarks/quality.py configs/quality.yaml --other-set runs/shaped --other-set runs/curved
    # what favouring the frontal input view costs on the others: the held-out split with views 1 and 3 as the input
    python benchmarks/quality.py configs/quality.yaml --input-view 1 --input-view 3
    # a run longer than one 10-minute call: train with --no-eval, then the same command again resumes and scores
    # (or, with --no-train, scores what the run kept without resuming it)
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path


def _row(label: str, summary: list[dict]) -> dict:
    mean = next((r for r in summary if r["kind"] == "class_mean"), None) or summary[-1]
    return {"label": label, **mean}


def _fmt(x: float) -> str:
    return "   nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:6.3f}"


def print_curve(rows: list[dict], label: bool = False) -> None:
    if not label:
        print("\nheld-out learning curve (class means; eval stage)")
    print(f"{'split':>9} " * label + f"{'step':>6} {'train s':>8} {'samples/s':>9} | {'IoU':>6} {'CD-L1':>6} {'NC':>6} "
          f"{'F@.01':>6} {'F@.02':>6} {'F@.05':>6} | empty")
    for r in rows:
        f = r["fscore"] + [float("nan")] * (3 - len(r["fscore"]))
        print(f"{r['label']:>9} " * label + f"{r['step']:>6} {r['train_seconds']:>8.0f} {r['samples_per_s']:>9.1f} | {_fmt(r['iou'])} "
              f"{_fmt(r['chamfer_l1'])} {_fmt(r['normal_consistency'])} {_fmt(f[0])} {_fmt(f[1])} {_fmt(f[2])} "
              f"| {r['n_empty']}/{r['n_assets']}")


def print_categories(summary: list[dict], title: str = "held-out") -> None:
    print(f"\nper category, last checkpoint, {title}")
    print(f"{'category':>12} {'n':>3} | {'IoU':>6} {'CD-L1':>6} {'NC':>6} {'F@.01':>6} {'F@.02':>6} {'F@.05':>6} | empty")
    for r in summary:
        if r["kind"] == "all":
            continue
        f = r["fscore"] + [float("nan")] * (3 - len(r["fscore"]))
        name = "class mean" if r["kind"] == "class_mean" else r["category"]
        print(f"{name:>12} {r['n_assets']:>3} | {_fmt(r['iou'])} {_fmt(r['chamfer_l1'])} "
              f"{_fmt(r['normal_consistency'])} {_fmt(f[0])} {_fmt(f[1])} {_fmt(f[2])} | {r['n_empty']}")


def main() -> None:
    from lrm_dist.config import load_config
    from lrm_dist.eval import evaluate
    from lrm_dist.layout import RunLayout
    from lrm_dist.storage import Storage
    from lrm_dist.train import train
    from lrm_dist.train.export import export_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", help="Also write the curve and the per-category table to this JSON file.")
    parser.add_argument("--training-split", type=int, default=0, metavar="N",
                        help="Also score the last checkpoint on N assets of the training split (of the renders the "
                        "held-out split comes from, N/5 per category), to print the generalisation gap.")
    parser.add_argument("--other-set", dest="other_sets", action="append", default=[], metavar="WORKDIR",
                        help="Also score the last checkpoint on every asset rendered in another workdir (its "
                        "assets/ and render/; for example furniture of another construction, `style: shaped` or "
                        "`curved`), assets the model never trained on: how far it generalises beyond its generator. "
                        "Repeatable.")
    parser.add_argument("--input-view", dest="input_views", action="append", type=int, default=[], metavar="V",
                        help="Also score the last checkpoint's held-out split with view V as the input instead of "
                        "eval.input_view (the frontal view 0 by default): what a recipe that favours one input view "
                        "costs on the others. Repeatable.")
    parser.add_argument("--no-eval", action="store_true",
                        help="Train only (a run longer than one call: a later call with the same train.run_name "
                        "resumes from the last checkpoint and scores the curve).")
    parser.add_argument("--no-train", action="store_true",
                        help="Score the checkpoints the run already kept, without resuming it (a run that stopped at "
                        "train.max_minutes before max_steps would otherwise train on).")
    parser.add_argument("--eval-from", type=int, default=0, metavar="STEP",
                        help="Score only the checkpoints at or after STEP (for example after train.lift_warmup_steps, "
                        "whose checkpoints have an untrained field).")
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    if cfg.train.export_dir is None:  # one export folder per run: runs of one workdir can share a GPU
        cfg.train.export_dir = f"{cfg.stage_dir('train')}/curve/{cfg.train.run_name}/final"

    if args.no_train and args.no_eval:
        parser.error("--no-train and --no-eval leave nothing to do")
    for other_set in [] if args.no_eval else args.other_sets:  # before the training it would come after
        missing = [n for n in ("render/render.parquet", "assets/assets.parquet") if not Storage(other_set).exists(n)]
        if missing:
            parser.error(f"--other-set {other_set}: no {' or '.join(missing)} there (render it first)")
    start = time.perf_counter()
    run_dir = Path(RunLayout.from_config(cfg).train_run_dir) if args.no_train else train(cfg).run_dir
    wall = time.perf_counter() - start
    checkpoints = sorted(p for p in Path(run_dir).glob("checkpoint_[0-9]*")
                         if p.is_dir() and int(p.name.split("_")[1]) >= args.eval_from)
    if not checkpoints:
        raise SystemExit(f"quality: run {run_dir} kept no checkpoint at or after step {args.eval_from}")
    if args.no_eval:
        print(f"quality: trained {run_dir} in {wall:.0f} s wall; checkpoints {[p.name for p in checkpoints]}")
        return
    curve, summary = [], []
    for i, folder in enumerate(checkpoints):
        progress = json.loads((folder / "progress.json").read_text())
        model_dir = Path(cfg.stage_dir("train")) / "curve" / cfg.train.run_name / folder.name
        export_checkpoint(folder, model_dir)
        last = i == len(checkpoints) - 1
        eval_cfg = cfg.model_copy(deep=True)
        eval_cfg.eval.checkpoint = str(model_dir)
        eval_cfg.eval.out_dir = f"{cfg.stage_dir('eval')}/{cfg.train.run_name}/{folder.name}"
        eval_cfg.eval.report.enabled = last
        eval_start = time.perf_counter()
        summary = evaluate(eval_cfg).per_category
        mean = _row(folder.name, summary)
        print(f"quality: {folder.name} scored in {time.perf_counter() - eval_start:.0f} s: IoU {_fmt(mean['iou'])} "
              f"Chamfer-L1 {_fmt(mean['chamfer_l1'])} NC {_fmt(mean['normal_consistency'])}", flush=True)
        seconds = progress["train_seconds"]
        curve.append({**mean, "step": progress["step"], "train_seconds": seconds,
                      "samples_per_s": progress["samples"] / seconds if seconds else float("nan")})
    extra = []  # the last checkpoint on other sets, rows of the generalisation gap beside the held-out one

    def score_last(label: str, folder: str, report: bool, **fields: object) -> list[dict]:
        """The last checkpoint scored with some eval settings changed, its class mean added as a row of the gap."""
        other_cfg = eval_cfg.model_copy(deep=True)
        for key, value in {**fields, "out_dir": f"{cfg.stage_dir('eval')}/{cfg.train.run_name}/{folder}"}.items():
            setattr(other_cfg.eval, key, value)
        other_cfg.eval.report.enabled = report
        rows = evaluate(other_cfg).per_category
        extra.append({**curve[-1], **_row(label, rows)})
        return rows

    if args.training_split:
        score_last("training", "training-split", False, split="training", limit=args.training_split)
    for view in args.input_views:
        score_last(f"view {view}", f"input-view-{view}", False, input_view=view)
    others = {}  # workdir -> per-category rows
    for other_set in args.other_sets:
        name = Path(other_set.rstrip("/")).name
        others[other_set] = score_last(name[:9], f"other-{name}", True, split="all", limit=None,
                                       render_dir=f"{other_set}/render",
                                       assets_manifest=f"{other_set}/assets/assets.parquet")
    gap = [{**curve[-1], "label": "held-out"}, *extra] if extra else []
    trained = "no training (--no-train)" if args.no_train else f"train stage {wall:.0f} s wall (start-up included)"
    print(f"\nquality: {args.config} {' '.join(args.overrides)}; {trained}")
    print_curve(curve)
    print_categories(summary)
    if gap:
        print("\ngeneralisation gap, last checkpoint (class means)")
        print_curve(gap, label=True)
    for other_set, rows in others.items():
        print_categories(rows, f"{other_set}, all assets")
    if args.json:
        Path(args.json).write_text(json.dumps({"curve": curve, "per_category": summary, "gap": gap, "other_sets": others},
                                              indent=1, default=str))


if __name__ == "__main__":
    main()
