"""Embedding map: UMAP of the active run's common space, all three modalities.

pyqtgraph ScatterPlotItem coloured by modality, song or any per-sample field
(split, source, pitch range, tempo, words, stress regularity, partner rank;
:mod:`model.map.fields`), with a legend that counts the current selection;
hover shows the lyrics (and, with "Play on hover", plays the sample after a
short dwell); click selects (and plays); the selected sample's three points
are joined by lines and its nearest neighbours ringed; a box or lasso drawn
with the "Box"/"Lasso" tools selects the enclosed samples (ringed in the map,
listed in the library); the library's filter text rings the matching points.

Large maps (10⁵ points and more) draw at most :data:`DRAW_BUDGET` points per
frame (a fixed random subset of those in view, all of them once zoomed in),
so panning and zooming stay under the 100 ms stall goal
(docs/benchmarks.md, "GUI").

The *shared* view (default) lays out the recordings and draws each sheet
and lyrics item beside the recording retrieval returns first for it, so a
sample's points land together where the model aligns them; the *modality*
view shows the raw space (see :mod:`model.map.layout`).  The layout itself, and its CSV
export, are the headless core's, shared with ``ugaar map``.
"""
from __future__ import annotations

import html
import zlib
from typing import Any, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainterPath
from PySide6.QtWidgets import (QCheckBox, QComboBox, QGraphicsPathItem, QGraphicsRectItem, QHBoxLayout, QLabel,
                               QProgressBar, QPushButton, QSizePolicy, QStackedLayout, QToolButton, QVBoxLayout,
                               QWidget)

from model.data.labels import sample_label

from .bridge import SessionBridge
from model.map.layout import DEFAULT_VIEW, MIN_UMAP_POINTS, MODALITIES, VIEWS, compute_map, run_metric
from model.map.fields import FIELDS, Bins, bin_values, field_values, legend_counts
from model.map.selection import points_in_polygon, points_in_rect, selected_rows
from .theme import MODALITY_COLORS, SPLIT_COLORS
from .workers import Task, TaskManager

#: Most points one scatter draws per frame; above it, a fixed random subset of those in view
#: (:class:`LodScatter`).  Drawing alone took 76–95 ms a frame for 300k points on the loaded
#: 2-core machine (docs/benchmarks.md, "GUI"); 60k leave room for the rest of the frame.
DRAW_BUDGET = 60_000
#: Above this many points symbols are drawn without antialiasing (it doubled the paint time).
ANTIALIAS_MAX = 20_000
#: How long the mouse must rest on a point before "Play on hover" plays it.
HOVER_PLAY_MS = 350

#: Colour-by entries: (key, label); keys other than modality/song are :data:`model.map.fields.FIELDS`.
COLOR_FIELDS = (("modality", "Colour by modality"), ("split", "Colour by split"), ("song", "Colour by song"),
                ("partner_rank", "Colour by partner rank"), ("source", "Colour by source"),
                ("pitch_range", "Colour by pitch range"), ("tempo", "Colour by tempo"),
                ("n_words", "Colour by number of words"), ("stress_regularity", "Colour by stress regularity"))
_RANK_BINS = ((1, "rank 1", (80, 200, 120)), (10, "rank 2–10", (200, 210, 80)),
              (100, "rank 11–100", (240, 150, 60)), (float("inf"), "rank > 100", (220, 70, 70)))


