"""Export: result tables (CSV/Markdown) and embeddings for the TensorBoard projector."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Optional

import numpy as np

from model.map.layout import MODALITIES
from model.data.labels import sample_label

METRIC_COLS = ("R@1", "R@5", "R@10", "MedR", "MeanR", "MedR/N", "N")  # R@k in percent


def _clean(text: str) -> str:
    return " ".join(str(text).replace("\t", " ").split())


def write_projector(embeddings: dict[str, np.ndarray], ids: list[str], dataset: Any, out_dir: str | Path,
                    ) -> tuple[Path, Path]:
    """``vectors.tsv`` (3N rows) and ``metadata.tsv`` (header + one row each) for projector.tensorflow.org."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vec_path, meta_path = out / "vectors.tsv", out / "metadata.tsv"
    from model.atomic import write_text
    vec_buf = io.StringIO()
    meta_buf = io.StringIO()
    meta_buf.write("sample_id\tmodality\tsong\tsplit\tlyrics\n")
    for m in MODALITIES:
        arr = np.asarray(embeddings[m], dtype=np.float32)
        np.savetxt(vec_buf, arr, delimiter="\t", fmt="%.6g")
        for sid in ids:
            try:
                s = dataset.sample(sid) if dataset is not None else None
            except KeyError:
                s = None
            meta_buf.write("\t".join([sid, m, _clean(sample_label(s) if s else ""), s.split if s else "",
                                      _clean(s.lyrics_text if s else "")]) + "\n")
    write_text(vec_path, vec_buf.getvalue())
    write_text(meta_path, meta_buf.getvalue())
    return vec_path, meta_path


def metrics_rows(embeddings: dict[str, np.ndarray], ids: list[str], splits: Optional[list[str]] = None,
                 split: Optional[str] = "test", metric: str = "euclidean") -> tuple[list[dict[str, Any]], int]:
    """Six-direction metrics of the run's embeddings on ``split`` (all when None or empty)."""
    emb = {k: np.asarray(v) for k, v in embeddings.items()}  # CCA runs add pair views "A@B"
    if split and splits is not None:
        mask = np.array([s == split for s in splits])
        if mask.sum() >= 2:
            emb = {m: v[mask] for m, v in emb.items()}
        else:
            split = None
    from model.search.evaluation import retrieval_metrics
    table = retrieval_metrics(emb, metric)
    rows = []
    for direction, vals in table.items():
        row = {"direction": direction}
        for c in METRIC_COLS:
            if c in vals:
                row[c] = vals[c]
        rows.append(row)
    return rows, len(emb["audio"])


def write_tables(rows: list[dict[str, Any]], csv_path: str | Path, md_path: str | Path,
                 header: str = "") -> None:
    from model.atomic import write_text
    cols = ["direction"] + [c for c in METRIC_COLS if any(c in r for r in rows)]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text(csv_path, buf.getvalue())

    def fmt(c: str, v: Any) -> str:
        if c == "MedR/N" and isinstance(v, float):
            return f"{v:.3f}"
        if c == "N" and isinstance(v, float):
            return str(int(v))
        if isinstance(v, float):
            return f"{v:.1f}"
        return str(v)

    md = [header, ""] if header else []
    md.append("| " + " | ".join(cols) + " |")
    md.append("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        md.append("| " + " | ".join(fmt(c, r.get(c, "")) for c in cols) + " |")
    write_text(md_path, "\n".join(md) + "\n")


# ---- dialogs (Qt) ---------------------------------------------------------------------------------
def export_tables_dialog(window: Any) -> Optional[Path]:
    from PySide6.QtWidgets import QFileDialog
    s = window.session
    if s.embeddings is None:
        s.notify("warning", "No active run to evaluate — train one or make a run active first.")
        return None
    path, _ = QFileDialog.getSaveFileName(window, "Export result tables", str(Path.home() / "ugaar-results.csv"),
                                          "CSV (*.csv)")
    if not path:
        return None
    return export_tables(window, Path(path))


def export_tables(window: Any, csv_path: Path) -> Optional[Path]:
    s = window.session
    try:
        splits = [s.dataset.sample(i).split for i in s.embedding_ids] if s.dataset is not None else None
        cfg = getattr(s.run, "config", None)
        rows, n = metrics_rows(s.embeddings, s.embedding_ids, splits, "test", getattr(cfg, "metric", "euclidean"))
        header = (f"Retrieval on the test split (N = {n}) — run {Path(str(s.run_dir)).name}, "
                  f"method {getattr(cfg, 'method', '?')}, seed {getattr(cfg, 'seed', '?')}, "
                  f"dataset {getattr(s.dataset, 'content_hash', '')[:12]}")
        md_path = csv_path.with_suffix(".md")
        write_tables(rows, csv_path, md_path, header)
    except Exception as exc:  # noqa: BLE001
        s.notify("error", f"Export failed: {exc}")
        return None
    s.notify("info", f"Wrote {csv_path} and {md_path}")
    return csv_path


def export_projector_dialog(window: Any) -> Optional[Path]:
    from PySide6.QtWidgets import QFileDialog
    s = window.session
    if s.embeddings is None:
        s.notify("warning", "No active run — its embeddings are what the projector shows.")
        return None
    path = QFileDialog.getExistingDirectory(window, "Folder for vectors.tsv and metadata.tsv", str(Path.home()))
    if not path:
        return None
    try:
        vec, meta = write_projector(s.embeddings, s.embedding_ids, s.dataset, path)
    except Exception as exc:  # noqa: BLE001
        s.notify("error", f"Export failed: {exc}")
        return None
    s.notify("info", f"Wrote {vec} and {meta} — load both at projector.tensorflow.org")
    return Path(path)
