"""``ugaar map``: the embedding map's layout as CSV, and how well it keeps partners together."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

SPLITS = ("all", "train", "val", "test")


def run_map(run_dir: str | Path, view: str = "shared", split: str = "all", progress=None,
            ranks: bool = True) -> dict[str, Any]:
    """The map of a run as the window shows it, plus what ``ugaar map`` reports.

    Returns ``{"coords", "ids", "splits", "rows", "alignment", "from_cache",
    "dataset", "partner_ranks"}``: ``rows`` are the CSV rows of the chosen
    split, ``alignment`` its partner-in-neighbourhood (neighbours from the
    whole map; see :mod:`model.map.alignment`).
    """
    from model.map.layout import MODALITIES, compute_map
    from model.map.alignment import partner_in_neighbourhood
    from model.map.export import map_rows
    from model.ugaar.run import Run

    run = Run.open(run_dir)
    emb = run.embeddings()
    ids = [str(i) for i in run.sample_ids]
    splits = [str(s) for s in run.splits]
    if len({np.asarray(emb[m]).shape[1] for m in MODALITIES}) != 1:
        raise ValueError(f"{run_dir}: this run keeps each modality in its own space "
                         f"({run.config.method}), so there is no common space to map")
    emb = {m: np.asarray(emb[m]) for m in MODALITIES}
    coords, from_cache = compute_map(emb, view=view, metric=run.config.metric, cache_dir=Path(run.run_dir),
                                     progress=progress, in_process=True)
    median = None
    if ranks:
        from model.search.partner_rank import median_partner_ranks, partner_rank_table
        from model.search.retrieval import RetrievalIndex
        median = median_partner_ranks(partner_rank_table(RetrievalIndex.from_run(run)))
    sel = np.arange(len(ids)) if split == "all" else np.nonzero(np.asarray(splits) == split)[0]
    if split != "all" and len(sel) == 0:
        raise ValueError(f"{run_dir}: split {split!r} has no samples; try --split all")
    ds = run.open_dataset()
    rows = map_rows(coords, ids, sample_of=ds.sample if ds is not None else None, splits=splits,
                    partner_ranks=median, rows=sel)
    return {"coords": coords, "ids": ids, "splits": splits, "rows": rows, "from_cache": from_cache,
            "alignment": partner_in_neighbourhood(coords, rows=sel), "dataset": ds, "partner_ranks": median}


def run(args: argparse.Namespace) -> int:
    from model.map.alignment import format_alignment
    from model.map.export import write_map_table

    from .progress_bar import StageBar

    bar = StageBar()
    try:
        result = run_map(args.run, args.view, args.split, progress=bar)
    finally:
        bar.close()
    out = write_map_table(args.out, result["rows"])
    n_points = len(result["rows"])
    print(f"{args.view} view of {args.run}: {len(result['ids'])} samples × 3 modalities"
          + (" (layout from the run's cache)" if result["from_cache"] else ""))
    if result["dataset"] is None:
        print("the run's dataset is not readable here: song ids, labels and lyrics are left empty")
    print(format_alignment(result["alignment"], f"[{args.split}]"))
    print(f"written: {out} ({n_points} rows)")
    return 0


def add_parser(subparsers, name: str = "map",
               help_text: str = "write a run's embedding map (shared or per-modality view) as CSV"):
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("run", metavar="RUN", help="a finished run folder")
    p.add_argument("--view", choices=["shared", "modality"], default="shared",
                   help="shared: modality offsets removed before UMAP (partners land together; default); "
                        "modality: the raw space (one island per modality)")
    p.add_argument("--split", choices=SPLITS, default="all",
                   help="write and measure only this split's points (the layout is always the whole map's)")
    p.add_argument("--out", default="map.csv", help="CSV path (default ./map.csv); a .parquet path writes Parquet")
    p.set_defaults(func=run)
    return p
