"""Training: method and main parameters, start/stop/resume, live curves, runs.

The trainer runs on a worker thread and calls ``on_event`` there; each
event is forwarded through a Qt signal (queued) and appended to the curves,
which are redrawn by a 10 Hz timer so a fast trainer cannot flood the GUI.
"""
from __future__ import annotations

import html
import json
import math
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout,
                               QGroupBox, QHBoxLayout, QHeaderView, QLabel, QProgressBar,
                               QPushButton, QSizePolicy, QSpinBox, QSplitter, QTreeWidget, QTreeWidgetItem,
                               QVBoxLayout, QWidget)

from .bridge import SessionBridge
from .controller import AppController, list_runs, runs_dir_for
from .workers import Task

METHOD_LABELS = [("ugaar", "UGAAR"), ("baseline-gan", "Baseline-GAN"), ("baseline", "Baseline"),
                 ("cca", "CCA"), ("random", "Random")]
TERM_COLORS = [(66, 165, 245), (255, 167, 38), (102, 187, 106), (239, 83, 80), (171, 71, 188),
               (38, 198, 218), (255, 238, 88), (141, 110, 99)]


DIRECTIONS = ("audio→sheet", "sheet→audio", "audio→lyrics", "lyrics→audio", "sheet→lyrics", "lyrics→sheet")


def _fmt_eta(seconds: float) -> str:
    if not seconds or seconds < 0 or math.isinf(seconds):
        return "—"
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def mean_metric(metrics: dict[str, dict[str, float]], name: str) -> float:
    vals = [float(v[name]) for v in metrics.values() if isinstance(v, dict) and name in v]
    return float(np.mean(vals)) if vals else float("nan")


class CurveSet:
    """Loss terms → (x, y) lists with a checkbox and a plot curve each."""

    def __init__(self, plot: pg.PlotWidget, box_layout: QHBoxLayout) -> None:
        self.plot = plot
        self.box_layout = box_layout
        self.data: dict[str, tuple[list[float], list[float]]] = {}
        self.curves: dict[str, Any] = {}
        self.checks: dict[str, QCheckBox] = {}
        self.dirty = False

    def add(self, x: float, values: dict[str, float]) -> None:
        for term, val in values.items():
            if term not in self.data:
                self._new_term(term)
            xs, ys = self.data[term]
            xs.append(x)
            ys.append(float(val) if val is not None and np.isfinite(val) else np.nan)
        if values:
            self.dirty = True

    def _new_term(self, term: str) -> None:
        color = TERM_COLORS[len(self.data) % len(TERM_COLORS)]
        self.data[term] = ([], [])
        curve = self.plot.plot([], [], pen=pg.mkPen(color, width=1.6 if term == "total" else 1.1), name=term,
                               antialias=False)
        curve.setDownsampling(auto=True, method="peak")
        curve.setClipToView(True)
        self.curves[term] = curve
        cb = QCheckBox(term)
        cb.setChecked(True)
        cb.setStyleSheet(f"QCheckBox {{ color: rgb{color}; }}")
        cb.toggled.connect(lambda on, t=term: self.curves[t].setVisible(on))
        self.checks[term] = cb
        self.box_layout.insertWidget(self.box_layout.count() - 1, cb)

    def redraw(self) -> None:
        if not self.dirty:
            return
        self.dirty = False
        for term, (xs, ys) in self.data.items():
            self.curves[term].setData(np.asarray(xs), np.asarray(ys), connect="finite")

    def clear(self) -> None:
        for curve in self.curves.values():
            self.plot.removeItem(curve)
        for cb in self.checks.values():
            cb.setParent(None)
            cb.deleteLater()
        self.plot.plotItem.legend.clear() if self.plot.plotItem.legend is not None else None
        self.data, self.curves, self.checks = {}, {}, {}

    def points(self) -> int:
        return sum(len(xs) for xs, _ys in self.data.values())


