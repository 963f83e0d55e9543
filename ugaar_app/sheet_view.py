"""Sheet snippet viewer: zoomable PNG with a play cursor.

Shows the engraved snippet without lyrics (what the sheet encoder sees) or,
when toggled, the display version with the syllables under the notes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QCheckBox, QGraphicsLineItem, QGraphicsPixmapItem, QGraphicsRectItem,
                               QGraphicsScene, QGraphicsView, QHBoxLayout, QLabel, QSizePolicy, QToolButton,
                               QVBoxLayout, QWidget)

from .audio import cursor_x, estimate_note_x


class _View(QGraphicsView):
    def __init__(self, owner: "SheetView") -> None:
        super().__init__()
        self.owner = owner

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.modifiers() & Qt.ControlModifier:
            self.owner.zoom(1.15 if event.angleDelta().y() > 0 else 1 / 1.15)
            event.accept()
        else:
            super().wheelEvent(event)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self.owner.fit_mode:
            self.owner.fit()


class SheetView(QWidget):
    """A zoomable sheet image with a vertical cursor at the sounding note."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scene = QGraphicsScene(self)
        self.view = _View(self)
        self.view.setScene(self.scene)
        self.view.setRenderHint(QPainter.SmoothPixmapTransform)
        self.view.setDragMode(QGraphicsView.ScrollHandDrag)
        self.view.setBackgroundBrush(QColor("white"))
        self.view.setMinimumHeight(90)
        self.pixmap_item = QGraphicsPixmapItem()
        self.pixmap_item.setTransformationMode(Qt.SmoothTransformation)
        self.scene.addItem(self.pixmap_item)
        self.cursor = QGraphicsLineItem()
        pen = QPen(QColor(230, 80, 40, 200))
        pen.setWidthF(3.0)
        pen.setCosmetic(True)
        self.cursor.setPen(pen)
        self.cursor.setZValue(10)
        self.cursor.hide()
        self.scene.addItem(self.cursor)
        self.placeholder = QLabel("Select a sample to see its sheet music")
        self.placeholder.setAlignment(Qt.AlignCenter)
        self.placeholder.setObjectName("muted")

        self.with_lyrics = QCheckBox("With syllables")
        self.with_lyrics.setToolTip("Show the display engraving with the lyrics; the encoder sees the plain one")
        self.zoom_in_btn = QToolButton(text="+")
        self.zoom_out_btn = QToolButton(text="−")
        self.fit_btn = QToolButton(text="Fit")
        for b, tip in ((self.zoom_in_btn, "Zoom in (Ctrl+wheel)"), (self.zoom_out_btn, "Zoom out"),
                       (self.fit_btn, "Fit to width")):
            b.setToolTip(tip)
        self.info = QLabel()
        self.info.setObjectName("muted")
        self.info.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(QLabel("<b>Sheet</b>"))
        bar.addWidget(self.info, 1)
        bar.addWidget(self.with_lyrics)
        bar.addWidget(self.zoom_out_btn)
        bar.addWidget(self.zoom_in_btn)
        bar.addWidget(self.fit_btn)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.placeholder)
        self.view.hide()

        self.fit_mode = True
        self.scale_factor = 1.0
        self.plain_path: Optional[Path] = None
        self.display_path: Optional[Path] = None
        self.note_x: Optional[list[float]] = None
        self.plain_width = 0.0
        self.times: list[float] = []
        #: Per-note weights drawn as bars under the staff (a retrieval result's importance), or None.
        self.importance: Optional[list[float]] = None
        self._importance_items: list[QGraphicsRectItem] = []
        self.zoom_in_btn.clicked.connect(lambda: self.zoom(1.25))
        self.zoom_out_btn.clicked.connect(lambda: self.zoom(0.8))
        self.fit_btn.clicked.connect(self.fit)
        self.with_lyrics.toggled.connect(lambda _=None: self._load())

    def set_sample(self, plain: Optional[Path], display: Optional[Path], note_x: Optional[Sequence[float]],
                   times: Sequence[float]) -> None:
        self.plain_path = Path(plain) if plain else None
        self.display_path = Path(display) if display else None
        self.note_x = list(note_x) if note_x else None
        self.times = list(times)
        self.importance = None  # it belonged to the previous sample
        self.with_lyrics.setEnabled(self.display_path is not None)
        self._load()

    def clear(self) -> None:
        self.set_sample(None, None, None, [])

    def _load(self) -> None:
        path = self.display_path if (self.with_lyrics.isChecked() and self.display_path) else self.plain_path
        self.cursor.hide()
        if path is None or not path.is_file():
            self.pixmap_item.setPixmap(QPixmap())
            self.view.hide()
            self.placeholder.setText("Select a sample to see its sheet music" if path is None
                                     else f"No sheet image for this sample ({path.name} is missing; "
                                     "LilyPond may have rejected it — see the build report)")
            self.placeholder.show()
            self.info.setText("")
            return
        pix = QPixmap(str(path))
        if self.plain_path is not None and path != self.plain_path:
            plain = QPixmap(str(self.plain_path))
            self.plain_width = float(plain.width()) if not plain.isNull() else float(pix.width())
        else:
            self.plain_width = float(pix.width())
        self.pixmap_item.setPixmap(pix)
        self.scene.setSceneRect(QRectF(pix.rect()))
        self.placeholder.hide()
        self.view.show()
        kind = "with syllables" if path != self.plain_path else "as the encoder sees it"
        self.info.setText(f"{pix.width()}×{pix.height()} px, {kind}")
        self._draw_importance()
        if self.fit_mode:
            self.fit()

    # ---- zoom -------------------------------------------------------------
    def zoom(self, factor: float) -> None:
        self.fit_mode = False
        self.scale_factor = max(0.1, min(8.0, self.scale_factor * factor))
        self.view.resetTransform()
        self.view.scale(self.scale_factor, self.scale_factor)

    def fit(self) -> None:
        self.fit_mode = True
        rect = self.scene.sceneRect()
        if rect.width() <= 0:
            return
        avail = max(10, self.view.viewport().width() - 4)
        availh = max(10, self.view.viewport().height() - 4)
        self.scale_factor = min(avail / rect.width(), availh / rect.height() * 1.0, 4.0)
        self.view.resetTransform()
        self.view.scale(self.scale_factor, self.scale_factor)

    # ---- cursor -------------------------------------------------------------
    def note_positions(self) -> list[float]:
        pix = self.pixmap_item.pixmap()
        width = float(pix.width())
        n = len(self.times)
        if self.note_x and len(self.note_x) >= n:
            ratio = width / self.plain_width if self.plain_width else 1.0
            return [x * ratio for x in self.note_x[:n]]
        return estimate_note_x(width, n)

    def set_position(self, position: Optional[float]) -> None:
        """Move the cursor to ``position`` seconds (None hides it)."""
        pix = self.pixmap_item.pixmap()
        if position is None or pix.isNull() or not self.times:
            self.cursor.hide()
            return
        x = cursor_x(self.times, self.note_positions(), position)
        self.cursor.setLine(x, 0, x, pix.height())
        self.cursor.show()

    def show_note(self, index: int) -> None:
        """Put the cursor on note ``index`` (−1 hides it): the note a hovered alignment cell names."""
        pix = self.pixmap_item.pixmap()
        xs = self.note_positions() if not pix.isNull() else []
        if not 0 <= index < len(xs):
            self.cursor.hide()
            return
        self.cursor.setLine(xs[index], 0, xs[index], pix.height())
        self.cursor.show()

    # ---- importance -----------------------------------------------------------
    def set_importance(self, values: Optional[Sequence[float]]) -> None:
        """Bars under the staff, one per note, in proportion to ``values`` (None removes them)."""
        self.importance = list(values) if values is not None else None
        self._draw_importance()
        if self.fit_mode:
            self.fit()

    def _draw_importance(self) -> None:
        for item in self._importance_items:
            self.scene.removeItem(item)
        self._importance_items = []
        pix = self.pixmap_item.pixmap()
        if pix.isNull():
            return
        strip = 0.0
        values = self.importance
        xs = self.note_positions()
        top = max((abs(v) for v in values), default=0.0) if values else 0.0
        if values and xs and top > 0:
            strip = max(12.0, pix.height() * 0.22)
            gaps = [b - a for a, b in zip(xs, xs[1:])]
            width = 0.6 * (min(gaps) if gaps else pix.width() * 0.05)
            for x, v in zip(xs, values):
                h = strip * abs(v) / top
                rect = QGraphicsRectItem(x - width / 2, pix.height() + 2, width, max(h, 1.0))
                rect.setBrush(QColor(255, 167, 38) if v >= 0 else QColor(110, 130, 160))
                rect.setPen(QPen(Qt.NoPen))
                rect.setToolTip(f"importance {v:+.4f}")
                self.scene.addItem(rect)
                self._importance_items.append(rect)
        self.scene.setSceneRect(QRectF(0, 0, pix.width(), pix.height() + (strip + 4 if strip else 0)))

    def cursor_position(self) -> Optional[float]:
        return self.cursor.line().x1() if self.cursor.isVisible() else None