class LodScatter(pg.ScatterPlotItem):
    """A ScatterPlotItem whose paint touches only the points near the view, at most ``budget`` of them.

    pyqtgraph's own fast path is kept (pxMode, ``useCache``: one
    drawPixmapFragments call), but its paint culls by scanning *every* point
    several times a frame and then draws all those in view: on 300k points
    that was 120–140 ms a frame here.  Above ``budget`` points this item
    keeps its rows sorted by x and, for each frame, hands pyqtgraph's paint
    only the x-band the view covers; when that band holds more than
    ``budget`` points in view, it paints the same band of a fixed random
    subset of ``budget`` points instead (zoomed out the cloud looks the
    same; zoomed in every point is drawn).  Hover and click see all points.
    """

    def __init__(self, *args: Any, budget: int = DRAW_BUDGET, **kwargs: Any) -> None:
        self.budget = budget
        self.lod = True  # False: plain pyqtgraph painting (benchmarks compare the two)
        self._xs: Optional[np.ndarray] = None    # sorted x of all rows (None: small, plain pyqtgraph)
        self._sub: Optional[np.ndarray] = None   # the random subset's rows, in the same x order
        self._sub_xs: Optional[np.ndarray] = None
        self.drawn = 0  # points in the last frame's view mask (tests, benchmarks)
        super().__init__(*args, **kwargs)

    def setData(self, *args: Any, **kwargs: Any) -> None:  # noqa: N802 - pyqtgraph API
        super().setData(*args, **kwargs)
        self._xs = self._sub = self._sub_xs = None
        n = len(self.data)
        if n <= self.budget:
            return
        # rows in x order (each keeps its ``data`` field, the point's identity): the view's band is a slice
        self.data = self.data[np.argsort(self.data["x"], kind="stable")]
        self._xs = np.ascontiguousarray(self.data["x"], dtype=float)
        # a fixed subset: the same points stay drawn while panning, so the cloud does not flicker
        keep = np.random.default_rng(0).random(n) < self.budget / n
        self._sub = self.data[keep]
        self._sub_xs = self._xs[keep]

    def clear(self) -> None:
        super().clear()
        self._xs = self._sub = self._sub_xs = None

    def _maskAt(self, obj: Any) -> np.ndarray:  # noqa: N802 - pyqtgraph internal, its paint's culling
        mask = super()._maskAt(obj)
        if isinstance(obj, QRectF):
            self.drawn = int(np.count_nonzero(mask))
        return mask

    def _rows_for(self, rect: QRectF) -> Optional[np.ndarray]:
        """The rows to paint for the view ``rect`` (None: all of them)."""
        if self._xs is None or self._sub is None or self._sub_xs is None:
            return None
        vb = self.getViewBox()
        px, py = vb.viewPixelSize() if vb is not None else (0.0, 0.0)
        mx, my = 16 * abs(px), 16 * abs(py)  # a symbol's width beyond the edge still shows
        left, right = rect.left() - mx, rect.right() + mx
        bottom, top = min(rect.top(), rect.bottom()) - my, max(rect.top(), rect.bottom()) + my
        lo, hi = np.searchsorted(self._xs, [left, right])
        if hi - lo <= self.budget:
            return self.data[lo:hi]
        slo, shi = np.searchsorted(self._sub_xs, [left, right])
        sub = self._sub[slo:shi]
        sy = sub["y"]
        in_view = int(np.count_nonzero((sy >= bottom) & (sy <= top)))
        if in_view * len(self.data) / len(self._sub) > 1.5 * self.budget:
            return sub  # clearly too many: the subset's band
        band = self.data[lo:hi]
        y = band["y"]
        rows = band[(y >= bottom) & (y <= top)]
        return rows if len(rows) <= self.budget else sub

    def paint(self, p: Any, option: Any, widget: Any = None) -> None:
        full = self.data
        rows = self._rows_for(self.viewRect()) if self.lod and self._exportOpts is False else None
        if rows is None:
            return super().paint(p, option, widget)
        self.data = rows
        try:
            super().paint(p, option, widget)
        finally:
            self.data = full


