"""Which map points a box or a lasso encloses, and whose samples they are (no Qt).

The map lays out 3N points, modality-major (all audio, then sheet, then
lyrics, N each, :mod:`model.map.layout`); a selection is reported as the
*samples* with at least one enclosed visible point.
"""
from __future__ import annotations

from typing import Optional

import numpy as np


def points_in_rect(coords: np.ndarray, left: float, top: float, right: float, bottom: float) -> np.ndarray:
    """Boolean mask of the (M, 2) ``coords`` inside the axis-aligned box (edges included)."""
    x, y = coords[:, 0], coords[:, 1]
    return (x >= left) & (x <= right) & (y >= top) & (y <= bottom)


def points_in_polygon(coords: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Boolean mask of the (M, 2) ``coords`` inside the closed ``polygon`` ((K, 2) vertices).

    Uses matplotlib's ``Path.contains_points`` (compiled, even-odd rule for
    self-crossing lassos; matplotlib comes with music21).  A polygon with
    fewer than three vertices, or no area, encloses nothing.
    """
    from matplotlib.path import Path
    coords = np.asarray(coords, dtype=float)
    poly = np.asarray(polygon, dtype=float)
    if len(poly) < 3 or len(coords) == 0:
        return np.zeros(len(coords), dtype=bool)
    x, y = poly[:, 0], poly[:, 1]
    if abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) == 0.0:
        return np.zeros(len(coords), dtype=bool)
    # a bounding-box prefilter: contains_points is the slow part on 300k points
    box = points_in_rect(coords, x.min(), y.min(), x.max(), y.max())
    out = np.zeros(len(coords), dtype=bool)
    if box.any():
        out[box] = Path(np.vstack([poly, poly[:1]]), closed=True).contains_points(coords[box])
    return out


def selected_rows(inside: np.ndarray, n: int, visible: Optional[np.ndarray] = None) -> list[int]:
    """Sample rows (0…n-1) with at least one enclosed point; hidden points (``visible`` False) do not count."""
    inside = np.asarray(inside, dtype=bool)
    if visible is not None:
        inside = inside & np.asarray(visible, dtype=bool)
    if not n:
        return []
    return np.unique(np.nonzero(inside)[0] % n).astype(int).tolist()
