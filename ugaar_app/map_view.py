"""Embedding map: UMAP of the active run's common space, all three modalities.

pyqtgraph ScatterPlotItem coloured by modality (or split, song, or partner
rank); hover shows the lyrics; click selects (and plays); the selected
sample's three points are joined by lines and its nearest neighbours
ringed; a box drawn with the "Box select" tool lists the boxed samples in
the library; the library's filter text rings the matching points.

The *shared* view (default) removes each modality's offset before UMAP so
a sample's three points land together; the *modality* view shows the raw
space (see :mod:`model.embedding_map`).  The layout itself, and its CSV
export, are the headless core's, shared with ``ugaar map``.
"""
from __future__ import annotations

import html
import zlib
from typing import Any, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QCheckBox, QComboBox, QGraphicsRectItem, QHBoxLayout, QLabel,
                               QProgressBar, QPushButton, QSizePolicy, QStackedLayout, QToolButton, QVBoxLayout,
                               QWidget)

from model.labels import sample_label

from .bridge import SessionBridge
from model.embedding_map import DEFAULT_VIEW, MIN_UMAP_POINTS, MODALITIES, VIEWS, compute_map
from .theme import MODALITY_COLORS, SPLIT_COLORS
from .workers import Task, TaskManager



class _BoxViewBox(pg.ViewBox):
    """A ViewBox that draws a selection rectangle while ``box_mode`` is on."""

    box_selected = Signal(QRectF)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.box_mode = False
        self._rect_item = QGraphicsRectItem()
        self._rect_item.setPen(pg.mkPen((255, 255, 255, 200), width=1, style=Qt.DashLine))
        self._rect_item.setBrush(pg.mkBrush(61, 143, 209, 40))
        self._rect_item.setZValue(1e9)
        self._rect_item.hide()
        self.addItem(self._rect_item, ignoreBounds=True)

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 - pyqtgraph API
        if not self.box_mode or ev.button() != Qt.LeftButton:
            return super().mouseDragEvent(ev, axis)
        ev.accept()
        p0 = self.mapSceneToView(ev.buttonDownScenePos())
        p1 = self.mapSceneToView(ev.scenePos())
        rect = QRectF(p0, p1).normalized()
        self._rect_item.setRect(rect)
        self._rect_item.show()
        if ev.isFinish():
            self._rect_item.hide()
            self.box_selected.emit(rect)