class _BoxViewBox(pg.ViewBox):
    """A ViewBox that draws a selection rectangle (``box_mode``) or a free-hand lasso (``lasso_mode``)."""

    box_selected = Signal(QRectF)
    lasso_selected = Signal(object)  # (K, 2) polygon in view coordinates

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.box_mode = False
        self.lasso_mode = False
        self._rect_item = QGraphicsRectItem()
        self._rect_item.setPen(pg.mkPen((255, 255, 255, 200), width=1, style=Qt.DashLine))
        self._rect_item.setBrush(pg.mkBrush(61, 143, 209, 40))
        self._rect_item.setZValue(1e9)
        self._rect_item.hide()
        self.addItem(self._rect_item, ignoreBounds=True)
        self._lasso_item = QGraphicsPathItem()
        self._lasso_item.setPen(pg.mkPen((255, 255, 255, 220), width=1.5, style=Qt.DashLine, cosmetic=True))
        self._lasso_item.setBrush(pg.mkBrush(61, 143, 209, 40))
        self._lasso_item.setZValue(1e9)
        self._lasso_item.hide()
        self.addItem(self._lasso_item, ignoreBounds=True)
        self._lasso: list[tuple[float, float]] = []

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 - pyqtgraph API
        if self.lasso_mode and ev.button() == Qt.LeftButton:
            ev.accept()
            if ev.isStart():
                p0 = self.mapSceneToView(ev.buttonDownScenePos())
                self._lasso = [(p0.x(), p0.y())]
            p = self.mapSceneToView(ev.scenePos())
            self._lasso.append((p.x(), p.y()))
            path = QPainterPath(QPointF(*self._lasso[0]))
            for x, y in self._lasso[1:]:
                path.lineTo(x, y)
            path.closeSubpath()
            self._lasso_item.setPath(path)
            self._lasso_item.show()
            if ev.isFinish():
                self._lasso_item.hide()
                self.lasso_selected.emit(np.array(self._lasso, dtype=float))
                self._lasso = []
            return
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
        for key, label in COLOR_FIELDS:
            self.color_by.addItem(label, key)
        self.color_by.setItemData(3, "Median rank of the sample's true partners over the six directions "
                                     "(needs an active run)", Qt.ToolTipRole)
        self.color_by.setItemData(6, "Beats per minute from the notes' beat values (grey where the source "
                                     "has none)", Qt.ToolTipRole)
        self.color_by.setItemData(8, "Share of the syllables with primary stress (CMU dictionary), among "
                                     "the words it knows", Qt.ToolTipRole)
        self._fields: dict[str, np.ndarray] = {}  # field values per sample row, computed on first use
        self.view_box = QComboBox()
        self.view_box.addItem("Shared view", "shared")
        self.view_box.addItem("Per-modality view", "modality")
        self.view_box.setToolTip("Shared: UMAP of the recordings; each sheet and lyrics item is drawn beside the "
                                 "recording retrieval returns first for it,\nso a sample's points land together "
                                 "where the model aligns them and apart where it does not.\nPer-modality: UMAP of "
                                 "the raw common space, where each modality forms its own island. Retrieval is "
                                 "unchanged.")
        self.view_box.setCurrentIndex(max(0, VIEWS.index(self.session.map_view)))
        self.show_mod = {m: QCheckBox(m) for m in MODALITIES}
        for m, cb in self.show_mod.items():
            cb.setChecked(True)
            r, g, b = MODALITY_COLORS[m]
            cb.setStyleSheet(f"QCheckBox {{ color: rgb({r},{g},{b}); font-weight: 600; }}")
        self.box_btn = QToolButton(text="Box")
        self.box_btn.setCheckable(True)
        self.box_btn.setToolTip("Box select: drag a box to select its samples (listed in the library)")
        self.lasso_btn = QToolButton(text="Lasso")
        self.lasso_btn.setCheckable(True)
        self.lasso_btn.setToolTip("Lasso select: draw round the points to select their samples "
                                  "(listed in the library)")
        self.play_on_click = QCheckBox("Play on click")
        self.play_on_click.setChecked(True)
        self.play_on_hover = QCheckBox("Play on hover")
        self.play_on_hover.setToolTip(f"Play the sample under the mouse once it rests there "
                                      f"({HOVER_PLAY_MS} ms); it becomes the selected sample")
        self._hover_sid: Optional[str] = None
        self._hover_timer = QTimer(self)
        self._hover_timer.setSingleShot(True)
        self._hover_timer.setInterval(HOVER_PLAY_MS)
        self._hover_timer.timeout.connect(self._hover_play)
        self.reset_btn = QToolButton(text="Reset")
        self.reset_btn.setToolTip("Show all points")
        self.compute_btn = QPushButton("Compute map")
        self.export_btn = QToolButton(text="Export…")
        self.export_btn.setToolTip("Save the map's coordinates with each point's metadata as CSV or Parquet "
                                   "(as `ugaar map` writes)")
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
        tb.addWidget(self.lasso_btn)
        tb.addWidget(self.reset_btn)
        tb.addWidget(self.play_on_click)
        tb.addWidget(self.play_on_hover)
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
        self.scatter = LodScatter(size=7, pen=None, hoverable=True, hoverSize=12, antialias=True,
                                  hoverPen=pg.mkPen("w", width=1.5), tip=None)
        self.plot.addItem(self.scatter)
        # the box/lasso selection: thin white rings, under the library's yellow ones
        self.mapsel_item = LodScatter(size=10, pen=pg.mkPen((255, 255, 255, 170), width=1), brush=None,
                                      symbol="o", antialias=False)
        self.mapsel_item.setZValue(3)
        self.plot.addItem(self.mapsel_item)
        self.mapsel_points: np.ndarray = np.zeros(0, dtype=np.int64)  # point indices ringed
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
        self.vb.lasso_selected.connect(self._on_lasso)
        self.box_btn.toggled.connect(self._on_box_mode)
        self.lasso_btn.toggled.connect(self._on_lasso_mode)
        self.play_on_hover.toggled.connect(lambda on: on or self._hover_timer.stop())
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
        bridge.map_selection_changed.connect(lambda _ids: self._on_map_selection())
        bridge.partner_ranks_changed.connect(self._on_ranks)
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
        metric = run_metric(run)

        def work(progress, cancel):
            return compute_map(emb, view=view, metric=metric, cache_dir=cache_dir, progress=progress, cancel=cancel)

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
        """Each sample's split, as the run saved it (else from the dataset)."""
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
        from model.map import layout as map_layout
        if map_layout._SERVER is not None:
            map_layout._SERVER.close()

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
        self._fields = {}
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

    def color_field(self) -> str:
        """The colour-by key (:data:`COLOR_FIELDS`)."""
        return self.color_by.currentData() or "modality"

    def set_color_field(self, key: str) -> None:
        self.color_by.setCurrentIndex([k for k, _l in COLOR_FIELDS].index(key))

    def field(self, key: str) -> np.ndarray:
        """Values of field ``key`` per sample row of the map (computed once per layout)."""
        if key not in self._fields:
            samples = [self.session.sample(sid) for sid in self.ids]
            ranks = None
            if key == "partner_rank":
                ids = self.session.embedding_ids or []
                r = self.session.partner_ranks
                if r is not None and len(r) == len(ids):
                    rank_of = dict(zip(ids, np.asarray(r, dtype=float)))
                    ranks = [rank_of.get(sid, np.nan) for sid in self.ids]
            values = field_values(key, samples, partner_ranks=ranks)
            if key == "split":  # the run's saved splits where the dataset cannot say
                values = np.array([v or sp for v, sp in zip(values, self.splits(self.ids))], dtype=object)
            self._fields[key] = values
        return self._fields[key]

    def legend_bins(self) -> tuple[Optional[Bins], list[tuple[int, int, int]]]:
        """Each sample row's legend class for the current colouring, and each class's colour.

        ``(None, [])`` for song colouring (one colour per song, no legend); for
        modality colouring the classes are the modalities themselves.
        """
        key = self.color_field()
        n = self.n
        if key == "modality":
            return Bins(np.zeros(n, dtype=np.int64), list(MODALITIES)), [MODALITY_COLORS[m] for m in MODALITIES]
        if key == "song":
            return None, []
        if key == "partner_rank":
            r = self.field("partner_rank")
            codes = np.full(n, -1, dtype=np.int64)
            finite = np.isfinite(r)
            if finite.any():
                codes[finite] = np.searchsorted([hi for hi, _n, _c in _RANK_BINS[:-1]], r[finite], side="left")
            return Bins(codes, [name for _hi, name, _c in _RANK_BINS]), [c for _hi, _n, c in _RANK_BINS]
        bins = bin_values(self.field(key), FIELDS[key][1])
        if key == "split":
            grey = (150, 150, 150)
            return bins, [SPLIT_COLORS.get(lab, grey) for lab in bins.labels]
        k = len(bins.labels)
        if FIELDS[key][1] == "categorical":
            colors = [QColor.fromHsv(int(360 * i / max(k, 1)) % 360, 170, 235).getRgb()[:3] for i in range(k)]
        else:
            cmap = pg.colormap.get("viridis")
            colors = [tuple(int(c) for c in cmap.map(0.1 + 0.85 * i / max(k - 1, 1), mode="byte")[:3])
                      for i in range(k)]
        return bins, colors

    def _point_brushes(self, bins: Optional[Bins], colors: list[tuple[int, int, int]]) -> list[Any]:
        n = self.n
        grey = pg.mkBrush(150, 150, 150, 120)
        if self.color_field() == "modality":
            brushes = {m: pg.mkBrush(*MODALITY_COLORS[m], 190) for m in MODALITIES}
            return [brushes[m] for m in MODALITIES for _ in range(n)]
        if bins is None:  # one hue per song
            cache: dict[str, Any] = {}
            per = []
            for sid in self.ids:
                s = self.session.sample(sid)
                key = s.song_id if s is not None else ""
                if key not in cache:
                    cache[key] = pg.mkBrush(QColor.fromHsv(zlib.crc32(key.encode()) % 360, 170, 235, 190))
                per.append(cache[key])
            return per * 3
        palette = [pg.mkBrush(*c, 200) for c in colors] + [grey]
        return [palette[c] for c in bins.codes] * 3  # code -1 → the last entry, grey

    def _refresh_points(self) -> None:
        if self.coords is None or self.n == 0:
            return
        bins, colors = self.legend_bins()
        brushes = self._point_brushes(bins, colors)
        mask = np.zeros(3 * self.n, dtype=bool)
        for k, m in enumerate(MODALITIES):
            if self.show_mod[m].isChecked():
                mask[k * self.n:(k + 1) * self.n] = True
        self.visible_mask = mask
        idx = np.nonzero(mask)[0]
        self.scatter.setData(x=self.coords[idx, 0], y=self.coords[idx, 1], data=idx,
                             brush=[brushes[i] for i in idx], symbol="o", antialias=len(idx) <= ANTIALIAS_MAX)
        self._bins, self._bin_colors = bins, colors
        self._draw_legend()
        self._draw_selection()
        self._draw_highlight()
        self._draw_map_selection()

    def legend_entries(self) -> list[tuple[str, int, Optional[int]]]:
        """``(class, samples in the map, samples in the box/lasso selection or None)`` per legend row."""
        bins = getattr(self, "_bins", None)
        if bins is None or self.coords is None:
            return []
        sel = None
        if self.session.map_selection:
            sel = np.zeros(self.n, dtype=bool)
            rows = [self.row_of[sid] for sid in self.session.map_selection if sid in self.row_of]
            sel[rows] = True
        k = len(bins.labels)
        if self.color_field() == "modality":  # every sample has a point in each modality
            total = [self.n] * k
            chosen = [int(sel.sum())] * k if sel is not None else [None] * k
        else:
            total = legend_counts(bins.codes, k)
            chosen = legend_counts(bins.codes, k, sel) if sel is not None else [None] * k
        return [(lab, t, c) for lab, t, c in zip(bins.labels, total, chosen)]

    def _draw_legend(self) -> None:
        for item in self._legend_items:
            self.legend.removeItem(item)
        self._legend_items = []
        colors = getattr(self, "_bin_colors", [])
        key = self.color_field()
        unit = FIELDS[key][2] if key in FIELDS and FIELDS[key][1] == "numeric" else ""
        for (name, total, chosen), c in zip(self.legend_entries(), colors):
            count = f"{total}" if chosen is None else f"{chosen} of {total} selected"
            item = pg.ScatterPlotItem(size=9, brush=pg.mkBrush(*c), pen=None)
            label = f"{name} {unit}".strip() if unit and unit != "rank" else name
            self.legend.addItem(item, f"{html.escape(label)} · {count}")
            self._legend_items.append(item)

    def _on_ranks(self, _ranks: Any) -> None:
        self._fields.pop("partner_rank", None)
        if self.color_field() == "partner_rank":
            self._refresh_points()

    def _on_map_selection(self) -> None:
        self._draw_map_selection()
        self._draw_legend()

    def _draw_map_selection(self) -> None:
        """Ring the visible points of the box/lasso selection (the library lists the same samples)."""
        ids = self.session.map_selection
        if self.coords is None or not ids or self.visible_mask is None:
            self.mapsel_points = np.zeros(0, dtype=np.int64)
            self.mapsel_item.clear()
            return
        rows = np.array([self.row_of[sid] for sid in ids if sid in self.row_of], dtype=np.int64)
        pts = (rows[None, :] + self.n * np.arange(3)[:, None]).ravel()
        pts = np.sort(pts[self.visible_mask[pts]])
        self.mapsel_points = pts
        if len(pts):
            self.mapsel_item.setData(x=self.coords[pts, 0], y=self.coords[pts, 1])
        else:
            self.mapsel_item.clear()

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
        self.mapsel_item.clear()
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
            self._hover_sid = None
            self._hover_timer.stop()
            return
        sid, mod = self.point_info(int(points[0].data()))
        self.hover_point(sid)
        s = self.session.sample(sid)
        if s is None:
            return
        self.plot.setToolTip(f"<b>{html.escape(sample_label(s))}</b> · {mod} · {s.split}<br>"
                             f"<i>{html.escape(s.lyrics_text)}</i><br><small>{html.escape(sid)}</small>")

    def hover_point(self, sample_id: Optional[str]) -> None:
        """The mouse rests on a point of ``sample_id``: with "Play on hover", play it once it has rested
        :data:`HOVER_PLAY_MS` (each new point restarts the wait, so sweeping across the cloud plays nothing)."""
        if not self.play_on_hover.isChecked() or sample_id is None:
            return
        if sample_id != self._hover_sid:
            self._hover_sid = sample_id
            self._hover_timer.start()

    def _hover_play(self) -> None:
        sid = self._hover_sid
        if sid is None or not self.play_on_hover.isChecked():
            return
        pb = self.session.playback
        if pb.playing and pb.sample_id == sid:
            return  # already playing this one
        self.session.request_playback(sid, origin=self.ORIGIN)

    def _on_box_mode(self, on: bool) -> None:
        if on:
            self.lasso_btn.setChecked(False)
        self.vb.box_mode = on
        self._update_cursor()

    def _on_lasso_mode(self, on: bool) -> None:
        if on:
            self.box_btn.setChecked(False)
        self.vb.lasso_mode = on
        self._update_cursor()

    def _update_cursor(self) -> None:
        self.setCursor(Qt.CrossCursor if self.vb.box_mode or self.vb.lasso_mode else Qt.ArrowCursor)

    def _select_inside(self, inside: np.ndarray, how: str) -> list[str]:
        if self.coords is None or self.visible_mask is None:
            return []
        ids = [self.ids[r] for r in selected_rows(inside, self.n, self.visible_mask)]
        self.session.set_map_selection(ids, origin=self.ORIGIN)
        self.session.notify("info", f"{len(ids)} samples {how} in the map — listed in the library")
        return ids

    def _on_box(self, rect: QRectF) -> None:
        if self.coords is None:
            return
        self._select_inside(points_in_rect(self.coords, rect.left(), rect.top(), rect.right(), rect.bottom()),
                            "boxed")

    def box_select(self, rect: QRectF) -> None:
        """Programmatic box selection (tests, scripting)."""
        self._on_box(rect)

    def _on_lasso(self, polygon: np.ndarray) -> None:
        if self.coords is None:
            return
        self._select_inside(points_in_polygon(self.coords, polygon), "lassoed")

    def lasso_select(self, polygon: Any) -> list[str]:
        """Select the samples with a visible point inside ``polygon`` ((K, 2) map coordinates)."""
        if self.coords is None:
            return []
        return self._select_inside(points_in_polygon(self.coords, np.asarray(polygon, dtype=float)), "lassoed")

    # ---- export ----------------------------------------------------------------------------------
    def map_rows(self) -> list[dict[str, Any]]:
        """The map as ``ugaar map`` writes it (:func:`model.map.export.map_rows`)."""
        from model.map.export import map_rows
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
        return self.export_table(path)

    def export_table(self, path: str) -> Optional[str]:
        """Write the shown layout with metadata, as Parquet for a ``.parquet`` path, else CSV."""
        from model.map.export import write_map_table
        if self.coords is None:
            self.session.notify("warning", "No map to export yet.")
            return None
        try:
            out = write_map_table(path, self.map_rows())
        except Exception as exc:  # noqa: BLE001
            self.session.notify("error", f"Map export failed: {exc}")
            return None
        self.session.notify("info", f"Wrote the {self.view()} map ({3 * self.n} points) to {out}")
        return str(out)

    def _export_dialog(self) -> None:
        from pathlib import Path

        from PySide6.QtWidgets import QFileDialog
        path, chosen = QFileDialog.getSaveFileName(self, "Export the map",
                                                   str(Path.home() / f"ugaar-map-{self.view()}.csv"),
                                                   "CSV (*.csv);;Parquet (*.parquet)")
        if path:
            if chosen.startswith("Parquet") and Path(path).suffix.lower() not in (".parquet", ".pq"):
                path = str(Path(path).with_suffix(".parquet"))
            self.export_table(path)

    def point_pos(self, sample_id: str, modality: str = "audio") -> QPointF:
        i = MODALITIES.index(modality) * self.n + self.row_of[sample_id]
        return QPointF(float(self.coords[i, 0]), float(self.coords[i, 1]))
