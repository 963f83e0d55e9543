"""How well a 2-D map keeps a sample's three modalities together.

**Partner-in-neighbourhood** (``k`` = 15, UMAP's own neighbourhood size):
the map has one point per sample and modality (3N points).  For a point p
of sample s in modality m, its *partners* are s's points in the two other
modalities, and its neighbourhood is the ``k`` points of the whole map
nearest to p in 2-D (Euclidean, p itself excluded).  Then

- ``both``: the share of points whose two partners are both in their
  neighbourhood;
- ``any``: the share of points with at least one partner in it.

Shares are over the evaluated points only (e.g. the test split's 3·N_test
points) while neighbours come from the whole map, the way a reader sees it.
Chance level is about ``k / (3N)`` for ``any``.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

MODALITIES = ("audio", "sheet", "lyrics")
DEFAULT_K = 15


def partner_in_neighbourhood(coords: np.ndarray, k: int = DEFAULT_K,
                             rows: Optional[Sequence[int] | np.ndarray] = None) -> dict[str, Any]:
    """Partner-in-neighbourhood of a (3N, 2) map (rows: all audio, all sheet, all lyrics).

    Parameters
    ----------
    coords : (3N, 2) array
    k : int
        Neighbourhood size (clipped to 3N − 1).
    rows : sample rows to evaluate (indices into 0…N−1, or a boolean mask of
        length N); all samples when None.

    Returns
    -------
    dict
        ``both``, ``any`` (shares in [0, 1]), ``k``, ``points`` (how many
        points were evaluated) and ``per_modality`` ({modality: {both, any}}).
    """
    from scipy.spatial import cKDTree

    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or len(coords) % 3:
        raise ValueError(f"expected (3N, 2) coordinates, got shape {coords.shape}")
    n = len(coords) // 3
    if rows is None:
        sel = np.arange(n)
    else:
        rows = np.asarray(rows)
        sel = np.nonzero(rows)[0] if rows.dtype == bool else rows.astype(int)
    k = int(max(1, min(k, 3 * n - 1)))
    tree = cKDTree(coords)
    out: dict[str, Any] = {"k": k, "points": 0, "both": float("nan"), "any": float("nan"), "per_modality": {}}
    both_total = any_total = 0
    for mi, m in enumerate(MODALITIES):
        pts = mi * n + sel
        if len(pts) == 0:
            out["per_modality"][m] = {"both": float("nan"), "any": float("nan")}
            continue
        # k + 1: the point itself comes back too (first, unless another point sits on it)
        _d, nn = tree.query(coords[pts], k=k + 1)
        nn = np.atleast_2d(nn)
        hits = []
        for other in range(3):
            if other == mi:
                continue
            partner = other * n + sel
            hits.append((nn == partner[:, None]).any(axis=1))
        # drop the point itself; when it was not returned, the (k+1)-th neighbour goes instead
        self_hit = (nn == pts[:, None]).any(axis=1)
        last = nn[:, -1]
        for h, other in zip(hits, [o for o in range(3) if o != mi]):
            partner = other * n + sel
            h &= self_hit | (last != partner)
        both = hits[0] & hits[1]
        anyp = hits[0] | hits[1]
        out["per_modality"][m] = {"both": float(both.mean()), "any": float(anyp.mean())}
        both_total += int(both.sum())
        any_total += int(anyp.sum())
        out["points"] += len(pts)
    if out["points"]:
        out["both"] = both_total / out["points"]
        out["any"] = any_total / out["points"]
    return out


def format_alignment(result: dict[str, Any], label: str = "") -> str:
    """One line: ``partner-in-neighbourhood (k=15, 3,138 points): both 12.3 %, at least one 40.1 %``."""
    head = f"partner-in-neighbourhood{' ' + label if label else ''} (k={result['k']}, {result['points']:,} points)"
    per = ", ".join(f"{m} {v['both'] * 100:.1f}/{v['any'] * 100:.1f}" for m, v in result["per_modality"].items())
    return (f"{head}: both partners {result['both'] * 100:.1f} %, at least one {result['any'] * 100:.1f} %"
            f"  [both/any per modality: {per}]")
