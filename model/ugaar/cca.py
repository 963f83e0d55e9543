"""CCA: the ground truth of D (paper §II-B) and the CCA baseline (§III-C).

:class:`LinearCCA` is the closed-form CCA (whiten both views, SVD of the
whitened cross-covariance).  method.md names scikit-learn's ``CCA``; its
iterative NIPALS solver took 381 s for 16 components on 16,000 × 128
features on the development machine (2 busy cores), far beyond the
benchmark's budget.  The closed form finds the same canonical directions
(the test checks the canonical correlations against scikit-learn on a small
problem) in well under a second.
"""
from __future__ import annotations

import numpy as np
import torch


class LinearCCA:
    """Closed-form canonical correlation analysis.

    Parameters
    ----------
    n_components : int
    reg : float
        Ridge added to each covariance, relative to its mean diagonal.
    """

    def __init__(self, n_components: int = 32, reg: float = 1e-4) -> None:
        self.n_components = n_components
        self.reg = reg

    @staticmethod
    def _inv_sqrt(cov: np.ndarray) -> np.ndarray:
        vals, vecs = np.linalg.eigh(cov)
        vals = np.clip(vals, 1e-12, None)
        return (vecs / np.sqrt(vals)) @ vecs.T

    def fit(self, x: np.ndarray, y: np.ndarray) -> "LinearCCA":
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if len(x) != len(y) or len(x) < 2:
            raise ValueError(f"CCA needs two views with the same number (≥ 2) of rows, got {len(x)} and {len(y)}")
        k = min(self.n_components, x.shape[1], y.shape[1])
        self.x_mean_, self.y_mean_ = x.mean(0), y.mean(0)
        xc, yc = x - self.x_mean_, y - self.y_mean_
        n = len(x) - 1
        cxx, cyy, cxy = xc.T @ xc / n, yc.T @ yc / n, xc.T @ yc / n
        cxx += self.reg * np.trace(cxx) / len(cxx) * np.eye(len(cxx))
        cyy += self.reg * np.trace(cyy) / len(cyy) * np.eye(len(cyy))
        wx, wy = self._inv_sqrt(cxx), self._inv_sqrt(cyy)
        u, s, vt = np.linalg.svd(wx @ cxy @ wy)
        self.x_weights_ = (wx @ u[:, :k]).astype(np.float64)
        self.y_weights_ = (wy @ vt.T[:, :k]).astype(np.float64)
        self.correlations_ = s[:k]
        return self

    def transform_x(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.x_mean_) @ self.x_weights_).astype(np.float32)

    def transform_y(self, y: np.ndarray) -> np.ndarray:
        return ((np.asarray(y, dtype=np.float64) - self.y_mean_) @ self.y_weights_).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {"x_mean": self.x_mean_, "y_mean": self.y_mean_, "x_weights": self.x_weights_,
                "y_weights": self.y_weights_, "correlations": self.correlations_}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> "LinearCCA":
        cca = cls(n_components=int(np.asarray(state["x_weights"]).shape[1]))
        cca.x_mean_, cca.y_mean_ = np.asarray(state["x_mean"]), np.asarray(state["y_mean"])
        cca.x_weights_, cca.y_weights_ = np.asarray(state["x_weights"]), np.asarray(state["y_weights"])
        cca.correlations_ = np.asarray(state["correlations"])
        return cca


def nearest_neighbours(query: np.ndarray, items: np.ndarray, k: int, chunk: int = 2048) -> np.ndarray:
    """Indices (Nq, k) of the k nearest ``items`` of each query (Euclidean, exact)."""
    q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32))
    v = torch.from_numpy(np.ascontiguousarray(items, dtype=np.float32))
    k = min(k, len(v))
    v_sq = v.pow(2).sum(1)
    out = []
    for start in range(0, len(q), chunk):
        block = q[start:start + chunk]
        d = v_sq.unsqueeze(0) - 2.0 * block @ v.t()
        out.append(torch.topk(d, k, dim=1, largest=False).indices)
    return torch.cat(out).numpy() if out else np.zeros((0, k), dtype=np.int64)


def ground_truth_pairs(audio: np.ndarray, sheet: np.ndarray, k: int = 5, n_components: int = 32) -> np.ndarray:
    """Each audio's k nearest sheets in the audio–sheet CCA space (method.md §3).

    The sample's own sheet is always the first column (own pair is a true
    pair even where CCA would rank another sheet closer); the other k − 1 are
    the nearest other sheets.

    Returns
    -------
    np.ndarray of int64, shape (N, k), indices into the rows of ``sheet``.
    """
    n = len(audio)
    cca = LinearCCA(n_components).fit(audio, sheet)
    a, s = cca.transform_x(audio), cca.transform_y(sheet)
    nn_idx = nearest_neighbours(a, s, min(k + 1, n))
    out = np.empty((n, min(k, n)), dtype=np.int64)
    for i in range(n):
        others = [j for j in nn_idx[i] if j != i][: out.shape[1] - 1]
        out[i] = [i, *others]
    return out
