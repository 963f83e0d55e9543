"""Retrieval: top-k partners in the other two modalities, six directions.

The query is the selected sample (in a chosen modality), a typed lyrics
line, a dropped MIDI/KAR or audio file (WAV/FLAC/OGG/MP3), or a recording
from the microphone (Record), embedded on the fly with the dataset's
extractors.  A recording or audio file longer than a sample is searched
window by window and the header says which segment matched.  Results show
distance and mark the true partner; clicking one selects it everywhere.

Audio ↔ sheet results are re-ranked by melody (``model.search.melody_rerank``):
the learned space's top candidates re-ordered by how the recording's pitch follows
the sheet's notes, which holds on timbres the audio encoder never heard.
Their lists say so, and their score column is the combined score.  In any
key a new recording is compared with every sheet of the library, which takes
about a second on a large one: that ordering runs as a background task, the
learned space's list shown until it arrives.

Lyrics ↔ sheet / audio results of a sample or a typed line are re-ranked by
the run's lyrics scorer when it has one (``model.search.lyrics_rerank``,
``RUN/lyrics_scorer.pt``; *Train lyrics scorer* makes it): every library item
is scored by how each syllable pairs with its note or onset, mixed with the
learned distance.  That covers the whole library (about 0.9 GFLOP a query at
10k items), so it runs in the background, the learned space's list shown until
it arrives.  Dropped files are not re-ranked by it: there is no path from a
file to syllable tokens yet.
"""
from __future__ import annotations

import copy
import html
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QFileDialog, QFrame, QHBoxLayout, QHeaderView,
                               QLabel, QLineEdit, QProgressBar, QPushButton, QRadioButton, QSpinBox,
                               QSplitter, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from .bridge import SessionBridge
from .controller import AppController
from model.map.layout import MODALITIES
from model.data.labels import is_placeholder_title, lyrics_label, sample_label
from .theme import MODALITY_COLORS
from .why_view import WhyView

PARTNER_MARK = "✔ partner"
#: Appended to the title of a list re-ranked by melody.
RERANKED_MARK = " · re-ranked by melody"
#: Appended to the title of a list whose ordering by melody is still being computed in the background.
ORDERING_MARK = " · ordering by melody …"
#: Appended to the title of a list re-ranked by the lyrics scorer (syllable by note).
LYRICS_RERANKED_MARK = " · re-ranked by syllables"
#: Appended to the title of a list whose lyrics re-ranking is still being computed in the background.
LYRICS_ORDERING_MARK = " · re-ranking by syllables …"
#: Epochs the *Train lyrics scorer* button trains each side for (``ugaar lyrics-scorer``'s default;
#: the best validation epoch is kept).  Module-level so tests can train a short one; a literal, not
#: ``lyrics_rerank.EPOCHS_DEFAULT``, because that module imports torch and this one loads at start-up
#: (a test keeps the two equal).
LYRICS_SCORER_EPOCHS = 8
DROP_TEXT = "Drop a MIDI/KAR or audio file (WAV/FLAC/OGG/MP3) here, or record one"


def embed_query(run: Any, modality: str, features: Any, target: str) -> np.ndarray:
    """Map one item's raw features (pooled vector, or SequenceInput) into the run's retrieval space
    (the run's model is loaded once and shared: ``Run.loaded_method``)."""
    return np.asarray(run.embed_query(modality, features, target=target), dtype=np.float32).reshape(-1)


class DropZone(QFrame):
    """Accepts a dropped MIDI/KAR/WAV/FLAC file."""

    dropped = Signal(str)
    SUFFIXES = {".mid", ".midi", ".kar", ".wav", ".flac", ".ogg", ".mp3"}

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setFrameShape(QFrame.StyledPanel)
        self.setStyleSheet("DropZone { border: 1px dashed #5a646e; border-radius: 5px; }")
        self.label = QLabel(DROP_TEXT)
        self.label.setAlignment(Qt.AlignCenter)
        self.label.setObjectName("muted")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.label)

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        urls = event.mimeData().urls()
        if urls and Path(urls[0].toLocalFile()).suffix.lower() in self.SUFFIXES:
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        urls = event.mimeData().urls()
        if urls:
            self.dropped.emit(urls[0].toLocalFile())


