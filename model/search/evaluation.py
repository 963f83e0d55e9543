"""Cross-modal retrieval metrics and the paper's Tables I and II (method.md §4).

On a split of N samples every sample is one item in each modality.  For a
query modality A and a target modality B all N items of B are ranked by
distance to the query's embedding; the rank of the sample's own B item is
its rank (1-based, **ties count against the query**: an item at exactly the
true partner's distance is ranked before it).

Embeddings are a dict ``{"audio", "sheet", "lyrics"} → (N, E)`` arrays.  A
method whose common space depends on the pair (the CCA baseline: one CCA
per pair of modalities) adds keys ``"A@B"``: modality A projected into the
space it shares with B; direction A→B then uses ``A@B`` against ``B@A``.
"""
from __future__ import annotations

import csv
import json
import math
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from model.atomic import write_text

DIRECTIONS = [("audio", "lyrics"), ("lyrics", "audio"), ("sheet", "lyrics"), ("lyrics", "sheet"),
              ("audio", "sheet"), ("sheet", "audio")]
ARROW = "→"
DIRECTION_NAMES = [f"{a}{ARROW}{b}" for a, b in DIRECTIONS]
METRICS = ("R@1", "R@5", "R@10", "MedR", "MeanR", "N", "MedR/N")

# Table I's column order in the paper (audio↔lyrics, audio↔sheet, sheet↔lyrics).
TABLE_ONE_ORDER = ["audio→lyrics", "lyrics→audio", "audio→sheet", "sheet→audio", "sheet→lyrics", "lyrics→sheet"]

PAPER_POOL = 14600  # "about 14,600 items" (method.md §4)
# The paper's figures: Table I (R@1, MedR) and Table II's RANDOM rows.
PAPER_TABLE_ONE = {
    "baseline": {"audio→lyrics": (3.69, 838.0), "lyrics→audio": (2.97, 891.0), "audio→sheet": (24.46, 562.0),
                 "sheet→audio": (25.13, 502.5), "sheet→lyrics": (3.18, 963.0), "lyrics→sheet": (3.05, 982.0)},
    "baseline-gan": {"audio→lyrics": (3.92, 804.2), "lyrics→audio": (3.18, 858.0), "audio→sheet": (26.01, 529.0),
                     "sheet→audio": (25.74, 472.2), "sheet→lyrics": (3.21, 940.0), "lyrics→sheet": (3.36, 925.8)},
    "ugaar": {"audio→lyrics": (5.02, 715.6), "lyrics→audio": (4.14, 716.0), "audio→sheet": (30.06, 352.4),
              "sheet→audio": (33.02, 330.8), "sheet→lyrics": (8.36, 572.5), "lyrics→sheet": (9.95, 576.0)},
}
PAPER_TABLE_TWO = {  # direction → method → (R@1, R@5, R@10, MedR, MeanR)
    "audio→lyrics": {"random": (2.77, 5.53, 7.61, 7312.0, 7257.19), "ugaar": (5.02, 5.51, 6.34, 715.6, 808.02)},
    "lyrics→audio": {"random": (2.69, 5.45, 7.59, 7316.5, 7257.31), "ugaar": (4.14, 4.56, 5.21, 716.0, 797.00)},
    "sheet→lyrics": {"random": (2.74, 5.48, 7.53, 7311.8, 7257.26), "ugaar": (8.36, 14.24, 16.58, 572.5, 765.30)},
    "lyrics→sheet": {"random": (2.72, 5.51, 7.66, 7313.2, 7257.43), "ugaar": (9.95, 14.26, 17.02, 576.0, 767.82)},
    "audio→sheet": {"random": (2.84, 5.57, 7.50, 7310.0, 7257.16), "ugaar": (30.06, 33.98, 35.02, 352.4, 600.34)},
    "sheet→audio": {"random": (2.63, 5.49, 7.48, 7310.0, 7257.37), "ugaar": (33.02, 34.12, 35.88, 330.8, 584.42)},
}
METHOD_LABELS = {"random": "Random", "cca": "CCA", "baseline": "Baseline", "baseline-gan": "Baseline-GAN",
                 "ugaar": "UGAAR (ours)"}


def direction_name(source: str, target: str) -> str:
    return f"{source}{ARROW}{target}"


def _distances(query: torch.Tensor, target: torch.Tensor, metric: str, target_sq: torch.Tensor | None) -> torch.Tensor:
    if metric == "cosine":
        return 1.0 - query @ target.t()
    if metric != "euclidean":
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    q_sq = query.pow(2).sum(1, keepdim=True)
    return (q_sq - 2.0 * query @ target.t() + target_sq.unsqueeze(0)).clamp_min(0.0)


