"""Sample view: the selected sample's audio, sheet and lyrics together."""
from __future__ import annotations

from typing import Any, Optional

from PySide6.QtWidgets import QFrame, QLabel, QSplitter, QVBoxLayout, QWidget
from PySide6.QtCore import Qt

from .audio import current_note, note_times
from .bridge import SessionBridge
from .lyrics_view import LyricsView
from .player import PlayerWidget
from .sheet_view import SheetView


class SampleView(QWidget):
    """Header, player bar, sheet (cursor) and lyrics (highlight) of ``session.selected``."""

    def __init__(self, bridge: SessionBridge, player: Optional[PlayerWidget] = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.session = bridge.session
        self.header = QLabel("No sample selected")
        self.header.setObjectName("title")
        self.header.setWordWrap(True)
        self.meta = QLabel("Pick a row in the library, a point in the map or a retrieval result.")
        self.meta.setObjectName("muted")
        self.meta.setWordWrap(True)
        self.player = player if player is not None else PlayerWidget(bridge)
        self.sheet = SheetView()
        self.lyrics = LyricsView()
        line = QFrame()
        line.setFrameShape(QFrame.HLine)
        line.setObjectName("sep")
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.sheet)
        split.addWidget(self.lyrics)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.header)
        layout.addWidget(self.meta)
        layout.addWidget(self.player)
        layout.addWidget(line)
        layout.addWidget(split, 1)
        self.times: list[float] = []
        bridge.selection_changed.connect(self._on_selection)
        bridge.playback_changed.connect(self._on_playback)
        bridge.playback_requested.connect(self._on_play_request)
        bridge.dataset_changed.connect(lambda _d: self._on_selection(None, "session"))

    def _on_selection(self, sample_id: Optional[str], _origin: str) -> None:
        sample = self.session.sample(sample_id) if sample_id else None
        dataset = self.session.dataset
        if sample is None or dataset is None:
            self.header.setText("No sample selected")
            self.meta.setText("Pick a row in the library, a point in the map or a retrieval result.")
            self.player.set_sample(None, None)
            self.sheet.clear()
            self.lyrics.set_sample(None)
            self.times = []
            return
        from model.data.labels import sample_label
        self.header.setText(sample_label(sample))
        self.meta.setText(f"{sample.sample_id} · {sample.split} split · {sample.source} · "
                          f"notes {sample.start + 1}–{sample.start + len(sample.notes)}")
        self.times = note_times([n.onset for n in sample.notes])
        self.player.set_sample(sample, dataset.load_audio)
        display = dataset.display_sheet_path(sample.sample_id)
        self.sheet.set_sample(dataset.sheet_path(sample.sample_id), display,
                              dataset.note_x(sample.sample_id), self.times)
        self.lyrics.set_sample(sample)

    # ---- Why this result ---------------------------------------------------------------------
    def show_importance(self, sample_id: str, per_note: Optional[list[float]]) -> None:
        """A retrieval result's importance per note: bars under the sheet, a tint over the syllables."""
        if sample_id != self.session.selected:
            return
        self.sheet.set_importance(per_note)
        self.lyrics.set_weights(per_note)

    def highlight_position(self, sample_id: str, modality: str, index: int, seconds: float = -1.0) -> None:
        """Show where position ``index`` of the selected result lies (a hovered alignment cell).

        A syllable or an engraved note is note ``index`` (syllable k is sung
        on note k); an audio onset is placed by its time, as the play cursor is,
        and highlights the note it belongs to with the same onset tolerance as
        the heatmap's alignment and per-note importance
        (:func:`model.search.alignment_view.notes_of_onsets`).
        """
        if sample_id != self.session.selected or self.session.playback.playing:
            return  # playback drives the cursor while it runs
        if index < 0:
            self.sheet.set_position(None)
            self.lyrics.set_current(-1)
        elif modality == "audio":
            if seconds < 0:
                return
            from model.search.alignment_view import notes_of_onsets
            self.sheet.set_position(seconds)
            self.lyrics.set_current(int(notes_of_onsets([seconds], self.times)[0]) if self.times else -1)
        else:
            self.sheet.show_note(index)
            self.lyrics.set_current(index)

    def _on_play_request(self, sample_id: str, origin: str) -> None:
        """Select ``sample_id`` (announced as ``origin``) and play it."""
        self.session.select(sample_id, origin=origin)
        if self.session.selected == sample_id and self.player.sample_id == sample_id:
            self.player.play()

    def _on_playback(self, state: Any) -> None:
        if state.sample_id != self.session.selected or not self.times:
            return
        if state.playing or state.position > 0:
            self.sheet.set_position(state.position)
            self.lyrics.set_current(current_note(self.times, state.position))
        else:
            self.sheet.set_position(None)
            self.lyrics.set_current(-1)
