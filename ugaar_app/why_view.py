"""Why this result: how a query and a retrieved result line up, position by position.

A heatmap with one row per query position and one column per result
position (syllables, engraved notes, audio onsets), coloured by the
occlusion interaction Δ of :mod:`model.search.alignment_view`; bars above and
beside it show how much similarity each position carries on its own.
Hovering a cell announces the result position (:attr:`WhyView.position_hovered`)
so the sample view can put its note cursor and lyrics highlight there.
The computation (loading the run's model, onset detection, 2 × (T + 1)
forwards) runs on the app's worker pool.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QLabel, QToolButton, QVBoxLayout, QWidget

from .bridge import SessionBridge
from .theme import MODALITY_COLORS

#: Names of a modality's positions, for the axis captions.
POSITION_NAMES = {"lyrics": "syllables", "sheet": "notes", "audio": "onsets"}
#: Blue (pulls apart) → background (no interaction) → orange (matches).
_CMAP = pg.ColorMap([0.0, 0.5, 1.0], [(66, 133, 244), (34, 38, 43), (255, 167, 38)])


@dataclass
class WhyResult:
    """What the worker hands back: the alignment and what its positions are."""

    query_id: str
    result_id: str
    alignment: Any  # model.search.alignment_view.PositionAlignment
    query_labels: list[str]
    result_labels: list[str]
    result_onsets: Optional[np.ndarray]
    path: Optional[np.ndarray]  # the true partner's alignment (bool), when the result is the partner
    result_per_note: Optional[np.ndarray]


class WhyView(QWidget):
    """Collapsible "Why this result" section of the retrieval panel.

    Signals
    -------
    position_hovered(sample_id, modality, index, seconds)
        The mouse is on a column: result ``sample_id``'s position ``index``
        (``seconds`` its onset time for audio, else −1; index −1: left the map).
    importance_ready(sample_id, per_note)
        The result's importance summed per note of the sample (a list).
    computed()
        A new alignment (or a message) is shown.
    """

    position_hovered = Signal(str, str, int, float)
    importance_ready = Signal(str, object)
    computed = Signal()

    def __init__(self, bridge: SessionBridge, tasks: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.session = bridge.session
        self.tasks = tasks
        self.result: Optional[WhyResult] = None
        self.hovered: Optional[tuple[int, int]] = None
        self._ticket = 0

        self.toggle = QToolButton(text="Why this result", checkable=True, checked=True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.DownArrow)
        self.toggle.setStyleSheet("QToolButton { border: none; font-weight: 600; }")
        self.toggle.setToolTip("How the query and the selected result line up: syllables ↔ notes ↔ audio time")
        self.message = QLabel("Click a result to see which of its positions match the query's.")
        self.message.setWordWrap(True)
        self.message.setObjectName("muted")
        self.info = QLabel("")
        self.info.setObjectName("muted")
        self.info.setWordWrap(True)

        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setBackground((32, 36, 40))
        self.plots.setMinimumHeight(220)
        self.top = self.plots.addPlot(row=0, col=0)
        self.heat = self.plots.addPlot(row=1, col=0)
        self.side = self.plots.addPlot(row=1, col=1)
        lay = self.plots.ci.layout
        lay.setRowStretchFactor(0, 1)
        lay.setRowStretchFactor(1, 5)
        lay.setColumnStretchFactor(0, 6)
        lay.setColumnStretchFactor(1, 1)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setColorMap(_CMAP)
        self.heat.addItem(self.image)
        self.heat.invertY(True)  # the query's first position on top, as read
        for plot in (self.top, self.heat, self.side):
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(False, False)
            plot.hideButtons()
        self.top.setXLink(self.heat)
        self.side.setYLink(self.heat)
        # the bar plots share the heatmap's axis widths so their bars sit over its columns and rows
        for plot in (self.top, self.heat):
            plot.getAxis("left").setWidth(64)
        for plot in (self.side, self.heat):
            plot.getAxis("bottom").setHeight(34)
        self.top.getAxis("left").setStyle(showValues=False)
        self.top.getAxis("bottom").setStyle(showValues=False)
        self.side.getAxis("left").setStyle(showValues=False)
        self.side.getAxis("bottom").setStyle(showValues=False)
        self.tick_font = QFont(self.font())
        self.tick_font.setPointSizeF(max(6.5, self.tick_font.pointSizeF() * 0.8))
        for name in ("left", "bottom"):
            self.heat.getAxis(name).setStyle(tickFont=self.tick_font, tickTextOffset=3)
        self.heat.vb.sigResized.connect(lambda _vb: self._apply_ticks())
        self.top_bars = pg.BarGraphItem(x=[], height=[], width=0.8)
        self.side_bars = pg.BarGraphItem(x0=[], y=[], width=[], height=0.8)
        self.top.addItem(self.top_bars)
        self.side.addItem(self.side_bars)
        self.path_item = pg.ScatterPlotItem(symbol="s", size=7, pen=pg.mkPen(255, 255, 255, 200, width=1.2),
                                            brush=None, pxMode=True)
        self.heat.addItem(self.path_item)
        self.hover_rect = QGraphicsRectItem()
        pen = QPen(QColor(230, 80, 40))  # the sheet cursor's colour: the cell and the note it points at
        pen.setCosmetic(True)
        pen.setWidthF(2.0)
        self.hover_rect.setPen(pen)
        self.hover_rect.setZValue(20)
        self.hover_rect.hide()
        self.heat.addItem(self.hover_rect)
        self.plots.scene().sigMouseMoved.connect(self._on_mouse)

        self.body = QWidget()
        body = QVBoxLayout(self.body)
        body.setContentsMargins(0, 0, 0, 0)
        body.addWidget(self.message)
        body.addWidget(self.plots, 1)
        body.addWidget(self.info)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addWidget(self.toggle)
        layout.addWidget(self.body, 1)
        self.toggle.toggled.connect(self._on_toggle)
        bridge.run_changed.connect(lambda _r: self.clear())
        bridge.dataset_changed.connect(lambda _d: self.clear())
        self.clear()

    # ---- state ---------------------------------------------------------------------------------
    def _on_toggle(self, on: bool) -> None:
        self.toggle.setArrowType(Qt.DownArrow if on else Qt.RightArrow)
        self.body.setVisible(on)
        # collapsed, the section is its header only, so the splitter gives the results the room
        self.setMaximumHeight(16777215 if on else self.toggle.sizeHint().height() + 8)

    def clear(self, message: str = "Click a result to see which of its positions match the query's.") -> None:
        """Forget the shown alignment; show ``message`` instead."""
        self._ticket += 1
        self.result = None
        self.hovered = None
        self.message.setText(message)
        self.message.show()
        self.plots.hide()
        self.info.setText("")
        self.image.clear()
        self.path_item.clear()
        self.hover_rect.hide()

    # ---- computing -----------------------------------------------------------------------------
    def explain(self, query_id: str, query_modality: str, result_id: str, result_modality: str) -> None:
        """Show how dataset sample ``query_id`` (in ``query_modality``) lines up with ``result_id``."""
        from model.search.alignment_view import alignment_status
        run, features, dataset = self.session.run, self.session.features, self.session.dataset
        if run is None or features is None or dataset is None:
            self.clear("No active run: train one or make a finished run active.")
            self.computed.emit()
            return
        reason = alignment_status(run.config)
        if reason is not None:
            self.clear(reason)
            self.computed.emit()
            return
        self._ticket += 1
        ticket = self._ticket
        self.message.setText("Computing how the query and the result line up …")
        self.message.show()

        def work(_progress: Any, _cancel: Any) -> WhyResult:
            return self._compute(run, features, dataset, query_id, query_modality, result_id, result_modality)

        def done(result: WhyResult) -> None:
            if ticket == self._ticket and self.session.run is run:
                self.show_result(result)

        def failed(msg: str) -> None:
            if ticket == self._ticket:
                self.clear(f"Cannot explain this result: {msg}")
                self.computed.emit()

        self.tasks.start("Why this result", work, on_done=done, on_error=failed)

    def _compute(self, run: Any, features: Any, dataset: Any, qid: str, qm: str, rid: str, rm: str) -> WhyResult:
        """Worker side: the alignment, the positions' labels, the partner path."""
        from model.search.alignment_view import (audio_onset_seconds, partner_alignment, per_note, position_labels,
                                                 run_alignment)
        a = run_alignment(run, run.loaded_method(), features, qid, qm, rid, rm)
        qs, rs = dataset.sample(qid), dataset.sample(rid)

        def onsets(sid: str, modality: str) -> Optional[np.ndarray]:
            if modality != "audio":
                return None
            try:
                from model.features.config import FeatureConfig
                return audio_onset_seconds(dataset, sid, FeatureConfig.from_dict(features.meta["config"]),
                                           features.meta.get("encoders_dir"))
            except Exception:  # noqa: BLE001 - no audio or no config: numbered onsets instead of times
                return None

        q_on, r_on = onsets(qid, qm), onsets(rid, rm)
        path = per = None
        if a.available:
            if qid == rid:
                note_onsets = [n.onset for n in qs.notes]
                path = partner_alignment(qm, rm, a.query_length, a.result_length, a.interaction.shape,
                                         q_on, r_on, note_onsets)
            per = per_note(a.result_importance[: a.result_length], rm, len(rs.notes), r_on,
                           [n.onset for n in rs.notes])
        return WhyResult(qid, rid, a, position_labels(qm, qs, a.query_length, q_on),
                         position_labels(rm, rs, a.result_length, r_on), r_on, path, per)

    # ---- drawing -----------------------------------------------------------------------------
    def show_result(self, result: WhyResult) -> None:
        """Draw ``result`` (GUI thread)."""
        a = result.alignment
        if not a.available:
            self.clear(a.message)
            self.computed.emit()
            return
        self.result = result
        self.hovered = None
        self.hover_rect.hide()
        d = a.valid_interaction
        lq, lr = d.shape
        top = float(np.abs(d).max()) or 1.0
        self.image.setImage(d, levels=(-top, top), autoLevels=False)
        self.image.setRect(QRectF(0, 0, lr, lq))
        self.heat.setXRange(0, lr, padding=0)
        self.heat.setYRange(0, lq, padding=0)
        qm, rm = a.query_modality, a.result_modality
        self.heat.getAxis("left").setLabel(f"query {POSITION_NAMES[qm]}", color=_css(qm))
        self.heat.getAxis("bottom").setLabel(f"result {POSITION_NAMES[rm]}", color=_css(rm))
        self.heat.getAxis("bottom").setHeight(40)
        self.side.getAxis("bottom").setHeight(40)
        self._apply_ticks()
        self.top_bars.setOpts(x=np.arange(lr) + 0.5, height=a.result_importance[:lr], width=0.8,
                              brushes=_bar_brushes(a.result_importance[:lr], rm), pen=None)
        self.side_bars.setOpts(x0=np.zeros(lq), y=np.arange(lq) + 0.5, width=a.query_importance[:lq], height=0.8,
                               brushes=_bar_brushes(a.query_importance[:lq], qm), pen=None)
        self.top.setYRange(min(0.0, float(a.result_importance.min())), max(1e-9, float(a.result_importance.max())))
        self.side.setXRange(min(0.0, float(a.query_importance.min())), max(1e-9, float(a.query_importance.max())))
        if result.path is not None and result.path.any():
            ij = np.argwhere(result.path[:lq, :lr])
            self.path_item.setData(x=ij[:, 1] + 0.5, y=ij[:, 0] + 0.5)
        else:
            self.path_item.clear()
        self.message.hide()
        self.plots.show()
        partner = " · □ the true partner's alignment" if result.path is not None and result.path.any() else ""
        self.info.setText(f"s = {a.similarity:.3f}{partner} · cells: Δ, what two positions add together "
                          f"(orange: they match; blue: they pull apart) · bars: what each adds alone")
        if result.result_per_note is not None:
            self.importance_ready.emit(result.result_id, list(map(float, result.result_per_note)))
        self.computed.emit()

    def tick_labels(self) -> tuple[list[str], list[str]]:
        """The (row, column) labels written on the axes now (every k-th when they would overlap)."""
        def written(axis: str) -> list[str]:
            levels = self.heat.getAxis(axis)._tickLevels or [[]]
            return [t for _p, t in levels[0]]
        return written("left"), written("bottom")

    def _apply_ticks(self) -> None:
        """Label every row and column that fits; the others keep a tick and their label in the tooltip."""
        r = self.result
        if r is None:
            return
        fm = QFontMetrics(self.tick_font)
        rect = self.heat.vb.boundingRect()

        def levels(labels: list[str], pixels: float, per_label: float) -> list[list[tuple[float, str]]]:
            step = max(1, math.ceil(len(labels) * per_label / max(pixels, 1.0)))
            return [[(k + 0.5, t) for k, t in enumerate(labels) if k % step == 0],
                    [(k + 0.5, "") for k in range(len(labels)) if k % step]]

        cols, rows = r.result_labels, r.query_labels
        col_px = max((fm.horizontalAdvance(t) for t in cols), default=0) + 6
        self.heat.getAxis("bottom").setTicks(levels(cols, rect.width(), col_px))
        self.heat.getAxis("left").setTicks(levels(rows, rect.height(), fm.height()))

    def _on_mouse(self, pos: QPointF) -> None:
        if self.result is None or not self.heat.sceneBoundingRect().contains(pos):
            if self.hovered is not None:
                self.hover_cell(-1, -1)
            return
        p = self.heat.vb.mapSceneToView(pos)
        self.hover_cell(int(np.floor(p.y())), int(np.floor(p.x())))

    def hover_cell(self, i: int, j: int) -> None:
        """The mouse is on cell (query position ``i``, result position ``j``); −1 leaves the map."""
        r = self.result
        if r is None:
            return
        a = r.alignment
        if not (0 <= i < a.query_length and 0 <= j < a.result_length):
            if self.hovered is not None:
                self.hovered = None
                self.hover_rect.hide()
                self.info.setToolTip("")
                self.position_hovered.emit(r.result_id, a.result_modality, -1, -1.0)
            return
        if self.hovered == (i, j):
            return
        self.hovered = (i, j)
        self.hover_rect.setRect(QRectF(j, i, 1, 1))
        self.hover_rect.show()
        text = (f"query {a.query_modality} “{r.query_labels[i]}” (#{i + 1}) × result {a.result_modality} "
                f"“{r.result_labels[j]}” (#{j + 1}): Δ = {a.interaction[i, j]:+.4f}; alone "
                f"{a.query_importance[i]:+.4f} and {a.result_importance[j]:+.4f}")
        self.heat.setToolTip(html.escape(text))
        seconds = float(r.result_onsets[j]) if r.result_onsets is not None and j < len(r.result_onsets) else -1.0
        self.position_hovered.emit(r.result_id, a.result_modality, j, seconds)

    # ---- for tests and scripting ---------------------------------------------------------------
    def heatmap(self) -> Optional[np.ndarray]:
        """The drawn ``(query positions, result positions)`` matrix, None when a message is shown."""
        return None if self.result is None else self.image.image

    def axis_labels(self) -> tuple[list[str], list[str]]:
        """(row labels, column labels) as drawn."""
        if self.result is None:
            return [], []
        return list(self.result.query_labels), list(self.result.result_labels)


def _css(modality: str) -> str:
    r, g, b = MODALITY_COLORS[modality]
    return f"#{r:02x}{g:02x}{b:02x}"


def _bar_brushes(values: np.ndarray, modality: str) -> list[Any]:
    """The modality's colour for positions that add similarity, grey-blue for those that take it away."""
    pos = pg.mkBrush(*MODALITY_COLORS[modality])
    neg = pg.mkBrush(110, 130, 160)
    return [pos if v >= 0 else neg for v in np.asarray(values)]
