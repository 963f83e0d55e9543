"""The GUI-free session model: what the window is showing, in plain Python.

napari style: the session holds the current dataset, feature set, run and
retrieval index, the selected sample, the map's box selection and the
playback state.  It knows nothing about Qt; it announces changes through
tiny :class:`Event` objects.  ``ugaar_app.bridge.SessionBridge`` re-emits
them as Qt signals at the edge, and every widget talks to the session only.

All mutation happens on the GUI thread; workers hand their results back
through Qt signals and the window then calls the setters here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional
from model.sources.lmd_archive import cache_root


class Event:
    """A minimal synchronous signal: ``connect(fn)``, ``emit(*args)``."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._slots: list[Callable[..., Any]] = []

    def connect(self, fn: Callable[..., Any]) -> None:
        if fn not in self._slots:
            self._slots.append(fn)

    def disconnect(self, fn: Callable[..., Any]) -> None:
        if fn in self._slots:
            self._slots.remove(fn)

    def emit(self, *args: Any) -> None:
        for fn in list(self._slots):
            fn(*args)


def app_home() -> Path:
    """Where the app keeps its datasets, runs and settings.

    ``$UGAAR_HOME``, else ``app/`` in the project's cache folder
    (``$UGAAR_CACHE`` or ``~/.cache/ugaar``).
    """
    env = os.environ.get("UGAAR_HOME")
    if env:
        return Path(env).expanduser()
    return cache_root() / "app"


@dataclass(frozen=True)
class PlaybackState:
    """What the player is doing; ``position``/``duration`` in seconds."""

    sample_id: Optional[str] = None
    playing: bool = False
    position: float = 0.0
    duration: float = 0.0
    volume: float = 0.8
    device_ok: bool = True
    device_message: str = ""