class TrainingPanel(QWidget):
    """Configure, run and watch a training; list finished runs; make one active."""

    run_finished = Signal(str)

    def __init__(self, bridge: SessionBridge, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.session = bridge.session
        self.controller = controller
        self.task: Optional[Task] = None
        self.trainer: Any = None
        self.run_dir: Optional[Path] = None
        self.status_text = ""
        self.epoch_x: list[float] = []
        self.r1: list[float] = []
        self.medr: list[float] = []
        self.step_events = 0
        self.epoch_events: list[Any] = []
        self.last_status: Optional[str] = None

        # -- configuration
        self.method = QComboBox()
        for key, label in METHOD_LABELS:
            self.method.addItem(label, key)
        self.inputs = QComboBox()
        self.inputs.addItem("Aligned sequences (syllable ↔ note)", "aligned")
        self.inputs.addItem("Paper features (mean-pooled)", "paper")
        self.inputs.setToolTip("Aligned: each modality keeps one token per syllable, audio onset or engraved "
                               "note, read by a small transformer (lyrics ↔ music retrieval needs it). "
                               "Paper: the mean-pooled features of the paper, for replication.")
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(20)
        self.seed = QSpinBox()
        self.seed.setRange(0, 10_000)
        self.batch = QSpinBox()
        self.batch.setRange(4, 4096)
        self.batch.setValue(64)
        self.lr_g = QDoubleSpinBox(decimals=5, minimum=1e-5, maximum=1.0, singleStep=1e-4, value=1e-3)
        self.lr_d = QDoubleSpinBox(decimals=5, minimum=1e-5, maximum=1.0, singleStep=1e-4, value=1e-3)
        self.temp_g = QDoubleSpinBox(decimals=3, minimum=0.01, maximum=10.0, singleStep=0.05, value=0.1)
        self.start_btn = QPushButton("Start training")
        self.start_btn.setObjectName("primary")
        self.stop_btn = QPushButton("Stop")
        self.stop_btn.setEnabled(False)
        self.resume_btn = QPushButton("Resume selected")
        self.progress = QProgressBar()
        self.progress.setFormat("%p%")
        self.eta = QLabel("")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        cfg_box = QGroupBox("New run")
        form = QFormLayout(cfg_box)
        form.addRow("Method", self.method)
        form.addRow("Inputs", self.inputs)
        form.addRow("Epochs", self.epochs)
        form.addRow("Seed", self.seed)
        form.addRow("Batch size", self.batch)
        form.addRow("Learning rate G", self.lr_g)
        form.addRow("Learning rate D", self.lr_d)
        form.addRow("Temperature of p(J|z)", self.temp_g)
        btns = QHBoxLayout()
        btns.addWidget(self.start_btn)
        btns.addWidget(self.stop_btn)
        form.addRow(btns)
        form.addRow(self.progress)
        form.addRow("ETA", self.eta)
        form.addRow(self.status)

        # -- runs
        self.runs = QTreeWidget()
        self.runs.setHeaderLabels(["Run", "Method", "Seed", "Status", "val R@1"])
        self.runs.setRootIsDecorated(False)
        rh = self.runs.header()
        rh.setSectionResizeMode(0, QHeaderView.Stretch)
        for c in range(1, 5):
            rh.setSectionResizeMode(c, QHeaderView.ResizeToContents)
        self.activate_btn = QPushButton("Make active")
        self.activate_btn.setToolTip("Use this run for retrieval and the map")
        self.refresh_btn = QPushButton("Refresh")
        runs_box = QGroupBox("Runs of this dataset")
        rl = QVBoxLayout(runs_box)
        rl.addWidget(self.runs, 1)
        rb = QHBoxLayout()
        rb.addWidget(self.activate_btn)
        rb.addWidget(self.resume_btn)
        rb.addStretch(1)
        rb.addWidget(self.refresh_btn)
        rl.addLayout(rb)

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(cfg_box)
        ll.addWidget(runs_box, 1)
        left.setMaximumWidth(440)

        # -- plots
        self.g_plot = self._plot("Generator losses", "loss")
        self.d_plot = self._plot("Discriminator losses", "loss")
        self.m_plot = self._plot("Validation (mean of six directions)", "R@1 %")
        self.m_plot.plotItem.legend.setVisible(False)  # the axes say which curve is which
        self.m_plot.setLabel("left", "R@1 %", color="#66bb6a")
        self.m_plot.setLabel("bottom", "epoch")
        self.medr_vb = pg.ViewBox()
        pi = self.m_plot.plotItem
        pi.showAxis("right")
        pi.scene().addItem(self.medr_vb)
        pi.getAxis("right").linkToView(self.medr_vb)
        pi.getAxis("right").setLabel("MedR (dashed)", color="#ef5350")
        self.medr_vb.setXLink(pi)
        pi.vb.sigResized.connect(lambda: self.medr_vb.setGeometry(pi.vb.sceneBoundingRect()))
        self.r1_curve = self.m_plot.plot([], [], pen=pg.mkPen((102, 187, 106), width=2), symbol="o",
                                         symbolSize=6, symbolBrush=(102, 187, 106), name="R@1")
        self.medr_curve = pg.PlotDataItem([], [], pen=pg.mkPen((239, 83, 80), width=2, style=Qt.DashLine),
                                          symbol="t", symbolSize=6, symbolBrush=(239, 83, 80), name="MedR")
        self.medr_vb.addItem(self.medr_curve)
        self.g_checks = QHBoxLayout()
        self.g_checks.addStretch(1)
        self.d_checks = QHBoxLayout()
        self.d_checks.addStretch(1)
        self.g_curves = CurveSet(self.g_plot, self.g_checks)
        self.d_curves = CurveSet(self.d_plot, self.d_checks)
        self.direction = QComboBox()
        self.direction.addItem("Mean of six directions", "")
        for d in DIRECTIONS:
            self.direction.addItem(d, d)
        self.direction.currentIndexChanged.connect(lambda _i: self._redraw_metrics())
        self.metrics_label = QLabel("")
        self.metrics_label.setObjectName("muted")
        # Labels that change while training must not relayout the plots (each
        # relayout resizes three pyqtgraph views on the GUI thread).
        for lab in (self.metrics_label, self.eta):
            lab.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)
        self.placeholder = QLabel("")
        self.placeholder.setObjectName("muted")
        self.placeholder.setWordWrap(True)

        plots = QWidget()
        pl = QGridLayout(plots)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(self.placeholder, 0, 0, 1, 2)
        pl.addWidget(self.g_plot, 1, 0)
        pl.addWidget(self.d_plot, 1, 1)
        pl.addLayout(self.g_checks, 2, 0)
        pl.addLayout(self.d_checks, 2, 1)
        mrow = QHBoxLayout()
        mrow.addWidget(self.direction)
        mrow.addWidget(self.metrics_label, 1)
        pl.addLayout(mrow, 3, 0, 1, 2)
        pl.addWidget(self.m_plot, 4, 0, 1, 2)
        pl.setRowStretch(1, 3)
        pl.setRowStretch(4, 2)

        split = QSplitter(Qt.Horizontal)
        split.addWidget(left)
        split.addWidget(plots)
        split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(split)

        self.timer = QTimer(self)
        self.timer.setInterval(200)  # 5 Hz redraws keep the event loop free
        self.timer.timeout.connect(self._redraw)
        self.start_btn.clicked.connect(lambda: self.start())
        self.stop_btn.clicked.connect(self.stop)
        self.resume_btn.clicked.connect(self.resume_selected)
        self.activate_btn.clicked.connect(self.activate_selected)
        self.refresh_btn.clicked.connect(self.refresh_runs)
        self.runs.itemDoubleClicked.connect(lambda _i, _c: self.activate_selected())
        self.runs.currentItemChanged.connect(self._on_run_item)
        self.method.currentIndexChanged.connect(self._on_method)
        bridge.dataset_changed.connect(lambda _d: self._on_data())
        bridge.features_changed.connect(lambda _f: self._on_data())
        bridge.run_changed.connect(lambda _r: self._on_active_run())
        bridge.runs_changed.connect(self.refresh_runs)
        self._on_data()

    def _plot(self, title: str, ylabel: str, legend_offset: tuple[int, int] = (-10, 10)) -> pg.PlotWidget:
        p = pg.PlotWidget()
        p.setBackground((24, 27, 31))
        p.setTitle(title, size="10pt")
        p.setLabel("left", ylabel)
        p.setLabel("bottom", "step")
        # No grid: pyqtgraph draws it inside AxisItem.paint, re-rendered on
        # every redraw while the live curves move the range. With a grid the
        # GUI thread stalled up to 135-174 ms during training (p99 87 ms); without
        # it, 79 ms (p99 40 ms), measured by benchmarks/gui.py on an idle machine.
        legend = p.addLegend(offset=legend_offset)
        legend.setBrush(pg.mkBrush(24, 27, 31, 200))
        p.setMinimumSize(180, 120)
        return p

    # ---- state ---------------------------------------------------------------------------
    def _on_data(self) -> None:
        ds, fs = self.session.dataset, self.session.features
        running = self.task is not None and not self.task.done
        ok = ds is not None and fs is not None and not running
        self.start_btn.setEnabled(ok)
        # Features cached before sequence inputs existed can only train the paper's inputs.
        has_sequences = bool(getattr(fs, "has_sequences", False))
        self.inputs.model().item(0).setEnabled(has_sequences or fs is None)
        if fs is not None and not has_sequences:
            self.inputs.setCurrentIndex(self.inputs.findData("paper"))
        if ds is None:
            self.placeholder.setText("Open or build a dataset first (Datasets tab or Get started).")
        elif fs is None:
            self.placeholder.setText("Extract the dataset's features first (Datasets tab).")
        else:
            self.placeholder.setText("")
        self.placeholder.setVisible(bool(self.placeholder.text()))
        self.refresh_runs()

    def _on_method(self) -> None:
        m = self.method.currentData()
        trains = m not in ("random", "cca")
        for w in (self.epochs, self.batch, self.lr_g, self.lr_d):
            w.setEnabled(trains)
        self.lr_g.setEnabled(m in ("ugaar", "baseline-gan"))
        self.temp_g.setEnabled(m in ("ugaar", "baseline-gan"))

    def form_settings(self, **overrides: Any) -> dict[str, Any]:
        """The form's values (plus ``overrides``) as RunConfig keyword arguments."""
        kw: dict[str, Any] = dict(method=self.method.currentData(), seed=self.seed.value(),
                                  epochs=self.epochs.value(), batch_size=self.batch.value(),
                                  lr_g=self.lr_g.value(), lr_d=self.lr_d.value(),
                                  temperature_g=self.temp_g.value(), inputs=self.inputs.currentData())
        kw.update(overrides)
        return kw

    def make_config(self, **overrides: Any) -> Any:
        from model.ugaar.config import RunConfig  # imports torch (model.ugaar): not on the GUI thread
        kw = self.form_settings(**overrides)
        method = kw.pop("method")
        return RunConfig.for_method(method, **kw)

    def new_run_dir(self, method: str, seed: int) -> Path:
        root = runs_dir_for(self.session.dataset)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = root / f"{method}-s{seed}-{stamp}"
        path, i = base, 1
        while path.exists():
            path = Path(f"{base}-{i}")
            i += 1
        return path

    # ---- running --------------------------------------------------------------------------
    def start(self, config: Any = None, then: Any = None, **overrides: Any) -> Optional[Task]:
        """Start a new run (config from the form unless given)."""
        fs = self.session.features
        if self.session.dataset is None or fs is None:
            self.session.notify("warning", "Training needs a dataset with extracted features.")
            return None
        if self.task is not None and not self.task.done:
            self.session.notify("warning", "A training is already running; stop it first.")
            return None
        settings = self.form_settings(**overrides) if config is None else None
        method = config.method if config is not None else settings["method"]
        seed = config.seed if config is not None else settings["seed"]
        run_dir = self.new_run_dir(method, seed)
        return self._launch(("new", config if config is not None else settings, fs), run_dir, then=then,
                            title=f"Training {method}")

    def resume_selected(self) -> Optional[Task]:
        item = self.runs.currentItem()
        if item is None:
            self.session.notify("info", "Select a run to resume.")
            return None
        return self.resume(item.data(0, Qt.UserRole))

    def resume(self, run_dir: str, then: Any = None) -> Optional[Task]:
        fs = self.session.features
        if fs is None or (self.task is not None and not self.task.done):
            return None

        self._replay(run_dir)
        return self._launch(("resume", None, fs), Path(run_dir), then=then, title="Resuming training", clear=False)

    def _launch(self, job: tuple[str, Any, Any], run_dir: Path, then: Any = None, title: str = "Training",
                clear: bool = True) -> Task:
        """Run the real trainer in a child process (``train_job``); events come back live."""
        if clear:
            self.clear_curves()
        self.run_dir = run_dir
        self.last_status = None
        mode, config, features = job

        def work(progress, cancel):
            from model.map.layout import server
            from .train_job import run_in_child
            # RunConfig is built in the child: its package imports torch, and an import on
            # this thread would hold the GIL (and so the event loop) for a few hundred ms.
            job_mode, cfg = mode, None
            if mode == "new":
                job_mode, cfg = ("settings", config) if isinstance(config, dict) else ("config", config.to_dict())
            server().warm_up()  # let the map's UMAP process compile while the model trains
            return run_in_child(job_mode, cfg, features, str(run_dir), task.emit_event, cancel)

        def done(_result):
            self.trainer = None
            self.session.notify_runs_changed()
            status = self.last_status or "finished"
            if status == "failed":
                return
            self.run_finished.emit(str(run_dir))
            if then is not None:
                then(str(run_dir))

        def failed(msg):
            self.trainer = None
            self.status.setText(f"<span style='color:#ef5350'>{html.escape(msg)}</span>")
            self.session.notify("error", msg + " — the last good checkpoint is kept.")
            self.session.notify_runs_changed()

        task = self.controller.tasks.start(title, work, on_done=done, on_error=failed)
        task.event.connect(self.on_event)
        task.ended.connect(self._on_ended)
        self.task = task
        self.start_btn.setEnabled(False)
        self.stop_btn.setEnabled(True)
        self.resume_btn.setEnabled(False)
        self.progress.setRange(0, 0)
        self.status.setText(f"{title} in {run_dir.name} …")
        self.timer.start()
        return task

    def stop(self) -> None:
        """Ask the trainer to stop after the current step (thread-safe)."""
        if self.task is None or self.task.done:
            return
        self.task.cancel()  # the child process gets "stop" and ends after its current step
        self.status.setText("Stopping after the current step …")
        self.stop_btn.setEnabled(False)

    def shutdown(self) -> None:
        self.stop()

    def _on_ended(self) -> None:
        self.timer.stop()
        self._redraw()
        self.stop_btn.setEnabled(False)
        self.resume_btn.setEnabled(True)
        self._on_data()
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
        self.eta.setText("—")

    # ---- events (GUI thread) -----------------------------------------------------------------
    def on_event(self, ev: Any) -> None:
        kind = getattr(ev, "kind", "")
        if kind == "step":
            self.step_events += 1
            total = max(1, int(ev.total_steps))  # steps of the whole run
            x = float(ev.step)                     # global step
            self.g_curves.add(x, ev.g_losses or {})
            self.d_curves.add(x, ev.d_losses or {})
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * min(1.0, ev.step / total)))
            self.steps_label = f"epoch {ev.epoch}, step {ev.step}/{total}"
        elif kind == "epoch":
            self.epoch_events.append(ev)
            self.epoch_x.append(ev.epoch)
            self.r1.append(mean_metric(ev.metrics, "R@1"))  # percent
            self.medr.append(mean_metric(ev.metrics, "MedR"))
            for d in ev.metrics:
                if self.direction.findData(d) < 0:
                    self.direction.addItem(d, d)
            if self.task is None or self.task.done:  # replaying a saved run
                self.progress.setRange(0, max(1, ev.epochs))
                self.progress.setValue(ev.epoch)
            self.eta.setText(_fmt_eta(ev.eta_seconds))
            if self.timer.isActive():
                self._metrics_dirty = True  # drawn by the 10 Hz timer
            else:
                self._redraw_metrics()
        elif kind == "run":
            self.last_status = ev.status
            msg = f"Run {ev.status}" + (f": {ev.message}" if ev.message else "")
            color = "#ef5350" if ev.status == "failed" else "#9aa4ad"
            self.status.setText(f"<span style='color:{color}'>{html.escape(msg)}</span>")
            if ev.status == "failed":
                self.session.notify("error", f"Training failed: {ev.message} (the last good checkpoint is kept)")
            elif ev.status in ("finished", "stopped"):
                self.session.notify("info", f"Training {ev.status}: {Path(ev.run_dir).name}")

    def _redraw(self) -> None:
        self.g_curves.redraw()
        self.d_curves.redraw()
        if getattr(self, "_metrics_dirty", False):
            self._metrics_dirty = False
            self._redraw_metrics()

    def _redraw_metrics(self) -> None:
        d = self.direction.currentData()
        if d:
            r1 = [float(ev.metrics.get(d, {}).get("R@1", np.nan)) for ev in self.epoch_events]
            medr = [float(ev.metrics.get(d, {}).get("MedR", np.nan)) for ev in self.epoch_events]
        else:
            r1, medr = self.r1, self.medr
        x = np.asarray(self.epoch_x[:len(r1)], dtype=float)
        self.r1_curve.setData(x, np.asarray(r1, dtype=float))
        self.medr_curve.setData(x, np.asarray(medr, dtype=float))
        if r1:
            self.metrics_label.setText(f"epoch {int(x[-1])}: R@1 {r1[-1]:.1f} %, MedR {medr[-1]:.1f}")

    def clear_curves(self) -> None:
        self.g_curves.clear()
        self.d_curves.clear()
        self.epoch_x, self.r1, self.medr, self.epoch_events = [], [], [], []
        self.step_events = 0
        while self.direction.count() > 1 + len(DIRECTIONS):
            self.direction.removeItem(self.direction.count() - 1)
        self.r1_curve.setData([], [])
        self.medr_curve.setData([], [])
        self.metrics_label.setText("")

    def _replay(self, run_dir: str) -> None:
        """Show a saved run's curves from its event log."""
        self.clear_curves()
        events = []
        path = Path(run_dir) / "events.jsonl"
        try:  # read directly: model.ugaar.run would import torch on the GUI thread
            from model.events import event_from_json
            with open(path, encoding="utf-8") as fh:
                events = [event_from_json(json.loads(line)) for line in fh if line.strip()]
        except (OSError, ValueError, KeyError, TypeError):
            events = []
        for ev in events:
            if getattr(ev, "kind", "") != "run":
                self.on_event(ev)
        self._redraw()
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if events else 0)

    # ---- runs list -----------------------------------------------------------------------------
    def refresh_runs(self) -> list[dict[str, Any]]:
        ds = self.session.dataset
        self.runs.clear()
        if ds is None:
            return []
        runs = list_runs(ds)
        for r in runs:
            status = r.get("status", "")
            if isinstance(status, dict):
                status = status.get("status", "")
            watching = self.task is not None and not self.task.done and str(self.run_dir) == r["run_dir"]
            if status == "running" and not watching:
                status = "interrupted"  # its process ended mid-run: Resume continues it
            r1 = r.get("val_r1", self._val_r1(r["run_dir"]))
            item = QTreeWidgetItem([r["name"], str(r.get("method", "?")), str(r.get("seed", "")),
                                    str(status or ""), "" if r1 is None else f"{r1:.1f} %"])
            item.setData(0, Qt.UserRole, r["run_dir"])
            item.setToolTip(0, r["run_dir"])
            if r.get("problem"):  # a damaged run folder: why, on its "corrupt" status
                item.setToolTip(3, r["problem"])
            self.runs.addTopLevelItem(item)
        self._mark_active()
        return runs

    @staticmethod
    def _val_r1(run_dir: str) -> Optional[float]:
        p = Path(run_dir) / "events.jsonl"
        if not p.is_file():
            return None
        last = None
        try:
            with open(p, encoding="utf-8") as fh:
                for line in fh:
                    if '"epoch"' in line and '"metrics"' in line:
                        last = line
            if last is None:
                return None
            data = json.loads(last)
            return mean_metric(data.get("metrics", {}), "R@1")
        except (OSError, json.JSONDecodeError, ValueError):
            return None

    def _mark_active(self) -> None:
        active = str(self.session.run_dir) if self.session.run_dir is not None else None
        for i in range(self.runs.topLevelItemCount()):
            item = self.runs.topLevelItem(i)
            bold = item.data(0, Qt.UserRole) == active
            for c in range(self.runs.columnCount()):
                f = item.font(c)
                f.setBold(bold)
                item.setFont(c, f)
            item.setText(0, item.text(0).removesuffix("  ● active") + ("  ● active" if bold else ""))

    def _on_active_run(self) -> None:
        """Show the active run's curves unless a training is being watched."""
        self._mark_active()
        run_dir = self.session.run_dir
        if run_dir is None or (self.task is not None and not self.task.done):
            return
        for i in range(self.runs.topLevelItemCount()):
            item = self.runs.topLevelItem(i)
            if item.data(0, Qt.UserRole) == str(run_dir):
                self.runs.setCurrentItem(item)  # replays its curves
                return
        self._replay(str(run_dir))

    def _on_run_item(self, item: Optional[QTreeWidgetItem], _prev: Any) -> None:
        if item is None or (self.task is not None and not self.task.done):
            return
        self._replay(item.data(0, Qt.UserRole))

    def activate_selected(self) -> None:
        item = self.runs.currentItem()
        if item is None:
            self.session.notify("info", "Select a finished run to make it active.")
            return
        self.controller.open_run(item.data(0, Qt.UserRole))

    def run_names(self) -> list[str]:
        return [self.runs.topLevelItem(i).data(0, Qt.UserRole) for i in range(self.runs.topLevelItemCount())]
