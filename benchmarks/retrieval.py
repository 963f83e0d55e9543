"""Retrieval latency: top-10 in two target modalities for one query (exact, torch, CPU).

Targets (issue 4): ≤ 20 ms at N = 15,000 and ≤ 200 ms at N = 1,000,000 random
128-d vectors.  Prints the median and 90th percentile over repeated queries
and the build time of the index.

    python benchmarks/retrieval.py [--sizes 15000 1000000] [--repeats 30] [--threads 2]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from model.retrieval import RetrievalIndex


def bench(n: int, repeats: int, metric: str, dim: int = 128, half: bool | None = None) -> dict[str, float]:
    rng = np.random.default_rng(0)
    emb = {m: rng.standard_normal((n, dim), dtype=np.float32) for m in ("audio", "sheet", "lyrics")}
    ids = np.array([f"s{i}" for i in range(n)])
    t0 = time.perf_counter()
    index = RetrievalIndex(emb, ids, metric=metric, half_screen=half)
    build = time.perf_counter() - t0
    del emb
    queries = rng.standard_normal((repeats + 3, dim), dtype=np.float32)
    times = []
    for i, q in enumerate(queries):
        t = time.perf_counter()
        a = index.query(q, "audio", k=10, source="lyrics")
        s = index.query(q, "sheet", k=10, source="lyrics")
        dt = time.perf_counter() - t
        assert len(a) == len(s) == 10
        if i >= 3:  # warm-up
            times.append(dt)
    return {"n": n, "build_s": build, "fallbacks": index.fallbacks, "median_ms": 1000 * float(np.median(times)),
            "p90_ms": 1000 * float(np.percentile(times, 90))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[15000, 1000000])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--metric", choices=["euclidean", "cosine"], default="euclidean")
    parser.add_argument("--float32-only", action="store_true", help="disable the float16 screening pass")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    targets = {15000: 20.0, 1000000: 200.0}
    print(f"torch {torch.__version__}, {args.threads} threads, metric {args.metric}, top-10 in audio + sheet per query"
          + (", float32 only" if args.float32_only else ""))
    print("| N | index build (s) | median (ms) | p90 (ms) | target (ms) | float32 fallbacks |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        r = bench(n, args.repeats, args.metric, half=False if args.float32_only else None)
        target = targets.get(n)
        print(f"| {n:,} | {r['build_s']:.2f} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | "
              f"{'≤ %g' % target if target else '–'} | {r['fallbacks']} |", flush=True)


if __name__ == "__main__":
    main()
