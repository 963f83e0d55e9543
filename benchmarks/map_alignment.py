"""Partner-in-neighbourhood of the embedding map, shared view vs per-modality view, for one or more runs.

For each run and view, lays out the run's map exactly as the window and
``ugaar map`` do (read from, or written to, the run's ``umap-<key>.npz``
cache) and prints the share of the split's points whose partners in the other
two modalities are among their k nearest map points (both partners / at least
one; see ``model/map/alignment.py`` for the precise definition), with chance
levels.  Several runs (seeds) add a mean ± std table.

    python benchmarks/map_alignment.py RUN [RUN ...] [--split test] [--k 15] [--previous] [--grid]

``--previous`` adds the shared view as it was before the anchored layout (each
modality centred on its training mean, UMAP of all 3N points on a neighbour
graph balanced across modalities), for comparison; it is not a view of the
window any more.  ``--grid`` evaluates the anchored layout's choices (anchor
modality, top-1 or the mean of the top 2 recordings, offset radius) on the
split given, which is how they were chosen (``--split val``).

The figures in docs/benchmarks.md ("Embedding map") come from this script.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from model.cli.map_cmd import SPLITS, run_map
from model.errors import UgaarError
from model.map.alignment import partner_in_neighbourhood

MODS = ("audio", "sheet", "lyrics")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="RUN", help="finished run folders (e.g. one per seed)")
    p.add_argument("--split", choices=SPLITS, default="test", help="points to evaluate (default test)")
    p.add_argument("--k", type=int, default=15, help="neighbourhood size (default 15, UMAP's n_neighbors)")
    p.add_argument("--previous", action="store_true",
                   help="also lay out the earlier shared view (centred, balanced neighbour graph)")
    p.add_argument("--grid", action="store_true", help="evaluate the anchored layout's choices on --split")
    args = p.parse_args(argv)
    try:
        return _report(args)
    except (UgaarError, OSError, ValueError) as exc:  # no run, no embeddings, no readable dataset
        p.error(str(exc))


def _row(label: str, a: dict, how: str) -> str:
    per = " / ".join(f"{a['per_modality'][m]['any'] * 100:.1f}" for m in MODS)
    return (f"| {label} | {a['points']:,} | {a['both'] * 100:.1f} % | {a['any'] * 100:.1f} % | {per} | {how} |")


def _report(args: argparse.Namespace) -> int:
    print(f"split {args.split}, k = {args.k}\n")
    print("| run · view | points evaluated | both partners in k-NN | at least one | "
          "audio / sheet / lyrics (at least one) | layout |")
    print("|---|---|---|---|---|---|")
    figures: dict[str, list[dict]] = {}
    n_map = 0
    for run_dir in args.runs:
        name = run_dir.rstrip("/").split("/")[-1]
        for view in ("shared", "modality"):
            t0 = time.perf_counter()
            res = run_map(run_dir, view, args.split, ranks=False)
            seconds = time.perf_counter() - t0
            sel = _rows(res["splits"], args.split)
            a = partner_in_neighbourhood(res["coords"], k=args.k, rows=sel)
            n_map = len(res["ids"])
            figures.setdefault(view, []).append(a)
            print(_row(f"{name} · {view}", a, "cached" if res["from_cache"] else f"{seconds:.1f} s"), flush=True)
        if args.previous:
            t0 = time.perf_counter()
            coords, splits = previous_shared_layout(run_dir)
            a = partner_in_neighbourhood(coords, k=args.k, rows=_rows(splits, args.split))
            figures.setdefault("previous", []).append(a)
            print(_row(f"{name} · previous shared (centred, balanced graph)", a,
                       f"{time.perf_counter() - t0:.1f} s"), flush=True)
        if args.grid:
            for label, a in grid(run_dir, args.split, args.k):
                print(_row(f"{name} · {label}", a, "—"), flush=True)
    if len(args.runs) > 1:
        print(f"\nmean ± std over {len(args.runs)} runs\n")
        print("| view | both partners | at least one | audio / sheet / lyrics (at least one) |")
        print("|---|---|---|---|")
        for view, rows in figures.items():
            per = " / ".join(_mean_std([r["per_modality"][m]["any"] for r in rows]) for m in MODS)
            print(f"| {view} | {_mean_std([r['both'] for r in rows])} % | "
                  f"{_mean_std([r['any'] for r in rows])} % | {per} |")
    k = min(args.k, 3 * n_map - 1)
    # chance: k neighbours drawn uniformly from the other 3N − 1 points, two of which are partners
    m = 3 * n_map - 1
    p_one = k / m
    p_both = k * (k - 1) / (m * (m - 1))
    print(f"\nchance level: both {p_both * 100:.2f} %, at least one {(2 * p_one - p_both) * 100:.2f} %")
    return 0


def _rows(splits, split: str) -> np.ndarray:
    splits = np.asarray([str(s) for s in splits])
    return np.arange(len(splits)) if split == "all" else np.nonzero(splits == split)[0]


def _mean_std(values: list[float]) -> str:
    pct = [v * 100 for v in values]
    sd = statistics.stdev(pct) if len(pct) > 1 else 0.0
    return f"{statistics.mean(pct):.1f} ± {sd:.1f}"


def _open(run_dir: str):
    from model.ugaar.run import Run
    run = Run.open(run_dir)
    emb = {m: np.asarray(v, dtype=np.float32) for m, v in run.embeddings().items()}
    return run, {m: emb[m] for m in MODS}, np.asarray([str(s) for s in run.splits])


def grid(run_dir: str, split: str, k: int) -> list[tuple[str, dict]]:
    """The anchored layout's choices, each evaluated on ``split``: anchor × top-1 / top-2 mean × radius."""
    from model.map.layout import DEFAULT_PARAMS, _umap, median_nn_distance, place_beside, unit_rows
    run, emb, splits = _open(run_dir)
    sel = _rows(splits, split)
    metric = run.config.metric
    out = []
    for anchor in ("audio", "sheet"):
        base = _umap(unit_rows(emb[anchor]), dict(DEFAULT_PARAMS))
        nn1 = median_nn_distance(base)
        for top in (1, 2):
            placed = {m: _top_rows(emb[m], emb[anchor], metric, top) for m in MODS if m != anchor}
            for radius in (0.0, 0.25, 0.5, 1.0):
                coords = {anchor: base}
                for i, (m, rows) in enumerate(placed.items()):
                    # the mean of the top recordings' positions, then the same seeded offset
                    centre = base[rows].mean(axis=1)
                    coords[m] = place_beside(centre, np.arange(len(centre)), radius * nn1, seed=i + 1)
                c = np.concatenate([coords[m] for m in MODS])
                out.append((f"anchor {anchor}, top {top}, radius {radius}",
                            partner_in_neighbourhood(c, k=k, rows=sel)))
    return out