class MapView(QWidget):
    """The map of the active run; follows and drives ``session.selected``."""

    ORIGIN = "map"
    computed = Signal()

    def __init__(self, bridge: SessionBridge, tasks: TaskManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.session = bridge.session
        self.tasks = tasks
        self.task: Optional[Task] = None
        self.coords: Optional[np.ndarray] = None
        self.ids: list[str] = []
        self.row_of: dict[str, int] = {}
        self.n = 0
        self.visible_mask: Optional[np.ndarray] = None
        self.neighbours: list[tuple[str, str]] = []
        self.from_cache = False

        # -- toolbar
        self.color_by = QComboBox()
        self.color_by.addItems(["Colour by modality", "Colour by split", "Colour by song",
                                "Colour by partner rank"])
        self.color_by.setItemData(3, "Median rank of the sample's true partners over the six directions "
                                     "(needs an active run)", Qt.ToolTipRole)
        self.view_box = QComboBox()
        self.view_box.addItem("Shared view", "shared")
        self.view_box.addItem("Per-modality view", "modality")
        self.view_box.setToolTip("Shared: each modality's offset (mean on the training split) is removed before "
                                 "UMAP, so a sample's three points land together.\nPer-modality: the raw common "
                                 "space, where each modality forms its own island. Retrieval is unchanged.")
        self.view_box.setCurrentIndex(max(0, VIEWS.index(self.session.map_view)))
        self.show_mod = {m: QCheckBox(m) for m in MODALITIES}
        for m, cb in self.show_mod.items():
            cb.setChecked(True)
            r, g, b = MODALITY_COLORS[m]
            cb.setStyleSheet(f"QCheckBox {{ color: rgb({r},{g},{b}); font-weight: 600; }}")
        self.box_btn = QToolButton(text="Box select")
        self.box_btn.setCheckable(True)
        self.box_btn.setToolTip("Drag a box to list its samples in the library")
        self.play_on_click = QCheckBox("Play on click")
        self.play_on_click.setChecked(True)
        self.reset_btn = QToolButton(text="Reset")
        self.reset_btn.setToolTip("Show all points")
        self.compute_btn = QPushButton("Compute map")
        self.export_btn = QToolButton(text="Export CSV…")
        self.export_btn.setToolTip("Save the map's coordinates with each point's metadata (as `ugaar map` writes)")
        self.export_btn.setEnabled(False)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.hide()
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(200)
        self.bar.hide()
        self.status = QLabel()
        self.status.setObjectName("muted")
        self.status.setMinimumWidth(40)
        self.status.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        tb = QHBoxLayout()
        tb.addWidget(self.view_box)
        tb.addWidget(self.color_by)
        for cb in self.show_mod.values():
            tb.addWidget(cb)
        tb.addSpacing(12)
        tb.addWidget(self.box_btn)
        tb.addWidget(self.reset_btn)
        tb.addWidget(self.play_on_click)
        tb.addWidget(self.export_btn)
        tb.addWidget(self.status, 1)
        tb.addWidget(self.bar)
        tb.addWidget(self.cancel_btn)
        tb.addWidget(self.compute_btn)

        # -- plot
        self.vb = _BoxViewBox()
        self.plot = pg.PlotWidget(viewBox=self.vb)
        self.plot.setBackground((24, 27, 31))
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setAspectLocked(False)
        self.legend = self.plot.addLegend(offset=(10, 10))
        self.scatter = pg.ScatterPlotItem(size=7, pen=None, hoverable=True, hoverSize=12, antialias=True,
                                          hoverPen=pg.mkPen("w", width=1.5), tip=None)
        self.plot.addItem(self.scatter)
        self.neigh_item = pg.ScatterPlotItem(size=15, pen=pg.mkPen((255, 255, 255, 200), width=1.5),
                                             brush=None, symbol="o")
        self.neigh_item.setZValue(5)
        self.plot.addItem(self.neigh_item)
        self.sel_line = pg.PlotDataItem(pen=pg.mkPen((255, 255, 255, 230), width=2), antialias=True)
        self.sel_line.setZValue(6)
        self.plot.addItem(self.sel_line)
        self.sel_item = pg.ScatterPlotItem(size=16, pen=pg.mkPen("w", width=2), symbol="o")
        self.sel_item.setZValue(7)
        self.plot.addItem(self.sel_item)
        # the library's text matches: yellow rings over the points, above the cloud
        self.highlight_item = pg.ScatterPlotItem(size=13, pen=pg.mkPen((255, 214, 10), width=2),
                                                 brush=None, symbol="o")
        self.highlight_item.setZValue(4)
        self.plot.addItem(self.highlight_item)
        self.highlighted: list[int] = []  # point indices ringed
        self._legend_items: list[Any] = []

        self.placeholder = QLabel()
        self.placeholder.setAlignment(Qt.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setObjectName("muted")
        self.stack = QStackedLayout()
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(self.plot)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(tb)
        layout.addLayout(self.stack, 1)

        self.scatter.sigClicked.connect(self._on_clicked)
        self.scatter.sigHovered.connect(self._on_hovered)
        self.vb.box_selected.connect(self._on_box)
        self.box_btn.toggled.connect(self._on_box_mode)
        self.reset_btn.clicked.connect(lambda: self.plot.autoRange())
        self.color_by.currentIndexChanged.connect(lambda _i: self._refresh_points())
        self.view_box.currentIndexChanged.connect(lambda _i: self._on_view())
        self.export_btn.clicked.connect(self._export_dialog)
        for cb in self.show_mod.values():
            cb.toggled.connect(lambda _c: self._refresh_points())
        self.compute_btn.clicked.connect(lambda: self.compute(force=True))
        self.cancel_btn.clicked.connect(self.cancel)
        bridge.run_changed.connect(self._on_run)
        bridge.selection_changed.connect(self._on_selection)
        bridge.highlight_changed.connect(lambda _ids: self._draw_highlight())
        bridge.partner_ranks_changed.connect(lambda _r: self.color_by.currentIndex() == 3 and self._refresh_points())
        bridge.dataset_changed.connect(lambda _d: self._on_run(None))
        self._on_run(self.session.run)

    # ---- computing -------------------------------------------------------------------
    def show_preview(self, preview: dict[str, Any]) -> None:
        """Draw a run's cached layout before the run itself (and its index) is open."""
        if self.session.run is not None or self.session.dataset is None:
            return
        if preview.get("view", "shared") != self.view():
            return
        self.preview_run_dir = preview["run_dir"]
        self.set_coords(preview["coords"], list(preview["ids"]), from_cache=True)

    def _on_run(self, run: Any) -> None:
        self.cancel()
        run_dir = str(self.session.run_dir) if self.session.run_dir is not None else None
        keep = (run is not None and self.coords is not None and run_dir is not None
                and getattr(self, "preview_run_dir", None) == run_dir)
        self.preview_run_dir = None
        if not keep:  # a preview of this run stays on screen while the cache is re-read
            self.coords = None
            self.scatter.clear()
            self._clear_selection_items()
        self.export_btn.setEnabled(False)
        if run is None or self.session.embeddings is None:
            self.coords = None
            self.scatter.clear()
            self._clear_selection_items()
            if self.session.dataset is None:
                msg = "No dataset open.\n\nBuild the embedded default in “Get started” (one click) or open a dataset."
            elif self.session.features is None:
                msg = "This dataset has no features yet.\n\nExtract them in the Datasets tab, then train a model."
            else:
                msg = "No active run.\n\nTrain a model in the Training tab (or make a finished run active)."
            self.placeholder.setText(msg)
            self.stack.setCurrentWidget(self.placeholder)
            self.compute_btn.setEnabled(False)
            self.status.setText("")
            return
        self.compute_btn.setEnabled(True)
        self.compute()

    def compute(self, force: bool = False) -> Optional[Task]:
        """Compute (or load from the run's cache) the 2-D layout off the GUI thread."""
        emb = self.session.embeddings
        ids = self.session.embedding_ids
        if emb is None or ids is None:
            return None
        if self.task is not None and not self.task.done:
            return self.task
        run_dir = self.session.run_dir
        cache_dir = run_dir if run_dir is not None and run_dir.is_dir() else None
        if force and cache_dir is not None:
            for p in cache_dir.glob("umap-*.npz"):
                try:
                    p.unlink()
                except OSError:
                    pass
        self.placeholder.setText("Computing the map (UMAP) …")
        if self.coords is None:
            self.stack.setCurrentWidget(self.placeholder)
        self.bar.show()
        self.bar.setRange(0, 0)
        self.cancel_btn.show()
        self.compute_btn.setEnabled(False)
        self.status.setText("UMAP …")
        emb = {m: np.asarray(emb[m]) for m in MODALITIES}
        if len({v.shape[1] for v in emb.values()}) != 1:
            self.placeholder.setText("This run keeps each modality in its own space (e.g. CCA), so there is no "
                                     "common space to map. Make a UGAAR or Baseline run active.")
            self.stack.setCurrentWidget(self.placeholder)
            self.bar.hide()
            self.cancel_btn.hide()
            self.status.setText("")
            return None
        run = self.session.run
        view = self.view()
        splits = self.splits(list(ids))

        def work(progress, cancel):
            return compute_map(emb, view=view, splits=splits, cache_dir=cache_dir, progress=progress, cancel=cancel)

        def done(result):
            if self.session.run is not run or self.view() != view:
                return
            coords, from_cache = result
            self.set_coords(coords, list(ids), from_cache)

        def failed(msg):
            self.session.notify("error", msg)
            self.placeholder.setText(f"The map could not be computed:\n{msg}")

        self.task = self.tasks.start("Embedding map", work, on_done=done, on_error=failed)
        self.task.progress.connect(self._on_progress)
        self.task.ended.connect(self._on_ended)
        return self.task

    def cancel(self) -> None:
        if self.task is not None and not self.task.done:
            self.task.cancel()

    def view(self) -> str:
        """``shared`` or ``modality``."""
        return self.view_box.currentData() or DEFAULT_VIEW

    def set_view(self, view: str) -> None:
        self.view_box.setCurrentIndex(VIEWS.index(view))

    def _on_view(self) -> None:
        self.session.map_view = self.view()
        if self.session.embeddings is None:
            return
        if self.task is not None and not self.task.done:
            # the running layout is for the other view: stop it, then lay out this one
            task = self.task
            task.cancel()
            task.ended.connect(lambda: self.compute())
            return
        self.compute()

    def splits(self, ids: list[str]) -> list[str]:
        """Each sample's split, as the run saved it (else from the dataset): the shared view's offsets
        come from the training rows, as in ``ugaar map``."""
        run = self.session.run
        try:
            saved = [str(x) for x in run.splits]
            if len(saved) == len(ids) and [str(i) for i in run.sample_ids] == ids:
                return saved
        except Exception:  # noqa: BLE001 - a run without saved embeddings: ask the dataset
            pass
        out = []
        for sid in ids:
            s = self.session.sample(sid)
            out.append(s.split if s is not None else "")
        return out

    def shutdown(self) -> None:
        self.cancel()
        from model import embedding_map
        if embedding_map._SERVER is not None:
            embedding_map._SERVER.close()

    def _on_progress(self, p: Any) -> None:
        if p.total:
            self.bar.setRange(0, p.total)
            self.bar.setValue(p.done)
        else:
            self.bar.setRange(0, 0)
        self.status.setText(p.message or "UMAP …")

    def _on_ended(self) -> None:
        self.bar.hide()
        self.cancel_btn.hide()
        self.compute_btn.setEnabled(self.session.embeddings is not None)
        self.compute_btn.setText("Recompute map")
        if self.task is not None and self.task.result is None and self.coords is None:
            self.placeholder.setText("Map cancelled. Press “Compute map” to try again.")

    def set_coords(self, coords: np.ndarray, ids: list[str], from_cache: bool = False) -> None:
        self.coords = np.asarray(coords, dtype=np.float32)
        self.ids = ids
        self.n = len(ids)
        self.row_of = {sid: i for i, sid in enumerate(ids)}
        self.from_cache = from_cache
        self.stack.setCurrentWidget(self.plot)
        self._refresh_points()
        self.plot.autoRange()
        self.export_btn.setEnabled(True)
        method = "UMAP" if 3 * self.n >= MIN_UMAP_POINTS else "PCA (too few points for UMAP)"
        self.status.setText(f"{self.n} samples × 3 modalities · {method}" + (" · cached" if from_cache else ""))
        self._on_selection(self.session.selected, "")
        self.computed.emit()

    # ---- drawing --------------------------------------------------------------------------
    def point_info(self, i: int) -> tuple[str, str]:
        """(sample_id, modality) of point ``i``."""
        return self.ids[i % self.n], MODALITIES[i // self.n]

    def _colors(self) -> tuple[list[Any], list[tuple[str, tuple[int, int, int]]]]:
        mode = self.color_by.currentIndex()
        n = self.n
        if mode == 0:
            brushes = {m: pg.mkBrush(*MODALITY_COLORS[m], 190) for m in MODALITIES}
            out = [brushes[m] for m in MODALITIES for _ in range(n)]
            return out, [(m, MODALITY_COLORS[m]) for m in MODALITIES]
        ds = self.session.dataset
        samples = [ds.sample(sid) if ds is not None else None for sid in self.ids]
        if mode == 1:
            brushes = {k: pg.mkBrush(*c, 190) for k, c in SPLIT_COLORS.items()}
            grey = pg.mkBrush(150, 150, 150, 190)
            per = [brushes.get(s.split, grey) if s is not None else grey for s in samples]
            return per * 3, [(k, c) for k, c in SPLIT_COLORS.items()]
        cache: dict[str, Any] = {}
        per = []
        for s in samples:
            key = s.song_id if s is not None else ""
            if key not in cache:
                hue = (zlib.crc32(key.encode()) % 360)
                c = QColor.fromHsv(hue, 170, 235, 190)
                cache[key] = pg.mkBrush(c)
            per.append(cache[key])
        return per * 3, []

    def _rank_colors(self) -> tuple[list[Any], list[tuple[str, tuple[int, int, int]]]]:
        """Binned by the median partner rank: where retrieval finds the partner first, and where it fails."""
        bins = ((1, "rank 1", (80, 200, 120)), (10, "rank 2–10", (200, 210, 80)),
                (100, "rank 11–100", (240, 150, 60)), (float("inf"), "rank > 100", (220, 70, 70)))
        grey = pg.mkBrush(150, 150, 150, 120)
        ranks = self.session.partner_ranks
        ids = self.session.embedding_ids or []
        if ranks is None or len(ranks) != len(ids):
            return [grey] * (3 * self.n), []
        rank_of = dict(zip(ids, ranks))
        brushes = [pg.mkBrush(*c, 200) for _hi, _name, c in bins]
        per = []
        for sid in self.ids:
            r = rank_of.get(sid)
            per.append(grey if r is None else next(b for (hi, _n, _c), b in zip(bins, brushes) if r <= hi))
        return per * 3, [(name, c) for _hi, name, c in bins]

    def _refresh_points(self) -> None:
        if self.coords is None or self.n == 0:
            return
        brushes, legend = self._rank_colors() if self.color_by.currentIndex() == 3 else self._colors()
        mask = np.zeros(3 * self.n, dtype=bool)
        for k, m in enumerate(MODALITIES):
            if self.show_mod[m].isChecked():
                mask[k * self.n:(k + 1) * self.n] = True
        self.visible_mask = mask
        idx = np.nonzero(mask)[0]
        self.scatter.setData(x=self.coords[idx, 0], y=self.coords[idx, 1], data=idx,
                             brush=[brushes[i] for i in idx], symbol="o")
        for item in self._legend_items:
            self.legend.removeItem(item)
        self._legend_items = []
        for name, c in legend:
            item = pg.ScatterPlotItem(size=9, brush=pg.mkBrush(*c), pen=None)
            self.legend.addItem(item, name)
            self._legend_items.append(item)
        self._draw_selection()
        self._draw_highlight()

    def _draw_highlight(self) -> None:
        """Ring the visible points of the samples the library's filter text matches."""
        ids = self.session.highlight
        if self.coords is None or not ids or self.visible_mask is None:
            self.highlighted = []
            self.highlight_item.clear()
            return
        rows = [self.row_of[sid] for sid in ids if sid in self.row_of]
        pts = [k * self.n + r for k in range(3) for r in rows if self.visible_mask[k * self.n + r]]
        self.highlighted = pts
        if pts:
            a = self.coords[pts]
            self.highlight_item.setData(x=a[:, 0], y=a[:, 1])
        else:
            self.highlight_item.clear()

    def _clear_selection_items(self) -> None:
        self.sel_item.clear()
        self.sel_line.setData([], [])
        self.neigh_item.clear()

    def _draw_selection(self) -> None:
        sid = self.session.selected
        if self.coords is None or sid is None or sid not in self.row_of:
            self._clear_selection_items()
            return
        r = self.row_of[sid]
        pts = np.array([self.coords[k * self.n + r] for k in range(3)])
        brushes = [pg.mkBrush(*MODALITY_COLORS[m]) for m in MODALITIES]
        self.sel_item.setData(x=pts[:, 0], y=pts[:, 1], brush=brushes)
        loop = np.vstack([pts, pts[:1]])
        self.sel_line.setData(loop[:, 0], loop[:, 1])
        npts = []
        for nid, mod in self.neighbours:
            if nid in self.row_of:
                npts.append(self.coords[MODALITIES.index(mod) * self.n + self.row_of[nid]])
        if npts:
            a = np.array(npts)
            self.neigh_item.setData(x=a[:, 0], y=a[:, 1])
        else:
            self.neigh_item.clear()

    # ---- session → view ----------------------------------------------------------------------
    def _on_selection(self, sample_id: Optional[str], _origin: str) -> None:
        self.neighbours = self._neighbours(sample_id)
        self._draw_selection()

    def _neighbours(self, sample_id: Optional[str], k: int = 5) -> list[tuple[str, str]]:
        index = self.session.index
        if index is None or sample_id is None or sample_id not in self.row_of:
            return []
        out: list[tuple[str, str]] = []
        for src in MODALITIES:
            for tgt in MODALITIES:
                if tgt == src:
                    continue
                try:
                    for nid, _d in index.query_sample(sample_id, src, tgt, k):
                        if nid != sample_id:
                            out.append((nid, tgt))
                except Exception:  # noqa: BLE001 - sample outside the index
                    return out
        return out

    # ---- view → session ----------------------------------------------------------------------
    def select_point(self, i: int) -> None:
        sid, _mod = self.point_info(int(i))
        self.session.select(sid, origin=self.ORIGIN)
        self._on_selection(sid, self.ORIGIN)
        if self.play_on_click.isChecked():
            player = getattr(self.window(), "sample_view", None)
            if player is not None:
                player.player.play()

    def _on_clicked(self, _item: Any, points: Any, _ev: Any = None) -> None:
        if len(points) == 0:
            return
        self.select_point(points[0].data())

    def _on_hovered(self, _item: Any, points: Any, _ev: Any = None) -> None:
        if len(points) == 0:
            self.plot.setToolTip("")
            return
        sid, mod = self.point_info(int(points[0].data()))
        s = self.session.sample(sid)
        if s is None:
            return
        self.plot.setToolTip(f"<b>{html.escape(sample_label(s))}</b> · {mod} · {s.split}<br>"
                             f"<i>{html.escape(s.lyrics_text)}</i><br><small>{html.escape(sid)}</small>")

    def _on_box_mode(self, on: bool) -> None:
        self.vb.box_mode = on
        self.setCursor(Qt.CrossCursor if on else Qt.ArrowCursor)

    def _on_box(self, rect: QRectF) -> None:
        if self.coords is None or self.visible_mask is None:
            return
        x, y = self.coords[:, 0], self.coords[:, 1]
        inside = ((x >= rect.left()) & (x <= rect.right()) & (y >= rect.top()) & (y <= rect.bottom())
                  & self.visible_mask)
        rows = sorted({int(i) % self.n for i in np.nonzero(inside)[0]})
        ids = [self.ids[r] for r in rows]
        self.session.set_map_selection(ids)
        self.session.notify("info", f"{len(ids)} samples boxed in the map — listed in the library")

    def box_select(self, rect: QRectF) -> None:
        """Programmatic box selection (tests, scripting)."""
        self._on_box(rect)

    # ---- export ----------------------------------------------------------------------------------
    def map_rows(self) -> list[dict[str, Any]]:
        """The map as ``ugaar map`` writes it (:func:`model.map_export.map_rows`)."""
        from model.map_export import map_rows
        ranks = self.session.partner_ranks
        ids = self.session.embedding_ids or []
        if ranks is not None and len(ranks) == len(ids) and ids == self.ids:
            per = list(ranks)
        else:
            per = None
        return map_rows(self.coords, self.ids, sample_of=self.session.sample, splits=self.splits(self.ids),
                        partner_ranks=per)

    def export_csv(self, path: str) -> Optional[str]:
        """Write the shown layout with metadata as CSV; a message either way."""
        from model.map_export import write_map_csv
        if self.coords is None:
            self.session.notify("warning", "No map to export yet.")
            return None
        try:
            out = write_map_csv(path, self.map_rows())
        except Exception as exc:  # noqa: BLE001
            self.session.notify("error", f"Map export failed: {exc}")
            return None
        self.session.notify("info", f"Wrote the {self.view()} map ({3 * self.n} points) to {out}")
        return str(out)

    def _export_dialog(self) -> None:
        from pathlib import Path

        from PySide6.QtWidgets import QFileDialog
        path, _ = QFileDialog.getSaveFileName(self, "Export the map as CSV",
                                              str(Path.home() / f"ugaar-map-{self.view()}.csv"), "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def point_pos(self, sample_id: str, modality: str = "audio") -> QPointF:
        i = MODALITIES.index(modality) * self.n + self.row_of[sample_id]
        return QPointF(float(self.coords[i, 0]), float(self.coords[i, 1]))
