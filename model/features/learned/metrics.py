"""Retrieval figures used to early-stop the pre-training and to sanity-check features.

The evaluation proper (Tables I/II) lives in ``model.search.evaluation``; this is the
small self-contained subset the feature extractors need: the rank of each
query's own partner (1-based, ties count against the query), R@K, MedR,
MeanR, N — and plain scikit-learn CCA between two modalities.
"""
from __future__ import annotations

from typing import Any

import numpy as np

DIRECTIONS = (("audio", "lyrics"), ("lyrics", "audio"), ("sheet", "lyrics"),
              ("lyrics", "sheet"), ("audio", "sheet"), ("sheet", "audio"))


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def partner_ranks(query: np.ndarray, target: np.ndarray, metric: str = "cosine",
                  chunk: int = 2048) -> np.ndarray:
    """Rank of ``target[i]`` among all targets for ``query[i]`` (1 = best).

    Parameters
    ----------
    query, target : np.ndarray, shape (N, D)
        Row ``i`` of each is the same sample.
    metric : str
        ``"cosine"`` (higher similarity is better) or ``"euclidean"``.

    Returns
    -------
    np.ndarray of int, shape (N,)
        Ties count against the query (the rank counts every target at least
        as close as the true partner).
    """
    q, t = np.asarray(query, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if q.shape[0] != t.shape[0]:
        raise ValueError("query and target must have the same number of rows")
    if metric == "cosine":
        q, t = _normalise(q), _normalise(t)
    elif metric != "euclidean":
        raise ValueError(f"unknown metric {metric!r}")
    ranks = np.empty(len(q), dtype=np.int64)
    t_sq = (t ** 2).sum(1)
    for s in range(0, len(q), chunk):
        qs = q[s:s + chunk]
        if metric == "cosine":
            score = qs @ t.T
        else:
            score = -((qs ** 2).sum(1, keepdims=True) - 2 * qs @ t.T + t_sq)
        own = score[np.arange(len(qs)), np.arange(s, s + len(qs))]
        ranks[s:s + len(qs)] = (score >= own[:, None] - 1e-12).sum(1)
    return ranks


def figures_from_ranks(ranks: np.ndarray) -> dict[str, float]:
    """R@1/5/10 (percent), MedR, MeanR and N from partner ranks."""
    ranks = np.asarray(ranks)
    return {"R@1": 100.0 * float(np.mean(ranks <= 1)), "R@5": 100.0 * float(np.mean(ranks <= 5)),
            "R@10": 100.0 * float(np.mean(ranks <= 10)), "MedR": float(np.median(ranks)),
            "MeanR": float(np.mean(ranks)), "N": int(len(ranks))}


def retrieval_figures(query: np.ndarray, target: np.ndarray, metric: str = "cosine") -> dict[str, float]:
    return figures_from_ranks(partner_ranks(query, target, metric))


def audio_sheet_figures(audio: np.ndarray, sheet: np.ndarray) -> dict[str, dict[str, float]]:
    """Cosine audio→sheet and sheet→audio figures (the pre-training's own space)."""
    return {"audio→sheet": retrieval_figures(audio, sheet), "sheet→audio": retrieval_figures(sheet, audio)}


def cca_six_directions(features: Any, n_components: int = 10, max_iter: int = 1000,
                       train_split: str = "train", eval_split: str = "test") -> dict[str, dict[str, float]]:
    """Plain scikit-learn CCA per modality pair, fitted on ``train_split``.

    For each pair (A, B) one CCA is fitted on standardised training features;
    the evaluation split is projected and ranked by cosine similarity in the
    CCA space, in both directions.

    Parameters
    ----------
    features : FeatureSet
    n_components : int
        CCA components (capped by the smaller modality's dimension).

    Returns
    -------
    dict
        ``"A→B"`` → figures, for the six directions of ``DIRECTIONS``.
    """
    from sklearn.cross_decomposition import CCA

    train, test = features.split(train_split), features.split(eval_split)
    out: dict[str, dict[str, float]] = {}
    for a, b in (("audio", "lyrics"), ("sheet", "lyrics"), ("audio", "sheet")):
        xa, xb = train.modality(a), train.modality(b)
        k = min(n_components, xa.shape[1], xb.shape[1])
        mu_a, sd_a = xa.mean(0), xa.std(0) + 1e-8
        mu_b, sd_b = xb.mean(0), xb.std(0) + 1e-8
        cca = CCA(n_components=k, max_iter=max_iter, scale=False)
        cca.fit((xa - mu_a) / sd_a, (xb - mu_b) / sd_b)
        ta, tb = cca.transform((test.modality(a) - mu_a) / sd_a, (test.modality(b) - mu_b) / sd_b)
        out[f"{a}→{b}"] = retrieval_figures(ta, tb)
        out[f"{b}→{a}"] = retrieval_figures(tb, ta)
    return {f"{a}→{b}": out[f"{a}→{b}"] for a, b in DIRECTIONS}
