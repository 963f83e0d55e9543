"""Partner-in-neighbourhood of the embedding map, shared view vs per-modality view, for one run.

For each view, lays out the run's map exactly as the window and ``ugaar map``
do (read from, or written to, the run's ``umap-<key>.npz`` cache) and prints
the share of the split's points whose partners in the other two modalities
are among their k nearest map points (both partners / at least one; see
``model/map/alignment.py`` for the precise definition), with chance levels.

    python benchmarks/map_alignment.py RUN [--split test] [--k 15]

The figures in docs/benchmarks.md ("Embedding map") come from this script.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from model.cli.map_cmd import SPLITS, run_map
from model.map.alignment import partner_in_neighbourhood


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", metavar="RUN", help="a finished run folder")
    p.add_argument("--split", choices=SPLITS, default="test", help="points to evaluate (default test)")
    p.add_argument("--k", type=int, default=15, help="neighbourhood size (default 15, UMAP's n_neighbors)")
    args = p.parse_args(argv)

    print(f"run {args.run}, split {args.split}, k = {args.k}\n")
    print("| view | samples in map | points evaluated | both partners in k-NN | at least one | "
          "audio / sheet / lyrics (at least one) | layout |")
    print("|---|---|---|---|---|---|---|")
    n_map = 0
    for view in ("shared", "modality"):
        t0 = time.perf_counter()
        res = run_map(args.run, view, args.split, ranks=False)
        seconds = time.perf_counter() - t0
        splits = np.asarray(res["splits"])
        sel = np.arange(len(splits)) if args.split == "all" else np.nonzero(splits == args.split)[0]
        a = partner_in_neighbourhood(res["coords"], k=args.k, rows=sel)
        n_map = len(res["ids"])
        per = " / ".join(f"{a['per_modality'][m]['any'] * 100:.1f}" for m in ("audio", "sheet", "lyrics"))
        how = "cached" if res["from_cache"] else f"{seconds:.1f} s"
        print(f"| {view} | {n_map:,} | {a['points']:,} | {a['both'] * 100:.1f} % | {a['any'] * 100:.1f} % | "
              f"{per} | {how} |")
    k = min(args.k, 3 * n_map - 1)
    # chance: k neighbours drawn uniformly from the other 3N − 1 points, two of which are partners
    m = 3 * n_map - 1
    p_one = k / m
    p_both = k * (k - 1) / (m * (m - 1))
    print(f"\nchance level: both {p_both * 100:.2f} %, at least one {(2 * p_one - p_both) * 100:.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