class Session:
    """Current dataset, features, run, selection and playback state.

    Events (all plain :class:`Event`):

    - ``dataset_changed(dataset)``
    - ``features_changed(features)``
    - ``run_changed(run)``      (the *active* run; index/embeddings follow)
    - ``selection_changed(sample_id, origin)`` — ``origin`` names the widget
      that made the selection so it can avoid echoing it back
    - ``map_selection_changed(ids)`` — the multi-sample selection: a box or
      lasso in the embedding map, or several rows of the library
      (``map_selection_origin`` names which)
    - ``highlight_changed(ids)`` — samples matching the library's text filter
      (the map rings them)
    - ``partner_ranks_changed(ranks)`` — the active run's per-sample partner
      rank (median of the six directions, aligned with ``embedding_ids``), or None
    - ``playback_changed(state)``
    - ``playback_requested(sample_id, origin)`` — something (the map's
      auto-play on hover) asks the player to select and play a sample
    - ``message(level, text)``  — ``level`` in info, warning, error
    - ``runs_changed()``        — a run finished or was added
    - ``melody_changed(reranker)`` — the active run's melody re-ranker got
      pitch tracks or another setting (its results may change: re-query)
    - ``lyrics_rr_changed(reranker)`` — the active run got a lyrics re-ranker
      (trained in the window) after it became active (re-query)
    """

    def __init__(self) -> None:
        self.dataset: Any = None
        self.features: Any = None
        self.run: Any = None
        self.run_dir: Optional[Path] = None
        self.embeddings: Optional[dict[str, Any]] = None
        self.embedding_ids: Optional[list[str]] = None
        self.index: Any = None
        #: The active run's ``model.search.melody_rerank.MelodyReranker`` (audio ↔ sheet results
        #: re-ranked by pitch), or None without a run.  It computes nothing itself (``compute_missing=False``):
        #: items whose pitch track is not cached yet have none until :meth:`add_pitch_tracks`.
        self.melody: Any = None
        #: Whether melody re-ranking ignores the key; kept across runs, applied to each run's reranker.
        self.melody_any_key = False
        #: The active run's ``model.search.lyrics_rerank.LyricsReranker`` (lyrics ↔ sheet / audio results
        #: scored by its syllable-by-note pair scorers as well), or None when the run has no
        #: ``RUN/lyrics_scorer.pt`` (or a damaged one, or is on pooled inputs).
        self.lyrics_rr: Any = None
        self.selected: Optional[str] = None
        self.map_selection: list[str] = []
        self.map_selection_origin = ""  # the widget that made map_selection ("map", "library")
        self.map_view = "shared"  # the map's view: "shared" (anchored on the recordings) or "modality"
        self.highlight: list[str] = []
        self.partner_ranks: Any = None       # (N,) median rank per sample of the active run
        self.partner_rank_table: Any = None  # {(source, target): (N,) ranks}
        self.partner_rank_cap: Optional[int] = None  # K + 1 when ranks beyond the index's top K are capped
        self.playback = PlaybackState()
        self.messages: list[tuple[str, str]] = []
        self.dataset_changed = Event("dataset_changed")
        self.features_changed = Event("features_changed")
        self.run_changed = Event("run_changed")
        self.selection_changed = Event("selection_changed")
        self.map_selection_changed = Event("map_selection_changed")
        self.highlight_changed = Event("highlight_changed")
        self.partner_ranks_changed = Event("partner_ranks_changed")
        self.playback_changed = Event("playback_changed")
        self.playback_requested = Event("playback_requested")
        self.message = Event("message")
        self.runs_changed = Event("runs_changed")
        self.melody_changed = Event("melody_changed")
        self.lyrics_rr_changed = Event("lyrics_rr_changed")

    # ---- data -------------------------------------------------------------
    def set_dataset(self, dataset: Any) -> None:
        """Make ``dataset`` current; clears features, run and selection."""
        self.dataset = dataset
        self.features = None
        self.run = None
        self.run_dir = None
        self.embeddings = None
        self.embedding_ids = None
        self.index = None
        self.melody = None
        self.lyrics_rr = None
        self.selected = None
        self.map_selection = []
        self.map_selection_origin = ""
        self.highlight = []
        self.partner_ranks = None
        self.partner_rank_table = None
        self.partner_rank_cap = None
        self.dataset_changed.emit(dataset)
        self.features_changed.emit(None)
        self.run_changed.emit(None)
        self.map_selection_changed.emit([])
        self.highlight_changed.emit([])
        self.partner_ranks_changed.emit(None)
        self.selection_changed.emit(None, "session")

    def set_features(self, features: Any) -> None:
        self.features = features
        self.features_changed.emit(features)

    def set_run(self, run: Any, embeddings: Optional[dict[str, Any]] = None,
                sample_ids: Optional[list[str]] = None, index: Any = None, melody: Any = None,
                lyrics_rr: Any = None) -> None:
        """Make ``run`` active with its common-space ``embeddings``, retrieval ``index``,
        melody re-ranker (``MelodyReranker``, or None: audio ↔ sheet ranked by the learned space alone)
        and lyrics re-ranker (``LyricsReranker``, or None: lyrics ↔ sheet / audio by the learned space alone)."""
        self.run = run
        self.run_dir = Path(run.run_dir) if run is not None and hasattr(run, "run_dir") else None
        self.embeddings = embeddings
        self.embedding_ids = list(sample_ids) if sample_ids is not None else None
        self.index = index
        self.melody = melody
        self.lyrics_rr = lyrics_rr
        if melody is not None and melody.config.any_key != self.melody_any_key:
            melody.config = type(melody.config).choose(self.melody_any_key)  # the user's choice outlives a run
        self.partner_ranks = None
        self.partner_rank_table = None
        self.partner_rank_cap = None
        self.run_changed.emit(run)
        self.partner_ranks_changed.emit(None)

    def set_partner_ranks(self, ranks: Any, table: Any = None, cap: Optional[int] = None) -> None:
        """The active run's per-sample partner ranks (computed on a worker after ``set_run``).

        ``cap`` is K + 1 when the ranks come from the retrieval index's top K
        (large runs, ``model.search.partner_rank``): a rank at the cap means "> K".
        """
        self.partner_ranks = ranks
        self.partner_rank_table = table
        self.partner_rank_cap = cap
        self.partner_ranks_changed.emit(ranks)

    def add_pitch_tracks(self, tracks: dict[str, Any]) -> None:
        """Pitch tracks computed on a worker (sample id → track) for the active run's melody re-ranker."""
        if self.melody is None:
            return
        self.melody.add_tracks(tracks)
        self.melody_changed.emit(self.melody)

    def set_melody_any_key(self, any_key: bool) -> None:
        """Whether melody re-ranking compares the melodies in any key (sung or hummed queries)."""
        self.melody_any_key = bool(any_key)
        if self.melody is not None and self.melody.config.any_key != self.melody_any_key:
            # any key searches the whole library by pitch; key-exact re-ranks the top k (validated settings)
            self.melody.config = type(self.melody.config).choose(self.melody_any_key)
            self.melody_changed.emit(self.melody)

    def set_lyrics_reranker(self, reranker: Any) -> None:
        """Install the active run's lyrics re-ranker (just trained in the window, ``RUN/lyrics_scorer.pt``)."""
        self.lyrics_rr = reranker
        self.lyrics_rr_changed.emit(reranker)

    def notify_runs_changed(self) -> None:
        self.runs_changed.emit()

    # ---- selection ----------------------------------------------------------
    def sample(self, sample_id: Optional[str] = None) -> Any:
        sample_id = sample_id or self.selected
        if self.dataset is None or sample_id is None:
            return None
        try:
            return self.dataset.sample(sample_id)
        except KeyError:
            return None

    def select(self, sample_id: Optional[str], origin: str = "") -> None:
        """Select one sample everywhere (no-op when it is already selected)."""
        if sample_id == self.selected:
            return
        if sample_id is not None and self.sample(sample_id) is None:
            self.notify("warning", f"no sample {sample_id!r} in the current dataset")
            return
        self.selected = sample_id
        self.selection_changed.emit(sample_id, origin)

    def set_map_selection(self, ids: list[str], origin: str = "") -> None:
        """Select several samples at once (``origin``: the widget that did, so it can tell its own echo)."""
        self.map_selection = list(ids)
        self.map_selection_origin = origin
        self.map_selection_changed.emit(self.map_selection)

    def set_highlight(self, ids: list[str]) -> None:
        """Samples to highlight in the map (the library's text matches; empty clears)."""
        ids = list(ids)
        if ids != self.highlight:
            self.highlight = ids
            self.highlight_changed.emit(ids)

    # ---- playback -------------------------------------------------------------
    def set_playback(self, **changes: Any) -> None:
        new = replace(self.playback, **changes)
        if new != self.playback:
            self.playback = new
            self.playback_changed.emit(new)

    def request_playback(self, sample_id: str, origin: str = "") -> None:
        """Ask the player to play ``sample_id`` (the sample view selects it first)."""
        if self.sample(sample_id) is None:
            return
        self.playback_requested.emit(sample_id, origin)

    # ---- messages -------------------------------------------------------------
    def notify(self, level: str, text: str) -> None:
        """Record and announce a non-blocking message (never raises)."""
        self.messages.append((level, text))
        self.message.emit(level, text)
