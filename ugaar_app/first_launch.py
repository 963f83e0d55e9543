"""First launch: one click builds the embedded default, extracts features, trains.

Each step shows its own progress; the library fills as soon as the dataset
exists, retrieval and the map as soon as the first run is trained.
"""
from __future__ import annotations

import html
import time
from typing import Any, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QGridLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton,
                               QVBoxLayout, QWidget)

from .bridge import SessionBridge
from .controller import AppController, default_dataset_dir, quick_dataset_dir
from .workers import Task

STEPS = [("build", "Build the embedded default dataset",
          "music21 corpus → 20-note samples rendered as audio (16 kHz), sheet music (LilyPond) and lyrics"),
         ("features", "Extract features",
          "pre-train the audio and sheet CNNs on the training split, skip-gram lyrics, embed every sample"),
         ("train", "Train a first model", "UGAAR on the extracted features, validation every epoch"),
         ("map", "Compute the embedding map", "UMAP of the common space, cached with the run")]

FIRST_RUN = {"method": "ugaar", "epochs": 15, "inputs": "aligned"}
#: Works of the corpus the quick start reads (sorted order); the full corpus has ~430.
QUICK_LIMIT = 60


class FirstLaunchPanel(QWidget):
    """A welcome page with the one-click pipeline and a progress row per step."""

    finished = Signal(float)

    def __init__(self, bridge: SessionBridge, controller: AppController, window: Any,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.session = bridge.session
        self.controller = controller
        self.window_ = window
        self.task: Optional[Task] = None
        self.t0 = 0.0
        self.step_times: dict[str, float] = {}
        self.running = False
        self.build_limit: Optional[int] = None

        hero = QLabel("Welcome to UGAAR Explorer")
        hero.setObjectName("hero")
        intro = QLabel("Explore a shared space of <b>audio</b>, <b>sheet music</b> and <b>lyrics</b>. "
                       "Nothing is needed from the internet: the embedded default dataset comes from the "
                       "music21 corpus that ships with the app. One click builds it, extracts the features, "
                       "trains a first model and draws the map — each step's progress shows below, and "
                       "each part of the window becomes usable as soon as its input exists.")
        intro.setWordWrap(True)
        self.go = QPushButton(f"Quick start — {QUICK_LIMIT} works, a few minutes")
        self.go.setObjectName("primary")
        self.go.setMinimumHeight(34)
        self.go.setToolTip("Build a dataset from the first works of the corpus, extract features, train, map")
        self.go_full = QPushButton("Full corpus — all ~430 works (slower)")
        self.go_full.setMinimumHeight(34)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.summary = QLabel("")
        self.summary.setObjectName("muted")
        self.summary.setWordWrap(True)

        grid = QGridLayout()
        grid.setVerticalSpacing(10)
        self.rows: dict[str, tuple[QLabel, QProgressBar, QLabel]] = {}
        for r, (key, title, detail) in enumerate(STEPS):
            mark = QLabel("○")
            mark.setFixedWidth(22)
            name = QLabel(f"<b>{title}</b><br><span style='color:#9aa4ad'>{detail}</span>")
            name.setWordWrap(True)
            bar = QProgressBar()
            bar.setRange(0, 1)
            bar.setValue(0)
            bar.setMinimumWidth(220)
            status = QLabel("waiting")
            status.setObjectName("muted")
            status.setMinimumWidth(170)
            status.setWordWrap(True)
            grid.addWidget(mark, r, 0, Qt.AlignTop)
            grid.addWidget(name, r, 1)
            grid.addWidget(bar, r, 2)
            grid.addWidget(status, r, 3)
            self.rows[key] = (mark, bar, status)
        grid.setColumnStretch(1, 1)
        grid.setColumnMinimumWidth(1, 340)

        buttons = QHBoxLayout()
        buttons.addWidget(self.go)
        buttons.addWidget(self.go_full)
        buttons.addWidget(self.cancel_btn)
        buttons.addStretch(1)
        inner = QWidget()
        inner.setMaximumWidth(980)
        il = QVBoxLayout(inner)
        il.addWidget(hero)
        il.addWidget(intro)
        il.addSpacing(10)
        il.addLayout(buttons)
        il.addSpacing(10)
        il.addLayout(grid)
        il.addWidget(self.summary)
        il.addStretch(1)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        outer.addWidget(inner, 8)
        outer.addStretch(1)
        self.go.clicked.connect(lambda: self.start(QUICK_LIMIT))
        self.go_full.clicked.connect(lambda: self.start(0))
        self.cancel_btn.clicked.connect(self.cancel)

    # ---- steps -------------------------------------------------------------------------------
    def _set(self, key: str, state: str, text: str = "", done: int = 0, total: int = 1) -> None:
        mark, bar, status = self.rows[key]
        mark.setText({"wait": "○", "run": "◐", "done": "●", "fail": "✖", "skip": "●"}[state])
        mark.setStyleSheet({"done": "color:#66bb6a", "skip": "color:#66bb6a", "fail": "color:#ef5350",
                            "run": "color:#3d8fd1"}.get(state, ""))
        if state == "run" and total == 0:
            bar.setRange(0, 0)
        else:
            bar.setRange(0, max(1, total))
            bar.setValue(done if state == "run" else (max(1, total) if state in ("done", "skip") else 0))
        status.setText(text)

    def _progress(self, key: str):
        def on(p: Any) -> None:
            self._set(key, "run", f"{p.stage} {p.done}/{p.total} {p.message}".strip() if p.total
                      else f"{p.stage} … {p.message}".strip(), p.done, p.total)
        return on

    def target_dir(self):
        return default_dataset_dir() if not self.build_limit else quick_dataset_dir()

    def start(self, limit: Optional[int] = QUICK_LIMIT) -> None:
        """Run the missing steps in order (a finished step is skipped); ``limit`` 0 = full corpus."""
        if self.running:
            return
        self.running = True
        self.build_limit = limit or None
        self.t0 = time.perf_counter()
        self.go.setEnabled(False)
        self.go_full.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        for key, *_ in STEPS:
            self._set(key, "wait", "waiting")
        self._step_build()

    def _fail(self, key: str, msg: str) -> None:
        self._set(key, "fail", msg[:200])
        self.summary.setText(f"<span style='color:#ef5350'>{html.escape(msg)}</span> — fix the cause and press the "
                             "button again; finished steps are kept.")
        self._end()

    def _end(self) -> None:
        self.running = False
        self.task = None
        self.go.setEnabled(True)
        self.go_full.setEnabled(True)
        self.cancel_btn.setEnabled(False)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
        trainer_panel = getattr(self.window_, "training", None)
        if trainer_panel is not None and self.task is trainer_panel.task:
            trainer_panel.stop()

    def _watch(self, key: str, task: Optional[Task]) -> bool:
        if task is None:
            self._fail(key, "could not start")
            return False
        self.task = task
        task.progress.connect(self._progress(key))
        task.failed.connect(lambda msg, k=key: self._fail(k, msg))
        task.cancelled.connect(lambda k=key: (self._set(k, "fail", "cancelled"), self._end()))
        return True

    def _step_build(self) -> None:
        ds = self.session.dataset
        target = self.target_dir()
        if ds is not None and str(ds.root) == str(target):
            self._set("build", "skip", f"{len(ds.samples)} samples (already built)")
            return self._step_features()
        if (target / "manifest.json").is_file():
            self._set("build", "run", "opening the existing build …", 0, 0)
            task = self.controller.open_dataset(target, then=self._built)
        else:
            from model.data.dataset import BuildConfig
            cfg = BuildConfig(source="music21-corpus", path=None, out=str(target),
                              limit=self.build_limit, workers=2)
            self._set("build", "run", "starting …", 0, 0)
            task = self.controller.build_dataset(cfg, then=self._built)
        self._watch("build", task)

    def _built(self) -> None:
        ds = self.session.dataset
        if self.session.selected is None and ds.samples:
            self.session.select(ds.samples[0].sample_id, origin="first-launch")
        self.step_times["build"] = time.perf_counter() - self.t0
        self._set("build", "done", f"{len(ds.samples)} samples in {self.step_times['build']:.0f} s")
        self._step_features()

    def _step_features(self) -> None:
        if self.session.features is not None:
            self._set("features", "skip", f"{len(self.session.features)} samples (cached)")
            return self._step_train()
        self._set("features", "run", "starting …", 0, 0)
        task = self.controller.extract_features(then=self._featured)
        self._watch("features", task)

    def _featured(self) -> None:
        self.step_times["features"] = time.perf_counter() - self.t0
        self._set("features", "done", f"ready after {self.step_times['features']:.0f} s")
        self._step_train()

    def _step_train(self) -> None:
        if self.session.run is not None:
            self._set("train", "skip", "a run is active")
            return self._step_map()
        panel = self.window_.training
        task = panel.start(then=self._trained, **FIRST_RUN)
        if task is None:
            return self._fail("train", "could not start training")
        self._set("train", "run", "starting …", 0, 0)
        self.task = task
        task.failed.connect(lambda msg: self._fail("train", msg))
        task.event.connect(self._train_event)

    def _train_event(self, ev: Any) -> None:
        if getattr(ev, "kind", "") == "epoch":
            self._set("train", "run", f"epoch {ev.epoch}/{ev.epochs}", ev.epoch, ev.epochs)

    def _trained(self, run_dir: str) -> None:
        self.step_times["train"] = time.perf_counter() - self.t0
        self._set("train", "done", f"trained after {self.step_times['train']:.0f} s")
        self._set("map", "run", "opening the run …", 0, 0)
        task = self.controller.open_run(run_dir, then=self._step_map)
        self._watch("map", task)

    def _step_map(self) -> None:
        mv = self.window_.map_view
        if mv.coords is not None:
            return self._mapped()
        task = mv.task if mv.task is not None and not mv.task.done else mv.compute()
        if not self._watch("map", task):
            return
        mv.computed.connect(self._mapped)

    def _mapped(self) -> None:
        try:
            self.window_.map_view.computed.disconnect(self._mapped)
        except (RuntimeError, TypeError):
            pass
        if not self.running:
            return
        total = time.perf_counter() - self.t0
        self.step_times["map"] = total
        self._set("map", "done", f"usable after {total:.0f} s")
        more = (" This quick start used the first works of the corpus; build the full corpus from the "
                "Datasets tab (or the second button) whenever you like." if self.build_limit else "")
        self.summary.setText(f"All set in {total:.0f} s. The map, retrieval and training tabs are ready; "
                             "later launches reopen this dataset and run from the cache." + more)
        print(f"UGAAR_FIRST_LAUNCH_MAP {total:.1f}", flush=True)
        self._end()
        self.window_.tabs.setCurrentWidget(self.window_.map_view)
        self.finished.emit(total)
