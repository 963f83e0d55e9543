"""The embedding map as a table: one CSV (or Parquet) row per point, written by ``ugaar map`` and the window.

Columns: ``sample_id, modality, x, y, song_id, split, label, partner_rank,
lyrics``.  ``song_id``, ``label`` and ``lyrics`` are empty when the run's
dataset cannot be read; ``partner_rank`` is empty when it was not computed
(see :func:`model.search.partner_rank.median_partner_ranks`).

Parquet (:func:`write_map_parquet`, needs ``pyarrow``) keeps the same
columns with types: ``x``/``y`` float32 (the layout's own values),
``partner_rank`` float64 with null where CSV has an empty cell.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from model.data.labels import sample_label

MODALITIES = ("audio", "sheet", "lyrics")
MAP_COLUMNS = ("sample_id", "modality", "x", "y", "song_id", "split", "label", "partner_rank", "lyrics")


def _clean(text: Any) -> str:
    return " ".join(str(text).split())


def map_rows(coords: np.ndarray, ids: Sequence[str], *, sample_of: Optional[Callable[[str], Any]] = None,
             splits: Optional[Sequence[str]] = None, partner_ranks: Optional[Sequence[float]] = None,
             rows: Optional[Sequence[int]] = None) -> list[dict[str, Any]]:
    """Rows for the (3N, 2) ``coords`` of samples ``ids`` (modality-major, as the map lays them out).

    Parameters
    ----------
    sample_of : callable, optional
        sample id → :class:`model.data.song.Sample` or None (e.g. ``dataset.sample``;
        a ``KeyError`` counts as None).
    splits : (N,) sequence, optional
        Used where the sample is unknown.
    partner_ranks : (N,) sequence, optional
    rows : sample rows to write (all when None), e.g. one split's.
    """
    coords = np.asarray(coords)
    n = len(ids)
    if coords.shape != (3 * n, 2):
        raise ValueError(f"coords have shape {coords.shape}, expected ({3 * n}, 2) for {n} samples")
    sel = range(n) if rows is None else [int(r) for r in rows]
    samples: dict[int, Any] = {}
    for r in sel:
        s = None
        if sample_of is not None:
            try:
                s = sample_of(ids[r])
            except KeyError:
                s = None
        samples[r] = s
    out = []
    for mi, m in enumerate(MODALITIES):
        for r in sel:
            s = samples[r]
            rank = partner_ranks[r] if partner_ranks is not None else None
            out.append({
                "sample_id": str(ids[r]), "modality": m,
                "x": float(coords[mi * n + r, 0]), "y": float(coords[mi * n + r, 1]),
                "song_id": s.song_id if s is not None else "",
                "split": s.split if s is not None else (str(splits[r]) if splits is not None else ""),
                "label": _clean(sample_label(s)) if s is not None else "",
                "partner_rank": "" if rank is None or not np.isfinite(rank) else f"{float(rank):g}",
                "lyrics": _clean(s.lyrics_text) if s is not None else "",
            })
    return out


def write_map_csv(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``rows`` (from :func:`map_rows`) atomically as CSV; coordinates with 9 significant digits (exact for float32)."""
    from model.atomic import write_text
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(MAP_COLUMNS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "x": f"{r['x']:.9g}", "y": f"{r['y']:.9g}"})
    path = Path(path)
    if path.parent != Path(""):
        path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, buf.getvalue())
    return path


def read_map_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a map CSV, with ``x``/``y`` as floats (``partner_rank`` stays text)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["x"], r["y"] = float(r["x"]), float(r["y"])
    return rows


def _parquet_schema() -> "Any":
    import pyarrow as pa
    types = {"x": pa.float32(), "y": pa.float32(), "partner_rank": pa.float64()}
    return pa.schema([(c, types.get(c, pa.string())) for c in MAP_COLUMNS])


def write_map_parquet(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``rows`` (from :func:`map_rows`) atomically as Parquet (typed columns, see the module docstring)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from model.atomic import atomic_path
    cols: dict[str, list[Any]] = {c: [r[c] for r in rows] for c in MAP_COLUMNS}
    cols["partner_rank"] = [None if r["partner_rank"] in ("", None) else float(r["partner_rank"]) for r in rows]
    table = pa.table(cols, schema=_parquet_schema())
    path = Path(path)
    if path.parent != Path(""):
        path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)
    return path


def read_map_parquet(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a map Parquet file, as :func:`read_map_csv` gives them (``partner_rank`` as text, "" for null)."""
    import pyarrow.parquet as pq
    rows = pq.read_table(path).to_pylist()
    for r in rows:
        r["x"], r["y"] = float(r["x"]), float(r["y"])
        rank = r["partner_rank"]
        r["partner_rank"] = "" if rank is None else f"{rank:g}"
    return rows


def write_map_table(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """CSV or Parquet by the file's suffix (``.parquet``/``.pq`` → Parquet)."""
    if Path(path).suffix.lower() in (".parquet", ".pq"):
        return write_map_parquet(path, rows)
    return write_map_csv(path, rows)
