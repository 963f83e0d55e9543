"""Qt at the edge: re-emit the plain-Python session events as Qt signals."""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from .session import Session


class SessionBridge(QObject):
    """One Qt signal per :class:`~ugaar_app.session.Session` event.

    Widgets connect to these (queued-safe, auto-disconnected when a widget
    is deleted) and call the session's plain methods to change things.
    """

    dataset_changed = Signal(object)
    features_changed = Signal(object)
    run_changed = Signal(object)
    selection_changed = Signal(object, str)
    map_selection_changed = Signal(list)
    highlight_changed = Signal(list)
    partner_ranks_changed = Signal(object)
    playback_changed = Signal(object)
    playback_requested = Signal(str, str)
    message = Signal(str, str)
    runs_changed = Signal()
    melody_changed = Signal(object)
    lyrics_rr_changed = Signal(object)

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        session.dataset_changed.connect(self.dataset_changed.emit)
        session.features_changed.connect(self.features_changed.emit)
        session.run_changed.connect(self.run_changed.emit)
        session.selection_changed.connect(lambda sid, origin: self.selection_changed.emit(sid, origin or ""))
        session.map_selection_changed.connect(lambda ids: self.map_selection_changed.emit(list(ids)))
        session.highlight_changed.connect(lambda ids: self.highlight_changed.emit(list(ids)))
        session.partner_ranks_changed.connect(self.partner_ranks_changed.emit)
        session.playback_changed.connect(self.playback_changed.emit)
        session.playback_requested.connect(lambda sid, origin: self.playback_requested.emit(sid, origin or ""))
        session.message.connect(self.message.emit)
        session.runs_changed.connect(self.runs_changed.emit)
        session.melody_changed.connect(self.melody_changed.emit)
        session.lyrics_rr_changed.connect(self.lyrics_rr_changed.emit)