def distance_matrix(query: np.ndarray, target: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """Query rows × target columns in numpy: ``1 − cos`` for cosine, else Euclidean distances."""
    if metric == "cosine":
        q = query / np.maximum(np.linalg.norm(query, axis=1, keepdims=True), 1e-12)
        t = target / np.maximum(np.linalg.norm(target, axis=1, keepdims=True), 1e-12)
        return 1.0 - q @ t.T
    sq = (query ** 2).sum(1)[:, None] + (target ** 2).sum(1)[None, :] - 2.0 * query @ target.T
    return np.sqrt(np.maximum(sq, 0.0))


def ranks(query_emb: np.ndarray, target_emb: np.ndarray, metric: str = "euclidean",
          chunk: int = 1024) -> np.ndarray:
    """1-based rank of each query's true partner (row i of ``target_emb``).

    Ties count against the query: rank = #{j : d(q_i, t_j) ≤ d(q_i, t_i)}.

    Parameters
    ----------
    query_emb, target_emb : (N, E), row-aligned
    metric : ``euclidean`` or ``cosine``

    Returns
    -------
    np.ndarray of int64, shape (N,)
    """
    q = torch.as_tensor(np.ascontiguousarray(query_emb), dtype=torch.float64)
    t = torch.as_tensor(np.ascontiguousarray(target_emb), dtype=torch.float64)
    if q.shape != t.shape:
        raise ValueError(f"ranks: query {tuple(q.shape)} and target {tuple(t.shape)} must have the same shape")
    if metric == "cosine":
        q = torch.nn.functional.normalize(q, dim=1)
        t = torch.nn.functional.normalize(t, dim=1)
    t_sq = t.pow(2).sum(1)
    out = []
    for start in range(0, len(q), chunk):
        d = _distances(q[start:start + chunk], t, metric, t_sq)
        idx = torch.arange(start, start + len(d))
        d_true = d[torch.arange(len(d)), idx].unsqueeze(1)
        out.append((d <= d_true).sum(1))
    return torch.cat(out).numpy().astype(np.int64) if out else np.zeros(0, dtype=np.int64)


def metrics_from_ranks(r: np.ndarray) -> dict[str, float]:
    """R@1, R@5, R@10 (percent), MedR, MeanR, N and MedR/N from 1-based ranks."""
    r = np.asarray(r, dtype=np.float64)
    n = len(r)
    if n == 0:
        raise ValueError("no ranks to summarise (empty split?)")
    med = float(np.median(r))
    return {"R@1": float((r <= 1).mean() * 100), "R@5": float((r <= 5).mean() * 100),
            "R@10": float((r <= 10).mean() * 100), "MedR": med, "MeanR": float(r.mean()),
            "N": float(n), "MedR/N": med / n}


def _view(embeddings: Mapping[str, np.ndarray], a: str, b: str) -> np.ndarray:
    return embeddings.get(f"{a}@{b}", embeddings[a])


def retrieval_metrics(embeddings: Mapping[str, np.ndarray], metric: str = "euclidean",
                      directions: Sequence[tuple[str, str]] = DIRECTIONS) -> dict[str, dict[str, float]]:
    """Metrics of the six directions, keyed ``"audio→lyrics"`` etc."""
    return {direction_name(a, b): metrics_from_ranks(ranks(_view(embeddings, a, b), _view(embeddings, b, a), metric))
            for a, b in directions}


def random_expectation(n: int) -> dict[str, float]:
    """Analytic metrics of random embeddings: each rank is uniform on 1…N.

    R@K = K/N (percent), MeanR = (N + 1)/2, MedR = (N + 1)/2.
    """
    return {"R@1": 100.0 / n, "R@5": 100.0 * min(5, n) / n, "R@10": 100.0 * min(10, n) / n,
            "MedR": (n + 1) / 2, "MeanR": (n + 1) / 2, "N": float(n), "MedR/N": (n + 1) / 2 / n}


def validation_score(metrics: Mapping[str, Mapping[str, float]]) -> float:
    """One number to select epochs and hyper-parameters on (higher is better).

    Mean over the six directions of R@1/100 + (1 − MedR/N): R@1 separates
    the audio↔sheet directions (MedR 1 for any good model), MedR/N the
    lyrics directions (R@1 near chance for all).
    """
    return float(np.mean([m["R@1"] / 100.0 + 1.0 - m["MedR/N"] for m in metrics.values()]))


# ------------------------------------------------------------------ tables
def _mean_std(values: Iterable[float]) -> tuple[float, float]:
    v = np.asarray(list(values), dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _fmt(values: Sequence[float], digits: int = 2) -> str:
    mean, std = _mean_std(values)
    if len(values) > 1:
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    return f"{mean:.{digits}f}"


ResultsByMethod = Mapping[str, Sequence[Mapping[str, Mapping[str, float]]]]


def table_one(results_by_method: ResultsByMethod) -> str:
    """The paper's Table I: R@1 and MedR per direction, one row per method.

    ``results_by_method`` maps a method name to a list (one per seed) of
    :func:`retrieval_metrics` results; cells are mean ± std over seeds.
    """
    head = "| Method | " + " | ".join(f"{d} R@1 | {d} MedR" for d in TABLE_ONE_ORDER) + " |"
    sep = "|---|" + "---:|" * (2 * len(TABLE_ONE_ORDER))
    lines = [head, sep]
    for method, runs in results_by_method.items():
        cells = []
        for d in TABLE_ONE_ORDER:
            cells.append(_fmt([r[d]["R@1"] for r in runs]))
            cells.append(_fmt([r[d]["MedR"] for r in runs], 1))
        label = METHOD_LABELS.get(method, method)
        lines.append(f"| {label} (n={len(runs)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table_two(results_by_method: ResultsByMethod) -> str:
    """The paper's Table II: R@1, R@5, R@10, MedR, MeanR per direction."""
    blocks = []
    for a, b in DIRECTIONS:
        d = direction_name(a, b)
        lines = [f"**{a}-to-{b} retrieval**", "", "| Methods | R@1 | R@5 | R@10 | MedR | MeanR | N |",
                 "|---|---:|---:|---:|---:|---:|---:|"]
        for method, runs in results_by_method.items():
            label = METHOD_LABELS.get(method, method)
            cells = [_fmt([r[d][k] for r in runs], 1 if k in ("MedR", "MeanR") else 2)
                     for k in ("R@1", "R@5", "R@10", "MedR", "MeanR")]
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {int(runs[0][d]['N'])} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def table_normalised(results_by_method: ResultsByMethod) -> str:
    """MedR/N per direction next to the paper's (its pool: ≈ 14,600 items)."""
    head = "| Method | " + " | ".join(TABLE_ONE_ORDER) + " |"
    lines = [head, "|---|" + "---:|" * len(TABLE_ONE_ORDER)]
    for method, runs in results_by_method.items():
        label = METHOD_LABELS.get(method, method).replace(" (ours)", "")
        cells = [_fmt([r[d]["MedR/N"] for r in runs], 4) for d in TABLE_ONE_ORDER]
        lines.append(f"| {label} (ours) | " + " | ".join(cells) + " |")
    for method, paper in PAPER_TABLE_ONE.items():
        label = METHOD_LABELS.get(method, method).replace(" (ours)", "")
        cells = [f"{paper[d][1] / PAPER_POOL:.4f}" for d in TABLE_ONE_ORDER]
        lines.append(f"| {label} (paper) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------- provenance
def code_version(repo: str | Path | None = None) -> str:
    """``git describe --always --dirty`` of the code (``unknown`` outside git)."""
    cwd = Path(repo) if repo else Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=cwd,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_results(csv_path: str | Path, md_path: str | Path, records: Sequence[Mapping[str, Any]],
                  title: str = "Cross-modal retrieval results", notes: str = "") -> None:
    """Save per-run metrics as CSV and the tables as Markdown (atomically).

    Parameters
    ----------
    records : sequence of dict
        One per run: ``method``, ``seed``, ``split``, ``metrics`` (from
        :func:`retrieval_metrics`), ``config`` (dict), ``dataset_hash``,
        ``code_version``, and optionally ``run_dir``.
    """
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["method", "seed", "split", "direction", *METRICS, "dataset_hash", "code_version",
                     "run_dir", "config"])
    for rec in records:
        for d in DIRECTION_NAMES:
            m = rec["metrics"][d]
            writer.writerow([rec["method"], rec.get("seed", ""), rec.get("split", ""), d,
                             *[f"{m[k]:.6g}" for k in METRICS], rec.get("dataset_hash", ""),
                             rec.get("code_version", ""), rec.get("run_dir", ""),
                             json.dumps(rec.get("config", {}), sort_keys=True)])
    write_text(csv_path, buf.getvalue())

    by_method: dict[str, list] = {}
    for rec in records:
        by_method.setdefault(rec["method"], []).append(rec["metrics"])
    hashes = sorted({str(r.get("dataset_hash", "")) for r in records})
    versions = sorted({str(r.get("code_version", "")) for r in records})
    splits = sorted({str(r.get("split", "")) for r in records})
    md = [f"# {title}", "", f"- dataset hash: {', '.join(hashes)}", f"- code version: {', '.join(versions)}",
          f"- split: {', '.join(splits)}", f"- runs: {len(records)} (seeds: "
          + ", ".join(f"{m}: {sorted(r.get('seed') for r in records if r['method'] == m)}" for m in by_method) + ")",
          ""]
    if notes:
        md += [notes, ""]
    md += ["## Table I (R@1 %, MedR; mean ± std over seeds)", "", table_one(by_method), "",
           "## MedR / N next to the paper's", "", table_normalised(by_method), "",
           "## Table II", "", table_two(by_method), "", "## Configurations", ""]
    seen = set()
    for rec in records:
        key = (rec["method"], json.dumps({k: v for k, v in rec.get("config", {}).items() if k != "seed"},
                                         sort_keys=True))
        if key in seen:
            continue
        seen.add(key)
        md += [f"<details><summary>{rec['method']}</summary>", "", "```json",
               json.dumps(rec.get("config", {}), indent=1, sort_keys=True), "```", "</details>", ""]
    write_text(md_path, "\n".join(md))


def isfinite_metrics(metrics: Mapping[str, Mapping[str, float]]) -> bool:
    return all(math.isfinite(v) for m in metrics.values() for v in m.values())