def _top_rows(queries: np.ndarray, anchors: np.ndarray, metric: str, top: int) -> np.ndarray:
    """(M, top) rows of each query's nearest anchors, nearest first (top 1 is :func:`nearest_anchor`)."""
    from model.map.layout import nearest_anchor
    from model.search.evaluation import distance_matrix
    if top == 1:
        return nearest_anchor(queries, anchors, metric)[:, None]
    out = np.empty((len(queries), top), dtype=np.int64)
    for s in range(0, len(queries), 2048):
        d = distance_matrix(queries[s:s + 2048], anchors, metric)
        j = np.argpartition(d, top - 1, axis=1)[:, :top]
        out[s:s + 2048] = np.take_along_axis(j, np.argsort(np.take_along_axis(d, j, axis=1), axis=1), axis=1)
    return out


# ---- the shared view before the anchored layout (kept here for comparison) -------------------
def previous_shared_layout(run_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """Each modality minus its training mean (rows re-normalised), UMAP of all 3N points on a
    neighbour graph with 5 nearest points from each modality (each modality's nearest at distance
    ~0, so the own modality's smaller distances do not take all the edge weight)."""
    from model.map.layout import DEFAULT_PARAMS, _umap
    _run, emb, splits = _open(run_dir)
    train = splits == "train"
    centred = []
    for m in MODS:
        v = emb[m].copy()
        v -= v[train].mean(axis=0, keepdims=True) if train.any() else v.mean(axis=0, keepdims=True)
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        centred.append(v)
    x = np.concatenate(centred)
    params = dict(DEFAULT_PARAMS)
    return _umap(x, params, knn=balanced_knn(x, len(splits), params["n_neighbors"] // 3)), splits


def balanced_knn(x: np.ndarray, n: int, per: int, batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(indices, distances) of shape (3N, 1 + 3·per): the point itself, then ``per`` nearest of each
    modality (cosine distance, each modality's shifted so that its nearest is at 0), nearest first."""
    total = len(x)
    per = int(max(1, min(per, n - 1)))
    idx = np.empty((total, 1 + 3 * per), dtype=np.int64)
    dst = np.empty((total, 1 + 3 * per), dtype=np.float32)
    idx[:, 0], dst[:, 0] = np.arange(total), 0.0
    blocks = [np.ascontiguousarray(x[b * n:(b + 1) * n]) for b in range(3)]
    for a in range(0, total, batch):
        q = x[a:a + batch]
        rows = np.arange(a, a + len(q))
        cols_i, cols_d = [], []
        for b, block in enumerate(blocks):
            d = 1.0 - q @ block.T
            mine = (rows >= b * n) & (rows < (b + 1) * n)
            d[np.nonzero(mine)[0], rows[mine] - b * n] = np.inf
            j = np.argpartition(d, per - 1, axis=1)[:, :per]
            dj = np.take_along_axis(d, j, axis=1)
            order = np.argsort(dj, axis=1)
            j, dj = np.take_along_axis(j, order, axis=1), np.take_along_axis(dj, order, axis=1)
            cols_i.append(j + b * n)
            cols_d.append(dj - dj[:, :1])
        ii, dd = np.concatenate(cols_i, axis=1), np.concatenate(cols_d, axis=1)
        order = np.argsort(dd, axis=1, kind="stable")
        idx[a:a + len(q), 1:] = np.take_along_axis(ii, order, axis=1)
        dst[a:a + len(q), 1:] = np.take_along_axis(dd, order, axis=1) + 1e-6  # 0 reads as a duplicate
    return idx, dst


if __name__ == "__main__":
    raise SystemExit(main())
