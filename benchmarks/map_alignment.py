"""Partner-in-neighbourhood of the embedding map, shared view vs per-modality view, for one run.

For each view, lays out the run's map exactly as the window and ``ugaar map``
do (read from, or written to, the run's ``umap-<key>.npz`` cache) and prints
the share of the split's points whose partners in the other two modalities
are among their k nearest map points (both partners / at least one; see
``model/map/alignment.py`` for the precise definition), with chance levels.

    python benchmarks/map_alignment.py RUN [--split test] [--k 15] [--retrieval-graph]

``--retrieval-graph`` adds an experiment that is not a view of the window: the
shared view's neighbour graph with each recording's sheet neighbours (and each
sheet's recordings) taken from the melody-re-ranked results instead of the
centred space (computes the dataset's pitch tracks once, then one re-ranked
query per audio and sheet item).

The figures in docs/benchmarks.md ("Embedding map") come from this script.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from model.cli.map_cmd import SPLITS, run_map
from model.errors import UgaarError
from model.map.alignment import partner_in_neighbourhood


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", metavar="RUN", help="a finished run folder")
    p.add_argument("--split", choices=SPLITS, default="test", help="points to evaluate (default test)")
    p.add_argument("--k", type=int, default=15, help="neighbourhood size (default 15, UMAP's n_neighbors)")
    p.add_argument("--retrieval-graph", action="store_true",
                   help="also lay out the shared view with audio ↔ sheet links from melody re-ranking")
    args = p.parse_args(argv)
    try:
        return _report(args)
    except (UgaarError, OSError, ValueError) as exc:  # no run, no embeddings, no readable dataset
        p.error(str(exc))


def _report(args: argparse.Namespace) -> int:

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
    if args.retrieval_graph:
        t0 = time.perf_counter()
        coords, splits = retrieval_graph_layout(args.run)
        sel = np.arange(len(splits)) if args.split == "all" else np.nonzero(splits == args.split)[0]
        a = partner_in_neighbourhood(coords, k=args.k, rows=sel)
        per = " / ".join(f"{a['per_modality'][m]['any'] * 100:.1f}" for m in ("audio", "sheet", "lyrics"))
        print(f"| shared, audio ↔ sheet links from melody re-ranking (experiment) | {n_map:,} | {a['points']:,} | "
              f"{a['both'] * 100:.1f} % | {a['any'] * 100:.1f} % | {per} | {time.perf_counter() - t0:.1f} s |")
    k = min(args.k, 3 * n_map - 1)
    # chance: k neighbours drawn uniformly from the other 3N − 1 points, two of which are partners
    m = 3 * n_map - 1
    p_one = k / m
    p_both = k * (k - 1) / (m * (m - 1))
    print(f"\nchance level: both {p_both * 100:.2f} %, at least one {(2 * p_one - p_both) * 100:.2f} %")
    return 0


def retrieval_graph_layout(run_dir: str, per: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The shared view's layout with each audio point's ``per`` sheet neighbours (and each sheet's
    recordings) replaced by its top ``per`` melody-re-ranked results, in their order, at the
    distances its own nearest ones had (so only *which* points are linked changes)."""
    from model.features.tokens.pitch_track import dataset_pitch_tracks
    from model.map.layout import DEFAULT_PARAMS, MODALITIES, _umap, balanced_knn, layout_input, train_mask_of
    from model.search.melody_rerank import MelodyReranker
    from model.search.retrieval import RetrievalIndex
    from model.ugaar.run import Run

    run = Run.open(run_dir)
    ids = [str(i) for i in run.sample_ids]
    splits = np.asarray([str(s) for s in run.splits])
    emb = {m: np.asarray(v) for m, v in run.embeddings().items()}
    dataset = run.open_dataset()
    if dataset is None:
        raise ValueError(f"{run_dir}: the run's dataset (its recordings and notes) is not readable here, "
                         f"and --retrieval-graph re-ranks with it")
    dataset_pitch_tracks(dataset, ids)
    reranker = MelodyReranker.from_dataset(dataset, run.config.metric)
    index = RetrievalIndex.from_run(run)
    x = layout_input(emb, "shared", train_mask_of(splits))
    n = len(ids)
    idx, dst = balanced_knn(x, n, per)
    row = {s: i for i, s in enumerate(ids)}
    for source, target in (("audio", "sheet"), ("sheet", "audio")):
        s0, t0 = MODALITIES.index(source) * n, MODALITIES.index(target) * n
        for i, sid in enumerate(ids):
            listed = [row[h] + t0 for h, _ in reranker.query_sample(index, sid, source, target, per)][:per]
            cols = np.nonzero((idx[s0 + i] >= t0) & (idx[s0 + i] < t0 + n))[0]  # in distance order
            if len(listed) == len(cols):
                idx[s0 + i, cols] = listed
    coords = _umap(x, dict(DEFAULT_PARAMS), knn=(idx, dst))
    return coords, splits


if __name__ == "__main__":
    raise SystemExit(main())
