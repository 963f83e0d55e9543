"""Lyrics of the selected sample, the sounding syllable highlighted."""
from __future__ import annotations

import html
from typing import Any, Optional, Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

HIGHLIGHT = "background:#f3a53b; color:#1b1b1b; border-radius:3px;"


def lyrics_html(sample: Any, current: int = -1, weights: Optional[Sequence[float]] = None) -> str:
    """Words from the syllables (hyphens inside words), syllable ``current`` marked.

    ``weights`` (one per syllable, e.g. a retrieval result's importance)
    underline each syllable in proportion to its positive share of the largest.
    """
    parts: list[str] = []
    top = max((float(w) for w in weights), default=0.0) if weights is not None else 0.0
    for i, note in enumerate(sample.notes):
        text = html.escape(note.syllable)
        if i == current:
            text = f'<span style="{HIGHLIGHT}">&nbsp;{text}&nbsp;</span>'
        elif top > 0 and weights is not None and i < len(weights) and weights[i] > 0:
            # opacity in steps of a tenth: rich text takes rgba colours
            alpha = round(min(1.0, float(weights[i]) / top), 1)
            text = (f'<span style="background:rgba(255,167,38,{0.15 + 0.55 * alpha:.2f}); '
                    f'border-radius:2px;">{text}</span>')
        if i > 0:
            parts.append(" " if note.word_start else '<span style="color:#888">-</span>')
        parts.append(text)
    return "".join(parts)


class LyricsView(QWidget):
    """The 20 syllables as words; ``set_current(i)`` highlights syllable i."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("<b>Lyrics</b>")
        self.text = QLabel("Select a sample to read its lyrics")
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.RichText)
        self.text.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.text.setObjectName("lyrics")
        self.syllables = QLabel()
        self.syllables.setObjectName("muted")
        self.syllables.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.text)
        layout.addWidget(self.syllables)
        self.sample: Any = None
        self.current = -1
        self.weights: Optional[list[float]] = None
        self.setMinimumHeight(110)  # two lines of lyrics and the syllable list

    def set_sample(self, sample: Optional[Any]) -> None:
        self.sample = sample
        self.current = -1
        self.weights = None
        if sample is None:
            self.text.setText("Select a sample to read its lyrics")
            self.syllables.setText("")
            return
        self.text.setText(lyrics_html(sample))
        self.syllables.setText(f"{len(sample.notes)} syllables · " + " · ".join(sample.syllables))

    def set_current(self, index: int) -> None:
        if self.sample is None or index == self.current:
            return
        self.current = index
        self.text.setText(lyrics_html(self.sample, index, self.weights))

    def set_weights(self, weights: Optional[Sequence[float]]) -> None:
        """Tint each syllable by its weight (a result's per-note importance); None removes the tint."""
        self.weights = list(weights) if weights is not None else None
        if self.sample is not None:
            self.text.setText(lyrics_html(self.sample, self.current, self.weights))