class RetrievalPanel(QWidget):
    """Query controls and two result lists (one per target modality)."""

    ORIGIN = "retrieval"
    embedded = Signal()

    def __init__(self, bridge: SessionBridge, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.session = bridge.session
        self.controller = controller
        self.embedder: Any = None
        self.last_latency_ms = 0.0
        self.query_vectors: dict[str, np.ndarray] = {}
        #: Pitch sequence of the last file query: a recording's whole pitch track (``query_track_within``:
        #: each sheet's melody is searched inside it) or a MIDI file's note contour; None for typed lyrics.
        self.query_track: Optional[np.ndarray] = None
        self.query_track_within = False
        #: target modality → whether the shown list is re-ranked by melody (its score is the combined one).
        self.reranked: dict[str, bool] = {}
        #: The background task ordering the shown file query's lists by melody over the whole library
        #: (any key); None when none is pending.  A result is applied only by the task still held here.
        self.ordering: Any = None
        #: Modality → per-position inputs (``SequenceInput``) of the shown typed line or MIDI / KAR file on an
        #: aligned run, whose structure tokens the lyrics re-ranker reads (``LyricsReranker.query_tokens``);
        #: None for a recording (no syllables) or a run on pooled inputs.
        self.query_sequences: Optional[dict[str, Any]] = None
        #: target modality → whether the shown list is re-ranked by the lyrics scorer (combined score shown).
        self.lyrics_reranked: dict[str, bool] = {}
        #: The background task re-ranking the shown query's lyrics ↔ melody lists over the whole library;
        #: None when none is pending.  Its result is applied only by the task still held here.
        self.lyrics_ordering: Any = None
        #: The running *Train lyrics scorer* task, or None.
        self.lyrics_training: Any = None
        self.query_label = ""
        #: The dataset sample and modality of the last "Selected sample" query (Why this result reads them).
        self.query_sample_id: Optional[str] = None
        self.query_source = ""
        #: The matched window of the last audio query (``model.search.audio_query.AudioMatch``).
        self.audio_match: Any = None
        #: Stream factory for the Record button (None: the microphone; tests: a WAV stand-in).
        self.stream_factory: Any = None
        self.recorder: Any = None
        self.recording_path: Optional[Path] = None

        self.mode_sample = QRadioButton("Selected sample")
        self.mode_lyrics = QRadioButton("Typed lyrics")
        self.mode_file = QRadioButton("Dropped file")
        self.mode_sample.setChecked(True)
        self.modes = QButtonGroup(self)
        for b in (self.mode_sample, self.mode_lyrics, self.mode_file):
            self.modes.addButton(b)
        self.source = QComboBox()
        for m in MODALITIES:
            self.source.addItem(f"from {m}", m)
        self.source.setToolTip("Query modality; results come from the other two (six directions in all)")
        self.k = QSpinBox()
        self.k.setRange(1, 100)
        self.k.setValue(10)
        self.k.setPrefix("top ")
        self.melody_box = QCheckBox("Re-rank audio ↔ sheet by melody")
        self.melody_box.setChecked(True)
        self._melody_tooltip()
        self.any_key_box = QCheckBox("Any key")
        self.any_key_box.setChecked(self.session.melody_any_key)
        self.any_key_box.setToolTip(
            "Compare the melodies after removing each one's middle pitch: for a query sung, hummed or played "
            "in another key than the sheet.\nOff, the recording must be in the sheet's key, which tells "
            "similar melodies apart better.")
        self.lyrics_box = QCheckBox("Re-rank lyrics ↔ music by syllables")
        self.lyrics_box.setChecked(True)
        self.train_lyrics_btn = QPushButton("Train lyrics scorer")
        self.lyrics = QLineEdit(placeholderText="Type a lyrics line and press Enter")
        self.lyrics_btn = QPushButton("Search")
        # example lines (resources/example_queries.json): a first query without having to think of one
        self.examples = QComboBox()
        self.examples.addItem("Examples…", "")
        try:
            from resources import example_queries
            for line in example_queries():
                self.examples.addItem(line if len(line) <= 40 else line[:39] + "…", line)
        except ImportError:  # a stripped install without the assets: the box just has no examples
            pass
        self.examples.setToolTip("Example lyrics lines to query with")
        self.drop = DropZone()
        self.drop.setMaximumHeight(44)
        self.record_btn = QPushButton("● Record")
        self.record_btn.setToolTip("Sing or play a melody into the microphone (up to 30 s), then search with it")
        self.meter = QProgressBar()
        self.meter.setRange(0, 60)  # dBFS + 60
        self.meter.setTextVisible(False)
        self.meter.setMaximumHeight(10)
        self.meter.setToolTip("Input level")
        self.rec_label = QLabel("")
        self.rec_label.setObjectName("muted")
        self.save_rec_btn = QPushButton("Save recording…")
        self.save_rec_btn.setEnabled(False)
        self._rec_timer = QTimer(self)
        self._rec_timer.setInterval(50)
        self._rec_timer.timeout.connect(self._on_rec_tick)
        self.header = QLabel("")
        self.header.setWordWrap(True)
        self.header.setObjectName("muted")

        top = QHBoxLayout()
        top.addWidget(self.mode_sample)
        top.addWidget(self.mode_lyrics)
        top.addWidget(self.mode_file)
        top.addStretch(1)
        second = QHBoxLayout()
        second.addWidget(QLabel("Query"))
        second.addWidget(self.source)
        second.addWidget(self.k)
        second.addStretch(1)
        melody_row = QHBoxLayout()
        melody_row.addWidget(self.melody_box)
        melody_row.addWidget(self.any_key_box)
        melody_row.addStretch(1)
        lyrics_rr_row = QHBoxLayout()
        lyrics_rr_row.addWidget(self.lyrics_box)
        lyrics_rr_row.addWidget(self.train_lyrics_btn)
        lyrics_rr_row.addStretch(1)
        lrow = QHBoxLayout()
        lrow.addWidget(self.lyrics, 1)
        lrow.addWidget(self.examples)
        lrow.addWidget(self.lyrics_btn)

        self.lists: dict[str, QTreeWidget] = {}
        self.list_titles: dict[str, QLabel] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addLayout(second)
        layout.addLayout(melody_row)
        layout.addLayout(lyrics_rr_row)
        layout.addLayout(lrow)
        layout.addWidget(self.drop)
        rec_row = QHBoxLayout()
        rec_row.addWidget(self.record_btn)
        rec_row.addWidget(self.meter, 1)
        rec_row.addWidget(self.rec_label)
        rec_row.addWidget(self.save_rec_btn)
        self.rec_row = QWidget()
        self.rec_row.setLayout(rec_row)
        rec_row.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.rec_row)
        layout.addWidget(self.header)
        self.results_box = QVBoxLayout()
        self.results_box.setContentsMargins(0, 0, 0, 0)
        results = QWidget()
        results.setLayout(self.results_box)
        # "Why this result" under the lists, in a splitter so either can be given the room
        self.why = WhyView(bridge, controller.tasks)
        self.results_split = QSplitter(Qt.Vertical)
        self.results_split.addWidget(results)
        self.results_split.addWidget(self.why)
        self.results_split.setChildrenCollapsible(False)
        self.results_split.setStretchFactor(0, 1)
        self.results_split.setStretchFactor(1, 1)
        layout.addWidget(self.results_split, 1)
        for slot in range(2):
            col = QVBoxLayout()
            title = QLabel()
            tree = QTreeWidget()
            tree.setHeaderLabels(["#", "Song · lyrics", "dist", ""])
            tree.setRootIsDecorated(False)
            tree.setAlternatingRowColors(True)
            tree.setUniformRowHeights(True)
            h = tree.header()
            h.setSectionResizeMode(0, QHeaderView.ResizeToContents)
            h.setSectionResizeMode(1, QHeaderView.Stretch)
            h.setSectionResizeMode(2, QHeaderView.ResizeToContents)
            h.setSectionResizeMode(3, QHeaderView.ResizeToContents)
            tree.itemClicked.connect(self._on_result_clicked)
            tree.itemActivated.connect(self._on_result_clicked)
            col.addWidget(title)
            col.addWidget(tree, 1)
            self.results_box.addLayout(col, 1)
            self.lists[str(slot)] = tree
            self.list_titles[str(slot)] = title
        self.targets: list[str] = ["sheet", "lyrics"]

        self.modes.buttonClicked.connect(lambda _b: self._on_mode())
        self.source.currentIndexChanged.connect(lambda _i: self.refresh())
        self.k.valueChanged.connect(lambda _v: self.refresh())
        self.melody_box.toggled.connect(self._on_melody_box)
        self.any_key_box.toggled.connect(self.session.set_melody_any_key)  # → melody_changed → re-query
        bridge.melody_changed.connect(lambda _m: self.requery_melody())
        self.lyrics_box.toggled.connect(lambda _on: self.requery_lyrics())
        self.train_lyrics_btn.clicked.connect(self._on_train_lyrics_clicked)
        bridge.lyrics_rr_changed.connect(lambda _r: self._on_lyrics_rr_changed())
        bridge.features_changed.connect(lambda _f: self._lyrics_controls())  # what the train button can use
        self.lyrics.returnPressed.connect(self.query_lyrics)
        self.lyrics_btn.clicked.connect(self.query_lyrics)
        self.examples.activated.connect(self._on_example)
        self.drop.dropped.connect(self.query_file)
        self.record_btn.clicked.connect(self.toggle_recording)
        self.save_rec_btn.clicked.connect(lambda: self.save_recording())
        bridge.selection_changed.connect(self._on_selection)
        controller.run_loading.connect(lambda _d: self.refresh())
        bridge.run_changed.connect(lambda _r: self._on_run())
        bridge.dataset_changed.connect(lambda _d: self._on_run())
        self._on_mode()
        self._on_run()

    # ---- state ------------------------------------------------------------------------------
    def _on_mode(self) -> None:
        if not self.mode_file.isChecked():
            # typed lyrics keep the lists until their embedding is in: a file query's ordering is no longer wanted
            self._cancel_ordering()
        lyr = self.mode_lyrics.isChecked()
        self.lyrics.setVisible(lyr)
        self.lyrics_btn.setVisible(lyr)
        self.examples.setVisible(lyr and self.examples.count() > 1)
        self.drop.setVisible(self.mode_file.isChecked())
        self.rec_row.setVisible(self.mode_file.isChecked())
        self.source.setEnabled(not lyr)
        self.refresh()

    def _on_run(self) -> None:
        self.embedder = None
        self.query_vectors = {}
        self.query_track = None
        self.query_sequences = None
        self._melody_tooltip()
        self._lyrics_controls()
        self.refresh()

    def _melody_tooltip(self) -> None:
        """The re-rank box's tooltip, with the number of candidates the active run's reranker re-orders.

        Without a run the number is left out: importing ``model.search.melody_rerank`` for it
        would load torch (through ``model.features``) on the window's start-up path.
        """
        melody = self.session.melody
        # any key (k = 0) orders the whole library by pitch: say so rather than "the 0 nearest"
        top = ("" if melody is None else "whole library's" if melody.config.k == 0 else f"{melody.config.k} nearest")
        top = top or "nearest"
        self.melody_box.setToolTip(
            f"Re-order the {top} audio ↔ sheet results by how the recording's pitch follows the sheet's "
            "notes (dynamic time warping), added to the learned distance: the score column then shows the "
            "combined score.\nThe pitch does not depend on the instrument, so this holds on timbres the model "
            "never trained on. The dataset's pitch tracks are computed once in the background.")

    def _on_melody_box(self, on: bool) -> None:
        self.any_key_box.setEnabled(on)
        self.requery_melody()

    def requery_melody(self) -> None:
        """Run the shown query again after a melody change (pitch tracks arrived, a box toggled), when
        one of its lists is audio ↔ sheet.  Typed lyrics are not embedded again (no melody to re-rank
        with), and "Why this result" and the clicked result stay."""
        melody = self.session.melody
        self._requery_if(melody.applies if melody is not None else None, self.mode_file.isChecked())

    def _lyrics_controls(self) -> None:
        """Enable the lyrics re-ranking box and the train button for what the active run allows, and
        say in their tooltips why not or how to get a scorer."""
        run, rr = self.session.run, self.session.lyrics_rr
        training = self.lyrics_training is not None
        self.train_lyrics_btn.setText("Cancel lyrics scorer training" if training else "Train lyrics scorer")
        # the scorer pairs each syllable with its note: pooled inputs have no positions to pair
        why = ("Make a run active first." if run is None else
               "The lyrics scorer reads each syllable beside its note, which only runs trained on aligned "
               "inputs have; this run is on pooled inputs." if not self._run_is_aligned() else None)
        if why is not None:
            self.lyrics_box.setEnabled(False)
            self.lyrics_box.setToolTip(why)
            self.train_lyrics_btn.setEnabled(training)
            self.train_lyrics_btn.setToolTip(why)
            return
        blocker = self._lyrics_training_blocker()
        self.train_lyrics_btn.setEnabled(training or blocker is None)
        if training:
            tip = "Stop training; nothing is saved"
        elif blocker is not None:
            tip = blocker
        else:
            tip = (f"Train the run's lyrics scorer in the background ({LYRICS_SCORER_EPOCHS} epochs per melody "
                   "side, the best validation epoch kept) and save it as RUN/lyrics_scorer.pt"
                   + (", replacing the present one" if rr is not None else "")
                   + "; the same as `ugaar lyrics-scorer RUN`")
        self.train_lyrics_btn.setToolTip(tip)
        if rr is None:
            self.lyrics_box.setEnabled(False)
            self.lyrics_box.setToolTip(
                "This run has no lyrics scorer yet: press “Train lyrics scorer”, or run "
                f"`ugaar lyrics-scorer {self.session.run_dir}` and open the run again.")
            return
        weights = ", ".join(f"{side} {w:g}" for side, w in sorted(rr.weights.items()))
        self.lyrics_box.setEnabled(True)
        self.lyrics_box.setToolTip(
            "Score every library item of a lyrics ↔ sheet / audio query by how each syllable pairs with its "
            "note (stress on a long note, a word end before a rest), mixed with the learned distance "
            f"(weight of the pair score, chosen on validation: {weights}); the score column then shows the "
            "combined score.\nComputed in the background for sample, typed-lyrics and dropped MIDI / KAR queries; "
            "dropped recordings are not re-ranked by it.")

    def _lyrics_training_blocker(self) -> Optional[str]:
        """Why the session's features cannot train a lyrics scorer, or None when they can
        (``model.search.lyrics_rerank.cannot_train``, imported here: it loads torch)."""
        from model.search.lyrics_rerank import cannot_train
        why = cannot_train(self.session.features)
        return why[:1].upper() + why[1:] + "." if why else None

    def _lyrics_reranks(self, src: str, tgt: str) -> bool:
        """Whether ``src`` → ``tgt`` results are re-ranked by the lyrics scorer now (box on, a scorer, a pair it covers)."""
        rr = self.session.lyrics_rr
        return rr is not None and self.lyrics_box.isChecked() and rr.covers(src, tgt)

    def _on_lyrics_rr_changed(self) -> None:
        self._lyrics_controls()
        self.requery_lyrics()

    def requery_lyrics(self) -> None:
        """Run the shown sample or typed-lyrics query again after the lyrics scorer changed (box toggled,
        scorer trained), when one of its lists is lyrics ↔ sheet / audio; "Why this result" and the
        clicked result stay.  Recordings have no syllables: nothing changes for them."""
        rr = self.session.lyrics_rr
        self._requery_if(rr.covers if rr is not None else None, self.query_sequences is not None)

    def _requery_if(self, concerns: Optional[Callable[[str, str], bool]], vectors: bool) -> None:
        """Run the shown query again, keeping "Why this result" and each list's clicked result, when a
        re-ranker whose pairs ``concerns(source, target)`` says covers one of its lists changed: a sample
        query, or with ``vectors`` the kept query vectors (a file or typed line, not embedded again)."""
        src = self.current_source()
        if self.session.index is None or concerns is None or not any(concerns(src, t) for t in self.targets):
            return
        tree_ids = self._current_ids()
        if self.mode_sample.isChecked():
            self.query_selected(keep_why=True)
        elif vectors and self.query_vectors:
            self._run_vectors(keep_why=True)
        else:
            return
        self._restore_current(tree_ids)

    def _current_ids(self) -> dict[str, Optional[str]]:
        """Each list's current (clicked) result id."""
        return {slot: tree.currentItem().data(0, Qt.UserRole) if tree.currentItem() is not None else None
                for slot, tree in self.lists.items()}

    def _restore_current(self, tree_ids: dict[str, Optional[str]]) -> None:
        """Make each list's result of ``tree_ids`` current again after the list was filled anew."""
        for slot, rid in tree_ids.items():
            tree = self.lists[slot]
            for i in range(tree.topLevelItemCount()):
                if rid is not None and tree.topLevelItem(i).data(0, Qt.UserRole) == rid:
                    tree.setCurrentItem(tree.topLevelItem(i))

    def _pair_reranks(self, src: str, tgt: str) -> bool:
        """Whether ``src`` → ``tgt`` results are re-ranked by melody now (box on, a reranker, audio ↔ sheet)."""
        melody = self.session.melody
        return melody is not None and self.melody_box.isChecked() and melody.applies(src, tgt)

    def _on_selection(self, _sid: Optional[str], origin: str) -> None:
        if origin == self.ORIGIN:
            return  # a clicked result: keep the list so the user can go on browsing
        if self.mode_sample.isChecked():
            self.refresh()

    def refresh(self) -> None:
        if self.session.index is None and any(t.name == "Open run" for t in self.controller.tasks.active):
            self._clear()
            self.header.setText("Loading the run's retrieval index …")
            return
        if self.session.index is None:
            self._clear()
            self.header.setText("No active run — train one (Training tab) or make a finished run active "
                                "to retrieve partners." if self.session.dataset is not None else
                                "Open a dataset and train a model to retrieve partners.")
            return
        if self.mode_sample.isChecked():
            self.query_selected()
        elif self.mode_lyrics.isChecked() and self.lyrics.text().strip():
            self.query_lyrics()
        elif self.mode_file.isChecked() and self.query_vectors:
            self._run_vectors()
        else:
            self._clear()

    def _clear(self, keep_why: bool = False) -> None:
        self._cancel_ordering()  # every new query or emptied list makes a pending ordering stale
        for tree in self.lists.values():
            tree.clear()
        self.query_sample_id = None
        self.reranked = {}
        self.lyrics_reranked = {}
        if not keep_why:
            self.why.clear()
        src = self.current_source()
        self.targets = [m for m in MODALITIES if m != src]
        self._set_titles(src)

    def _set_titles(self, src: str) -> None:
        """List titles and score column headers: a list re-ranked by melody or by syllables says so, and
        its column holds the combined score, not a distance."""
        for slot, tgt in zip(("0", "1"), self.targets):
            reranked, by_syllables = self.reranked.get(tgt, False), self.lyrics_reranked.get(tgt, False)
            mark = RERANKED_MARK if reranked else LYRICS_RERANKED_MARK if by_syllables else ""
            self.list_titles[slot].setText(self._title(src, tgt) + mark)
            tree = self.lists[slot]
            tree.headerItem().setText(2, "score" if reranked or by_syllables else "dist")
            tree.headerItem().setToolTip(
                2, "Learned distance, standardised over the top candidates, plus weight × pitch DTW "
                   "(semitones); lower is better" if reranked else
                "Learned distance minus weight × syllable-by-note pair score, each standardised over the "
                "whole library; lower is better" if by_syllables else
                "Distance in the learned space; lower is nearer")

    def current_source(self) -> str:
        return "lyrics" if self.mode_lyrics.isChecked() else self.source.currentData()

    @staticmethod
    def _title(src: str, tgt: str) -> str:
        r, g, b = MODALITY_COLORS[tgt]
        return f"<b>{src} → <span style='color:rgb({r},{g},{b})'>{tgt}</span></b>"

    # ---- queries ------------------------------------------------------------------------------
    def query_selected(self, keep_why: bool = False) -> None:
        sid = self.session.selected
        index = self.session.index
        self._clear(keep_why)
        if sid is None:
            self.header.setText("Select a sample to see its nearest partners.")
            return
        t0 = time.perf_counter()
        src = self.current_source()
        results: dict[str, list[tuple[str, float]]] = {}
        melody, rr = self.session.melody, self.session.lyrics_rr
        pending: dict[str, tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]] = {}  # target → (vector, tokens)
        try:
            for tgt in self.targets:
                # a sample without a pitch track yet (still being computed) keeps the learned ranking
                if self._pair_reranks(src, tgt) and len(melody.query_sequence(src, sid)):
                    results[tgt] = list(melody.query_sample(index, sid, src, tgt, self.k.value()))
                    self.reranked[tgt] = True
                else:
                    results[tgt] = list(index.query_sample(sid, src, tgt, self.k.value()))
                    # the scorer reads the session's features: a sample outside them keeps the learned list
                    if self._lyrics_reranks(src, tgt) and str(sid) in rr.row:
                        pending[tgt] = (index.vector(sid, src, tgt), rr.library_query(src, sid))
        except KeyError:
            self.header.setText(f"{sid} is not in the active run's index (it may be outside the run's samples).")
            return
        s = self.session.sample(sid)
        self.query_label = f"{src} of “{sample_label(s) if s else sid}”"
        self.query_sample_id, self.query_source = sid, src
        self._show(results, partner=sid)
        self.last_latency_ms = (time.perf_counter() - t0) * 1000
        if pending:
            self._mark_ordering(pending, LYRICS_ORDERING_MARK)
            self._rerank_lyrics_in_background(src, pending, results, sid, t0, self._show_sample_header)
        self._show_sample_header(" · re-ranking the whole library by syllables …" if pending else "")

    def _show_sample_header(self, note: str = "") -> None:
        """The header of a sample query: its label, latency and notes."""
        self.header.setText(f"Query: {html.escape(self.query_label)} · {self.last_latency_ms:.1f} ms"
                            + html.escape(note) + self._approximate_note() + self._melody_note())

    def _ensure_embedder(self) -> Any:
        if self.embedder is not None:
            return self.embedder
        from model.features import load_embedder
        fs = self.session.features
        enc = None
        if fs is not None:
            enc = fs.meta.get("encoders_dir")
        if enc is None:
            raise RuntimeError("the dataset's features do not record their encoders; re-extract them")
        self.embedder = load_embedder(enc, sequence_settings=fs.meta.get("config"))
        return self.embedder

    def query_lyrics(self) -> None:
        text = self.lyrics.text().strip()
        if not text or self.session.index is None:
            return
        if self._run_is_aligned():  # per-syllable tokens for a sequence model
            self._embed_in_background(f"typed lyrics “{text}”", lambda emb: {"lyrics": emb.lyrics_sequence(text)},
                                      keep_sequences=True)
        else:
            self._embed_in_background(f"typed lyrics “{text}”", lambda emb: {"lyrics": emb.lyrics(text)})

    def _run_is_aligned(self) -> bool:
        """Whether the active run reads sequence inputs (``RunConfig.inputs == "aligned"``)."""
        return getattr(getattr(self.session.run, "config", None), "inputs", "paper") == "aligned"

    def _on_example(self, i: int) -> None:
        line = self.examples.itemData(i)
        self.examples.setCurrentIndex(0)
        if line:
            self.lyrics.setText(line)
            self.query_lyrics()

    def query_file(self, path: str, subject: str = "dropped file") -> None:
        self.mode_file.setChecked(True)
        self._on_mode()
        p = Path(path)
        if self.session.index is None:
            self.session.notify("warning", "Make a run active before querying with a file.")
            return

        aligned = self._run_is_aligned()
        if p.suffix.lower() not in (".mid", ".midi", ".kar"):
            self.drop.label.setText(f"{p.name} — searching its segments …")
            self._embed_audio_in_background(p, subject)
            return

        def features(emb: Any) -> dict[str, Any]:
            # the CLI's checks first: a file that is not music gets the same one-line message
            from model.validate import check_midi_query
            check_midi_query(p, subject)
            return emb.midi_file_sequence(str(p)) if aligned else emb.midi_file(str(p))

        def contour(emb: Any) -> np.ndarray:
            # the file's notes: both its audio and its sheet query play them (the CLI does the same)
            from model.search.melody_rerank import note_contour
            return note_contour(emb.midi_notes(str(p)))

        self.drop.label.setText(f"{p.name} — embedding …")
        self._embed_in_background(p.name, features, contour, keep_sequences=aligned)

    def _window_seconds(self) -> float:
        from model.search.audio_query import DEFAULT_WINDOW_S, sample_seconds
        ds = self.session.dataset
        return sample_seconds(ds.samples) if ds is not None else DEFAULT_WINDOW_S

    def _embed_audio_in_background(self, p: Path, subject: str) -> None:
        """Decode and check the file, slide sample-long windows, keep the best one (``model.search.audio_query``)."""
        from model.search.audio_query import best_window, load_query_audio
        run, index = self.session.run, self.session.index
        aligned = self._run_is_aligned()
        k = self.k.value()
        targets = [m for m in MODALITIES if m != "audio"]
        label = p.name
        self.header.setText(f"Embedding {html.escape(label)} …")

        def work(progress, cancel):
            window_s = self._window_seconds()  # walks every sample's notes: off the GUI thread
            emb = self._ensure_embedder()
            audio = load_query_audio(p, emb.config.sample_rate, subject)
            if aligned:
                embed = emb.audio_sequence
            else:
                def embed(wave, sr):
                    return np.asarray(emb.audio(wave, sr), np.float32)[None, :]
            match = best_window(audio, window_s, embed,
                                lambda feats, tgt: embed_query(run, "audio", feats, tgt),
                                lambda vec, tgt: list(index.query(vec, tgt, k, source="audio")), targets)
            from model.features.tokens.pitch_track import pitch_track
            # the whole recording's pitch, not the matched window's: a window rarely starts on the
            # melody's first note and ends on its last, so each sheet's melody is searched inside it
            return audio.warnings, match, pitch_track(audio.wave, audio.sample_rate)

        def done(result):
            if self.session.run is not run:
                return
            warnings, match, track = result
            for warning in warnings:
                self.session.notify("warning", warning)
            self.audio_match = match
            self.query_vectors = {("audio", tgt): vec for tgt, vec in match.vectors.items()}
            self.query_track, self.query_track_within = track, True
            # the matched window's onsets (timing and each note's pitch): its lyrics list is re-ranked by the
            # lyrics scorer's audio side, as a sample's is (benchmarks/lyrics_rerank_recordings.py)
            self.query_sequences = ({"audio": match.features} if aligned
                                    and getattr(match.features, "onset_pitch", None) is not None else None)
            self.query_label = label
            if self.mode_file.isChecked():
                self.drop.label.setText(f"{label} — {match.describe()}")
            if self.current_source() != "audio":
                self.source.blockSignals(True)
                self.source.setCurrentIndex(MODALITIES.index("audio"))
                self.source.blockSignals(False)
            self._run_vectors()
            self.embedded.emit()

        self.controller.tasks.start("Embed query", work, on_done=done, on_error=self._failed_handler(label))

    def _failed_handler(self, label: str) -> Any:
        def failed(msg: str) -> None:
            msg = msg.removeprefix("Embed query failed: ")  # the message below already says so
            self.header.setText(html.escape(msg))
            self.session.notify("error", f"Cannot use {label} as a query: {msg}")
            if self.mode_file.isChecked():
                self.drop.label.setText(DROP_TEXT)
        return failed

    # ---- recording ----------------------------------------------------------------------------
    def toggle_recording(self) -> None:
        if self.recorder is not None and self.recorder.recording:
            self.stop_recording()
        else:
            self.start_recording()

    def start_recording(self) -> bool:
        """Start capturing from the microphone (or the stand-in factory); False with a message when none."""
        from model.search.recording import Recorder
        self.mode_file.setChecked(True)
        self._on_mode()
        if self.session.index is None:
            self.session.notify("warning", "Make a run active before recording a query.")
            return False
        self.recorder = Recorder(self.stream_factory)
        try:
            self.recorder.start()
        except Exception as exc:  # NoInputDeviceError says it in plain words; anything else too
            self.recorder = None
            text = getattr(exc, "problem", None) or str(exc)
            fix = getattr(exc, "fix", "")
            self.rec_label.setText("No microphone")
            self.header.setText(html.escape(f"Cannot record: {text}" + (f"; {fix}" if fix else "")))
            self.session.notify("warning", f"Cannot record: {text}" + (f"; {fix}" if fix else ""))
            return False
        self.record_btn.setText("■ Stop")
        self.rec_label.setText("0.0 s")
        self._rec_timer.start()
        return True

    def _on_rec_tick(self) -> None:
        rec = self.recorder
        if rec is None:
            self._rec_timer.stop()
            return
        self.meter.setValue(int(max(0.0, min(60.0, rec.level_db() + 60.0))))
        self.rec_label.setText(f"{rec.seconds:.1f} s / {rec.max_seconds:.0f} s")
        if rec.full.is_set():
            self.stop_recording()

    def stop_recording(self) -> Optional[Path]:
        """Stop, keep the recording as a WAV (Save recording… copies it) and query with it."""
        self._rec_timer.stop()
        rec = self.recorder
        self.record_btn.setText("● Record")
        self.meter.setValue(0)
        if rec is None:
            return None
        audio = rec.stop()
        if audio.size == 0:
            self.rec_label.setText("Nothing recorded")
            self.session.notify("warning", "Nothing was recorded: the input gave no sound.")
            return None
        folder = Path(tempfile.mkdtemp(prefix="ugaar-recording-"))
        self.recording_path = rec.save(folder / f"recording-{time.strftime('%Y%m%d-%H%M%S')}.wav")
        self.save_rec_btn.setEnabled(True)
        self.rec_label.setText(f"{rec.seconds:.1f} s recorded")
        self.query_file(str(self.recording_path), subject="recording")
        return self.recording_path

    def save_recording(self, path: Optional[str] = None) -> Optional[Path]:
        """Copy the last recording to ``path`` (asks where when None)."""
        if self.recording_path is None:
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save recording", str(Path.home() / self.recording_path.name),
                                                  "WAV audio (*.wav)")
            if not path:
                return None
        target = Path(path)
        try:
            shutil.copyfile(self.recording_path, target)
        except OSError as exc:
            self.session.notify("error", f"Cannot save the recording to {target}: {exc.strerror or exc}")
            return None
        self.session.notify("info", f"Recording saved to {target}")
        return target

    def _embed_in_background(self, label: str, features_of: Any, track_of: Any = None,
                             keep_sequences: bool = False) -> None:
        """Load the extractors and the run's model on a worker thread, embed, then query.

        ``track_of(embedder)``: the query's pitch sequence for melody re-ranking
        (a MIDI file's note contour), computed on the worker too; None: no melody.
        ``keep_sequences``: the features are per-position inputs (an aligned run's typed
        line or MIDI / KAR file), kept as :attr:`query_sequences` for lyrics re-ranking.
        """
        run = self.session.run
        self.header.setText(f"Embedding {html.escape(label)} …")

        def work(progress, cancel):
            emb = self._ensure_embedder()
            feats = {m: v for m, v in features_of(emb).items() if v is not None}
            out = {}
            for src, vec in feats.items():
                for tgt in MODALITIES:
                    if tgt != src:
                        out[(src, tgt)] = embed_query(run, src, vec, tgt)
            return out, track_of(emb) if track_of is not None else None, feats if keep_sequences else None

        def done(result):
            if self.session.run is not run:
                return
            vectors, track, sequences = result
            self.audio_match = None
            self.query_vectors = vectors
            self.query_track, self.query_track_within = track, False
            self.query_sequences = sequences
            self.query_label = label
            sources = sorted({src for src, _t in vectors}, key=MODALITIES.index)
            if self.mode_file.isChecked():
                self.drop.label.setText(f"{label} — modalities: {', '.join(sources)}")
            if sources and self.current_source() not in sources:
                self.source.blockSignals(True)
                self.source.setCurrentIndex(MODALITIES.index(sources[0]))
                self.source.blockSignals(False)
            self._run_vectors()
            self.embedded.emit()

        self.controller.tasks.start("Embed query", work, on_done=done, on_error=self._failed_handler(label))

    def _run_vectors(self, keep_why: bool = False) -> None:
        src = self.current_source()
        self._clear(keep_why)
        if not any(s == src for s, _t in self.query_vectors):
            self.header.setText(f"The query has no {src} part; choose another source modality.")
            return
        t0 = time.perf_counter()
        index, melody, track, k = self.session.index, self.session.melody, self.query_track, self.k.value()
        results = {}
        pending: dict[str, np.ndarray] = {}  # target → query vector, ordered by melody in the background
        # target → (query vector, syllable tokens), re-ranked by the lyrics scorer in the background
        by_syllables: dict[str, tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]] = {}
        rr, sequence = self.session.lyrics_rr, (self.query_sequences or {}).get(src)
        tokens = rr.query_tokens(src, sequence) if rr is not None and sequence is not None else None
        for tgt in self.targets:
            vec = self.query_vectors[(src, tgt)]
            if tokens is not None and self._lyrics_reranks(src, tgt):
                # every library item scored: too long for the GUI thread (as any-key ordering)
                by_syllables[tgt] = (vec, tokens)
                results[tgt] = list(index.query(vec, tgt, k, source=src))
            # a query without pitched sound (silence, noise, typed lyrics) keeps the learned ranking
            elif self._pair_reranks(src, tgt) and track is not None and len(track):
                if melody.config.k == 0:
                    # any key: one DTW per library item (about 45 µs each, plus each sheet's contour on
                    # first use) is about a second on a large library, too long for the GUI thread; the
                    # learned space's list stands in, not marked re-ranked, until the ordering arrives
                    pending[tgt] = vec
                    results[tgt] = list(index.query(vec, tgt, k, source=src))
                else:
                    results[tgt] = list(melody.query_vector(index, vec, src, tgt, k, track,
                                                            within=self.query_track_within))
                    self.reranked[tgt] = True
            else:
                results[tgt] = list(index.query(vec, tgt, k, source=src))
        self._show(results, partner=None)
        self.last_latency_ms = (time.perf_counter() - t0) * 1000
        if pending:
            self._mark_ordering(pending)
            self._order_in_background(src, pending, results, t0)
        if by_syllables:
            self._mark_ordering(by_syllables, LYRICS_ORDERING_MARK)
            self._rerank_lyrics_in_background(src, by_syllables, results, None, t0,
                                              lambda note: self._show_vectors_header(src, note))
        self._show_vectors_header(src, " · ordering the whole library by melody in any key …" if pending else
                                  " · re-ranking the whole library by syllables …" if by_syllables else "")

    def _show_vectors_header(self, src: str, note: str = "") -> None:
        """The header of a file or typed-lyrics query: its label, matched segment, latency and notes."""
        segment = f" · {self.audio_match.describe()}" if self.audio_match is not None and src == "audio" else ""
        self.header.setText(f"Query: {html.escape(self.query_label)} ({src}){html.escape(segment)} · "
                            f"{self.last_latency_ms:.1f} ms" + html.escape(note) + self._approximate_note()
                            + self._melody_note())

    def _mark_ordering(self, targets: Any, mark: str = ORDERING_MARK) -> None:
        """Say in the titles of ``targets``' lists that their ordering (by melody, or ``mark``'s) is on its way."""
        for slot, tgt in zip(("0", "1"), self.targets):
            if tgt in targets:
                self.list_titles[slot].setText(self.list_titles[slot].text() + html.escape(mark))

    def _order_in_background(self, src: str, pending: dict[str, np.ndarray],
                             results: dict[str, list[tuple[str, float]]], t0: float) -> None:
        """Order ``pending``'s lists by melody over the whole library on a worker (any key), then show them.

        The result is applied only while this task is still the panel's :attr:`ordering`: any new query,
        a changed source, k, box or run goes through :meth:`_clear`, which cancels it and lets it go.
        """
        run, index, melody = self.session.run, self.session.index, self.session.melody
        track, within, k = self.query_track, self.query_track_within, self.k.value()
        # the reranker as it is now: a box toggled meanwhile changes the session's reranker's config,
        # and the list computed must be the one of the query that asked for it
        reranker = copy.copy(melody)

        def work(progress, cancel):
            # checked per library item: a superseded ordering stops early
            return {tgt: list(reranker.query_vector(index, vec, src, tgt, k, track, within=within,
                                                    cancel=cancel, progress=progress))
                    for tgt, vec in pending.items()}

        self._lists_in_background(
            "Order by melody", "ordering", work, self.reranked, src, results, None, t0,
            lambda note: self._show_vectors_header(src, note),
            # typed lyrics being embedded do not clear the lists: the mode tells this query is no longer shown
            lambda: self.session.run is run and self.mode_file.isChecked(),
            "ordering by melody cancelled")

    def _cancel_ordering(self) -> None:
        """Cancel the pending background orderings (by melody, by syllables), if any; their results,
        should they still come, are dropped."""
        if self.ordering is not None:
            self.ordering.cancel()
            self.ordering = None
        if self.lyrics_ordering is not None:
            self.lyrics_ordering.cancel()
            self.lyrics_ordering = None
        # lists kept while a typed line is embedded must not go on announcing a result that will not come
        for title in self.list_titles.values():
            text = title.text()
            for mark in (ORDERING_MARK, LYRICS_ORDERING_MARK):
                text = text.replace(html.escape(mark), "")
            title.setText(text)

    def _rerank_lyrics_in_background(self, src: str,
                                     pending: dict[str, tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]],
                                     results: dict[str, list[tuple[str, float]]], partner: Optional[str],
                                     t0: float, header: Any) -> None:
        """Re-rank ``pending``'s lists (target → query vector, syllable tokens) with the lyrics scorer over
        the whole library on a worker, then show them.

        Parameters
        ----------
        src : str
            The query's modality.
        pending : dict
            Target modality → (the query in the run's space, its structure tokens).
        results : dict
            The lists shown meanwhile (the learned space's); the re-ranked ones replace their entries.
        partner : str or None
            The sample queried (marked in the lists), or None for a typed line.
        t0 : float
            When the query started (``time.perf_counter``): the header reports the time until these lists.
        header : callable
            ``header(note)`` writes the query's header (sample or typed line).

        Notes
        -----
        Applied only while this task is still the panel's :attr:`lyrics_ordering`: any new query, a
        changed source, k, box or run goes through :meth:`_clear`, which cancels it and lets it go.
        """
        from model.progress import report
        run, index, rr, k = self.session.run, self.session.index, self.session.lyrics_rr, self.k.value()
        mode = self.modes.checkedButton()

        def work(progress, cancel):
            out = {}
            for i, (tgt, (vec, tokens)) in enumerate(pending.items()):
                cancel.raise_if_set()  # query_index takes no token: a superseded query stops between lists
                report(progress, f"{src} → {tgt}", i, len(pending))
                out[tgt] = list(rr.query_index(index, vec, src, tgt, k, tokens))
            report(progress, "lyrics re-ranking", len(pending), len(pending))
            return out

        self._lists_in_background(
            "Re-rank by syllables", "lyrics_ordering", work, self.lyrics_reranked, src, results, partner, t0,
            header,
            # typed lyrics being embedded do not clear the lists; the mode and scorer must be this query's too
            lambda: (self.session.run is run and self.session.lyrics_rr is rr and self.modes.checkedButton() is mode),
            "re-ranking by syllables cancelled")

    def _lists_in_background(self, name: str, slot: str, work: Any, flags: dict[str, bool], src: str,
                             results: dict[str, list[tuple[str, float]]], partner: Optional[str], t0: float,
                             header: Any, still_current: Any, cancelled: str) -> None:
        """Compute some of the shown query's lists on a worker and show them when done (melody in any key,
        lyrics by syllables).

        Parameters
        ----------
        name : str
            The task's name in the status bar.
        slot : str
            The panel attribute that holds the pending task (``ordering``, ``lyrics_ordering``):
            :meth:`_cancel_ordering` cancels it, and a result is applied only while it is still there.
        work : callable
            ``work(progress, cancel)`` → ``{target: hits}``.
        flags : dict
            ``target → True`` is set in it for each list shown from the result (``reranked``, ``lyrics_reranked``).
        src, results, partner
            The query's modality, the lists shown meanwhile (the result replaces their entries) and the
            sample queried (marked in the lists) or None.
        t0 : float
            When the query started: the header reports the time until these lists.
        header : callable
            ``header(note)`` writes the query's header.
        still_current : callable
            Whether the query that asked is still the one shown (besides the slot).
        cancelled : str
            What the header says when the task is cancelled.
        """
        def current() -> bool:
            return getattr(self, slot) is task and still_current()

        def done(ordered: dict[str, list[tuple[str, float]]]) -> None:
            if not current():
                return
            setattr(self, slot, None)
            tree_ids = self._current_ids()  # a result clicked in the stand-in list stays current
            for tgt, hits in ordered.items():
                results[tgt] = hits
                flags[tgt] = True
            self._show(results, partner=partner)
            self._restore_current(tree_ids)
            self.last_latency_ms = (time.perf_counter() - t0) * 1000  # what the user waited for these lists
            header("")

        def stopped(note: str) -> None:
            if not current():
                return
            setattr(self, slot, None)
            self._set_titles(src)  # the mark goes; the learned space's list stays
            header(note)

        task = self.controller.tasks.start(
            name, work, on_done=done,
            on_error=lambda msg: stopped(f" · {msg}; the learned space's order is shown"),
            on_cancel=lambda: stopped(f" · {cancelled}; the learned space's order is shown"))
        setattr(self, slot, task)

    # ---- lyrics scorer ------------------------------------------------------------------------
    def _on_train_lyrics_clicked(self) -> None:
        if self.lyrics_training is not None:
            self.lyrics_training.cancel()  # the same button stops it: nothing is saved
        else:
            self.train_lyrics_scorer()

    def train_lyrics_scorer(self) -> Any:
        """Train the active run's lyrics scorer on a worker (``LyricsReranker.train``, as ``ugaar lyrics-scorer``),
        save it as ``RUN/lyrics_scorer.pt``, make it the session's and run the shown query again.

        Returns
        -------
        Task or None
            None (with a message) without an active run on aligned inputs and their features.
        """
        run, fs = self.session.run, self.session.features
        if self.lyrics_training is not None:
            return self.lyrics_training
        if run is None or not self._run_is_aligned():
            self.session.notify("warning", "The lyrics scorer needs an active run trained on aligned inputs.")
            return None
        blocker = self._lyrics_training_blocker()
        if blocker is not None:
            self.session.notify("warning", blocker)
            return None
        from model.progress import Progress
        epochs, sides = LYRICS_SCORER_EPOCHS, ("sheet", "audio")
        run_dir = Path(run.run_dir)

        def work(progress, cancel):
            from model.search.lyrics_rerank import RERANKER_FILE, LyricsReranker
            reports = [0]

            def per_side(p: Progress) -> None:
                # each side's scorer reports its epochs under one stage name: say which side is training
                if p.stage == "pair scorer":
                    side = sides[min(reports[0] // max(epochs, 1), len(sides) - 1)]
                    reports[0] += 1
                    p = Progress(f"lyrics ↔ {side} epoch", p.done, p.total, p.message)
                progress(p)

            rr = LyricsReranker.train(run, fs, sides, epochs, per_side, cancel)
            cancel.raise_if_set()  # a cancel after the last epoch still writes nothing
            rr.save(run_dir)
            return rr, run_dir / RERANKER_FILE

        def finish() -> None:
            self.lyrics_training = None
            self._lyrics_controls()

        def done(result: tuple[Any, Path]) -> None:
            rr, path = result
            finish()
            if self.session.run is not run:  # another run became active meanwhile: it is used when this one is
                self.session.notify("info", f"Lyrics scorer saved to {path}; it re-ranks that run's results "
                                            "when it is active.")
                return
            weights = ", ".join(f"{side} {w:g}" for side, w in sorted(rr.weights.items()))
            self.session.notify("info", f"Lyrics scorer trained and saved to {path} "
                                        f"(pair-score weight chosen on validation: {weights}).")
            self.session.set_lyrics_reranker(rr)  # → lyrics_rr_changed: the controls and the shown query follow

        def failed(msg: str) -> None:
            finish()
            self.session.notify("error", msg)

        def cancelled() -> None:
            finish()
            self.session.notify("info", "Lyrics scorer training cancelled; nothing was saved.")

        self.lyrics_training = self.controller.tasks.start(
            "Train lyrics scorer", work, on_done=done, on_error=failed, on_cancel=cancelled)
        self._lyrics_controls()
        return self.lyrics_training

    def _melody_note(self) -> str:
        """`` · the library's pitch tracks are still being computed …`` while the shown query's melody
        re-ranking reads library recordings' tracks (a sample's own, or audio results') and they are not all in."""
        # a task stays in ``active`` until just after its result is handed over: ``done`` tells them apart
        if not any(t.name == "Pitch tracks" and not t.done for t in self.controller.tasks.active):
            return ""
        src = self.current_source()
        reads_tracks = [t for t in self.targets if self._pair_reranks(src, t)
                        and (t == "audio" or self.query_sample_id is not None)]
        if not reads_tracks:
            return ""
        return " · the library's pitch tracks are still being computed: melody re-ranking completes when they are in"

    def _approximate_note(self) -> str:
        """`` · approximate (hnsw), recall 0.98 measured`` for an approximate index, else nothing."""
        index = self.session.index
        if index is None or getattr(index, "exact", True):
            return ""
        return f" · {html.escape(index.status_text())}"

    def _show(self, results: dict[str, list[tuple[str, float]]], partner: Optional[str]) -> None:
        self._set_titles(self.current_source())
        for slot, tgt in zip(("0", "1"), self.targets):
            tree = self.lists[slot]
            tree.clear()
            items = []
            for rank, (rid, dist) in enumerate(results.get(tgt, []), start=1):
                s = self.session.sample(rid)
                if s is None:
                    text = rid
                elif is_placeholder_title(s.title, s.song_id):  # the label is the lyrics already
                    text = lyrics_label(s.words, 10)
                else:
                    text = f"{sample_label(s)} · {' '.join(s.words[:7])}"
                item = QTreeWidgetItem([str(rank), text, f"{dist:.3f}",
                                        PARTNER_MARK if rid == partner else ""])
                item.setData(0, Qt.UserRole, rid)
                item.setToolTip(1, f"{rid}\n{s.lyrics_text if s is not None else ''}")
                if rid == partner:
                    for c in range(4):
                        item.setForeground(c, QColor(120, 220, 120))
                items.append(item)
            tree.addTopLevelItems(items)

    # ---- results → session ----------------------------------------------------------------------
    def _on_result_clicked(self, item: QTreeWidgetItem, _col: int = 0) -> None:
        rid = item.data(0, Qt.UserRole)
        if rid:
            self.session.select(rid, origin=self.ORIGIN)
            self.explain(item)

    def explain(self, item: QTreeWidgetItem) -> None:
        """Show in "Why this result" how the query lines up with the result ``item``."""
        tree = item.treeWidget()
        slot = next((int(k) for k, t in self.lists.items() if t is tree), None)
        rid = item.data(0, Qt.UserRole)
        if slot is None or not rid:
            return
        if self.query_sample_id is None:
            self.why.clear("Why this result explains queries made from a dataset sample (“Selected sample”): "
                           "a typed line or a file has no dataset notes to label the positions with.")
            return
        self.why.explain(self.query_sample_id, self.query_source, rid, self.targets[slot])

    def result_ids(self, target: str) -> list[str]:
        slot = str(self.targets.index(target))
        tree = self.lists[slot]
        return [tree.topLevelItem(i).data(0, Qt.UserRole) for i in range(tree.topLevelItemCount())]

    def partner_rank(self, target: str) -> Optional[int]:
        slot = str(self.targets.index(target))
        tree = self.lists[slot]
        for i in range(tree.topLevelItemCount()):
            if tree.topLevelItem(i).text(3) == PARTNER_MARK:
                return i + 1
        return None
