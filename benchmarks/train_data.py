"""Training-data streaming: samples/s of the two readers (plain WebDataset vs. Ray Data) on the same shards.

Both produce the same training batches (decode of the chosen views + OpenLRM sample recipe); the
faster one is the default (``train.data.backend``). Without ``--shards`` it writes SYNTHETIC shards
(drawn discs, real shard writer) of the render stage's default size (32 views, 256 px).

    python benchmarks/train_data.py --assets 48 --batches 12 --batch-size 4 --workers 0 1 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from lrm_dist.train.config import SampleConfig
from lrm_dist.train.data import ray_dataset, resolve_shards, webdataset_batches


def _time(batches, n: int) -> float:
    next(batches)  # warm-up: process start, first shard open
    t = time.perf_counter()
    for _ in range(n):
        next(batches)
    return time.perf_counter() - t


def bench_webdataset(urls, cfg, source, batch, n, workers) -> float:
    it = webdataset_batches(urls, 0, 1, workers, batch, cfg, source, seed=0, shuffle_buffer=8)
    return n * batch / _time(it, n)


def bench_ray_data(urls, cfg, source, batch, n) -> float:
    ds = ray_dataset(urls, cfg, source)

    def endless():
        while True:
            yield from ds.iter_torch_batches(batch_size=batch, drop_last=True)

    return n * batch / _time(endless(), n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", help="shard folder/glob (default: write synthetic shards)")
    parser.add_argument("--assets", type=int, default=48, help="synthetic assets (12 per shard)")
    parser.add_argument("--views", type=int, default=32)
    parser.add_argument("--res", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="webdataset loader processes to try")
    parser.add_argument("--ray-cpus", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=3, help="measurements per reader (the median is shown)")
    args = parser.parse_args()

    cfg = SampleConfig()  # OpenLRM small: 4 views, 192-288 px, 64 px patches
    source = 224
    with tempfile.TemporaryDirectory() as tmp:
        if args.shards:
            urls = resolve_shards(args.shards)
            label = args.shards
        else:
            from lrm_dist.train.synthetic import write_synthetic_shards

            per = 12
            urls = [str(p) for p in write_synthetic_shards(Path(tmp), max(1, args.assets // per), per, args.views, args.res)]
            label = f"SYNTHETIC {args.assets} assets x {args.views} views @ {args.res}px"
        rows = []

        def median(measure) -> float:
            return float(np.median([measure() for _ in range(args.repeat)]))

        for w in args.workers:
            rows.append((f"webdataset, {w} loader worker(s)",
                         median(lambda: bench_webdataset(urls, cfg, source, args.batch_size, args.batches, w))))
        import ray

        ray.init(num_cpus=args.ray_cpus, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
        try:
            from ray.data import DataContext

            DataContext.get_current().enable_progress_bars = False
            rows.append((f"ray_data ({args.ray_cpus} CPUs)",
                         median(lambda: bench_ray_data(urls, cfg, source, args.batch_size, args.batches))))
        finally:
            ray.shutdown()
    print(f"\nshards: {label}; recipe: {cfg.supervision_views} views, {cfg.render_res_low}-{cfg.render_res_high} px, "
          f"{cfg.patch_size} px patches, source {source} px; batch {args.batch_size}, {args.batches} batches, "
          f"median of {args.repeat}, {os.cpu_count()} CPUs")
    print("| reader | samples/s |\n|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:.1f} |")


if __name__ == "__main__":
    main()
