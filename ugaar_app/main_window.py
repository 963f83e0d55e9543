"""The main window: docks, tabs, menus, shortcuts, status bar, settings."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QLabel, QMainWindow,
                               QMessageBox, QProgressBar, QTabWidget, QToolButton, QWidget)

from .bridge import SessionBridge
from .controller import AppController, default_dataset_dir, quick_dataset_dir
from .dataset_panel import DatasetPanel
from .library import LibraryWidget
from .notifications import NotificationArea
from .sample_view import SampleView
from .session import Session, app_home
from .workers import Task, TaskManager


def open_settings() -> QSettings:
    home = app_home()
    home.mkdir(parents=True, exist_ok=True)
    return QSettings(str(home / "settings.ini"), QSettings.IniFormat)


class MainWindow(QMainWindow):
    """UGAAR Explorer's window.  ``interactive`` fires once the restore is done."""

    interactive = Signal(float)
    run_ready = Signal(float)

    def __init__(self, session: Optional[Session] = None, settings: Optional[QSettings] = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from . import refcount_guard
        refcount_guard.install()  # PySide6 6.12 on Python 3.11 leaks references to None/True/False
        self.t0 = time.perf_counter()
        self.setWindowTitle("UGAAR Explorer")
        self.session = session if session is not None else Session()
        self.bridge = SessionBridge(self.session, self)
        self.settings = settings if settings is not None else open_settings()
        self.tasks = TaskManager(self)
        self.controller = AppController(self.session, self.tasks, self)
        self.controller.remember = self._remember
        self.is_interactive = False
        self.interactive_seconds: Optional[float] = None

        # -- central tabs
        from .first_launch import FirstLaunchPanel
        from .map_view import MapView
        from .retrieval_panel import RetrievalPanel
        from .training_panel import TrainingPanel
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.start_panel = FirstLaunchPanel(self.bridge, self.controller, self)
        self.map_view = MapView(self.bridge, self.tasks)
        self.training = TrainingPanel(self.bridge, self.controller)
        self.datasets = DatasetPanel(self.bridge, self.controller)
        self.tabs.addTab(self.map_view, "Embedding map")
        self.tabs.addTab(self.training, "Training")
        self.tabs.addTab(self.datasets, "Datasets")
        self.tabs.addTab(self.start_panel, "Get started")
        self.setCentralWidget(self.tabs)

        # -- docks
        self.library = LibraryWidget(self.bridge)
        self.sample_view = SampleView(self.bridge)
        self.retrieval = RetrievalPanel(self.bridge, self.controller)
        self.notifications = NotificationArea(self.bridge)
        self.library_dock = self._dock("Library", self.library, Qt.LeftDockWidgetArea)
        self.sample_dock = self._dock("Sample", self.sample_view, Qt.RightDockWidgetArea)
        self.retrieval_dock = self._dock("Retrieval", self.retrieval, Qt.RightDockWidgetArea)
        self.messages_dock = self._dock("Messages", self.notifications, Qt.BottomDockWidgetArea)
        self.messages_dock.hide()

        self._build_status_bar()
        self._build_menus()
        self.controller.map_preview.connect(self.map_view.show_preview)
        # Why this result → the sample view: hovered positions and the result's per-note importance
        self.retrieval.why.position_hovered.connect(self.sample_view.highlight_position)
        self.retrieval.why.importance_ready.connect(self.sample_view.show_importance)
        self.bridge.message.connect(self._on_message)
        self.bridge.dataset_changed.connect(lambda _d: self._update_labels())
        self.bridge.run_changed.connect(lambda _r: self._update_labels())
        self.bridge.features_changed.connect(lambda _f: self._update_labels())
        self.tasks.task_started.connect(self._on_task_started)
        self.tasks.task_ended.connect(self._on_task_ended)
        self.resize(1600, 950)
        if not self._restore_geometry():
            QTimer.singleShot(120, self.default_layout)
        try:
            self.tabs.setCurrentIndex(int(self.settings.value("tab", 0)))
        except (TypeError, ValueError):
            pass
        self._update_labels()

    def default_layout(self) -> None:
        """Dock sizes for a first start (later starts restore the saved layout)."""
        w = max(1200, self.width())
        self.resizeDocks([self.library_dock, self.sample_dock], [int(w * 0.24), int(w * 0.31)], Qt.Horizontal)
        self.resizeDocks([self.sample_dock, self.retrieval_dock], [430, 420], Qt.Vertical)

    # ---- layout helpers -----------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                         | QDockWidget.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.task_label = QLabel()
        self.task_bar = QProgressBar()
        self.task_bar.setMaximumWidth(180)
        self.task_bar.setMaximumHeight(14)
        self.task_bar.setTextVisible(False)
        self.task_cancel = QToolButton(text="Cancel")
        self.task_cancel.setAutoRaise(True)
        self.task_cancel.clicked.connect(self._cancel_current_task)
        for w in (self.task_label, self.task_bar, self.task_cancel):
            w.hide()
            sb.addPermanentWidget(w)
        self.dataset_label = QLabel()
        self.run_label = QLabel()
        self.msg_button = QToolButton(text="Messages")
        self.msg_button.setAutoRaise(True)
        self.msg_button.clicked.connect(self._toggle_messages)
        sb.addPermanentWidget(self.dataset_label)
        sb.addPermanentWidget(self.run_label)
        sb.addPermanentWidget(self.msg_button)
        self.current_task: Optional[Task] = None

    def _build_menus(self) -> None:
        mb = self.menuBar()
        fm = mb.addMenu("&File")
        self.act_open = self._action(fm, "&Open dataset…", QKeySequence.Open, self.open_dataset_dialog)
        self._action(fm, "Open &run…", "Ctrl+Shift+O", self.open_run_dialog)
        fm.addSeparator()
        self._action(fm, "Export result &tables (CSV/Markdown)…", "Ctrl+E", self.export_tables)
        self._action(fm, "Export embeddings for the TensorBoard &projector…", "Ctrl+Shift+E", self.export_projector)
        fm.addSeparator()
        self._action(fm, "&Quit", QKeySequence.Quit, self.close)

        vm = mb.addMenu("&View")
        for i, name in enumerate(("Embedding map", "Training", "Datasets", "Get started")):
            self._action(vm, name, f"Ctrl+{i + 1}", lambda _=False, i=i: self.tabs.setCurrentIndex(i))
        vm.addSeparator()
        for dock in (self.library_dock, self.sample_dock, self.retrieval_dock, self.messages_dock):
            vm.addAction(dock.toggleViewAction())

        pm = mb.addMenu("&Sample")
        self._action(pm, "Play / stop", None, self.sample_view.player.toggle)
        self._action(pm, "Find in library", QKeySequence.Find, self.focus_search)
        self._action(pm, "Next sample", "Ctrl+Down", lambda: self.step_selection(1))
        self._action(pm, "Previous sample", "Ctrl+Up", lambda: self.step_selection(-1))

        hm = mb.addMenu("&Help")
        self._action(hm, "&About UGAAR Explorer", None, self.about)

        # Space toggles playback unless a text field has focus.
        self.space = QShortcut(QKeySequence(Qt.Key_Space), self)
        self.space.setContext(Qt.WindowShortcut)
        self.space.activated.connect(self._space)

    def _action(self, menu, text: str, shortcut: Any, slot) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(slot)
        menu.addAction(act)
        self.addAction(act)
        return act

    # ---- settings -----------------------------------------------------------------------
    def _remember(self, key: str, value: Optional[str]) -> None:
        if value:
            self.settings.setValue(key, value)
        else:
            self.settings.remove(key)
        self.settings.sync()

    def _restore_geometry(self) -> bool:
        geo = self.settings.value("geometry")
        state = self.settings.value("window_state")
        if geo is not None:
            self.restoreGeometry(geo)
        if state is not None:
            return bool(self.restoreState(state))
        return False

    def closeEvent(self, event) -> None:  # noqa: N802
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window_state", self.saveState())
        if self.tabs.currentWidget() is not self.start_panel:
            self.settings.setValue("tab", self.tabs.currentIndex())
        self.settings.sync()
        self.sample_view.player.stop()
        self.training.shutdown()
        self.tasks.cancel_all()
        self.map_view.shutdown()
        self.tasks.wait(3000)
        super().closeEvent(event)

    # ---- start-up ------------------------------------------------------------------------
    def restore_session(self, dataset: Optional[str] = None, run: Optional[str] = None,
                        first_launch: str = "offer") -> None:
        """Reopen the last (or given) dataset and run; offer the first-launch flow otherwise.

        The window is interactive as soon as the dataset is open (library, sample view);
        the run (retrieval index, map) follows on a worker thread and announces
        ``run_ready``.
        """
        last_dataset = self.settings.value("last_dataset") or None
        if run is None and (dataset is None or dataset == last_dataset):
            run = self.settings.value("last_run") or None
        dataset = dataset or last_dataset
        if dataset and not (Path(dataset) / "manifest.json").is_file():
            self.session.notify("warning", f"The last dataset {dataset} is gone; build or open one.")
            dataset = None
        for fallback in (default_dataset_dir(), quick_dataset_dir()):
            if dataset is None and (fallback / "manifest.json").is_file():
                dataset = str(fallback)
        if dataset is None:
            self.tabs.setCurrentWidget(self.start_panel)
            self._mark_interactive()
            if first_launch == "auto":
                self.start_panel.start()
            return
        if run and not (Path(run) / "config.json").is_file():
            run = None
        self._restore_run = run
        self.controller.open_dataset(dataset, then=self._after_restore)

    def _after_restore(self) -> None:
        self._mark_interactive()
        if self.session.features is None:
            return
        run = getattr(self, "_restore_run", None)
        if run is None:
            runs = [r for r in self.training.refresh_runs() if (Path(r["run_dir"]) / "embeddings.npz").is_file()]
            run = runs[0]["run_dir"] if runs else None
        if run is not None:
            self.controller.open_run(run, then=lambda: self.run_ready.emit(time.perf_counter() - self.t0))

    def _mark_interactive(self) -> None:
        if self.is_interactive:
            return
        # Let the event loop lay out and paint before we call it interactive.
        QTimer.singleShot(0, self._emit_interactive)

    def _emit_interactive(self) -> None:
        if self.is_interactive:
            return
        self.is_interactive = True
        self.interactive_seconds = time.perf_counter() - self.t0
        if self.session.dataset is not None and self.session.selected is None and self.session.dataset.samples:
            first = self.library.visible_ids()[:1]
            if first:
                self.session.select(first[0], origin="startup")
        self.statusBar().showMessage(f"Ready in {self.interactive_seconds:.1f} s", 5000)
        self.interactive.emit(self.interactive_seconds)

    # ---- actions ---------------------------------------------------------------------------
    def open_dataset_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open dataset folder", str(app_home() / "datasets"))
        if path:
            self.controller.open_dataset(path)

    def open_run_dialog(self) -> None:
        start = str(Path(self.session.dataset.root) / "runs") if self.session.dataset is not None else str(app_home())
        path = QFileDialog.getExistingDirectory(self, "Open run folder", start)
        if path:
            self.controller.open_run(path)

    def export_tables(self) -> None:
        from .export import export_tables_dialog
        export_tables_dialog(self)

    def export_projector(self) -> None:
        from .export import export_projector_dialog
        export_projector_dialog(self)

    def focus_search(self) -> None:
        self.library_dock.show()
        self.library_dock.raise_()
        self.library.search.setFocus()
        self.library.search.selectAll()

    def step_selection(self, delta: int) -> None:
        ids = self.library.visible_ids()
        if not ids:
            return
        cur = self.session.selected
        i = ids.index(cur) + delta if cur in ids else 0
        self.session.select(ids[max(0, min(len(ids) - 1, i))], origin="keyboard")

    def about(self) -> None:
        QMessageBox.about(self, "About UGAAR Explorer",
                          "<h3>UGAAR Explorer</h3><p>Build a three-modality dataset (audio, sheet music, lyrics) "
                          "from lyric-aligned melodies, train UGAAR and its baselines, and explore the shared "
                          "space: retrieval in six directions and an embedding map.</p>")

    def _space(self) -> None:
        focus = QApplication.focusWidget()
        from PySide6.QtWidgets import QAbstractSpinBox, QLineEdit, QPlainTextEdit, QTextEdit
        if isinstance(focus, (QLineEdit, QTextEdit, QPlainTextEdit, QAbstractSpinBox)):
            return
        self.sample_view.player.toggle()

    def _toggle_messages(self) -> None:
        self.messages_dock.setVisible(not self.messages_dock.isVisible())
        self.notifications.unread = 0
        self._update_msg_button()

    # ---- status ---------------------------------------------------------------------------------
    def _on_message(self, level: str, text: str) -> None:
        prefix = {"error": "Error: ", "warning": "Note: "}.get(level, "")
        self.statusBar().showMessage(prefix + text, 10000 if level != "info" else 5000)
        self._update_msg_button()

    def _update_msg_button(self) -> None:
        n = self.notifications.unread
        self.msg_button.setText(f"Messages ⚠ {n}" if n else "Messages")

    def _update_labels(self) -> None:
        ds = self.session.dataset
        if ds is None:
            self.dataset_label.setText("No dataset")
        else:
            feat = "features ✓" if self.session.features is not None else "no features"
            self.dataset_label.setText(f"Dataset: {Path(ds.root).name} ({len(ds.samples)}, {feat})")
        run = self.session.run
        if run is None:
            self.run_label.setText("No active run")
        else:
            cfg = getattr(run, "config", None)
            method = getattr(cfg, "method", "?")
            name = Path(str(getattr(run, "run_dir", ""))).name
            index = self.session.index
            status = index.status_text() if hasattr(index, "status_text") else ""
            # "approximate, recall 0.98 measured" tells the user the lists may miss a neighbour
            self.run_label.setText(f"Run: {method} · {name}" + (f" · retrieval {status}" if status else ""))
            self.run_label.setToolTip(f"Retrieval index: {status}; " + ", ".join(
                f"{k}: {v}" for k, v in index.kinds.items()) if status else "")

    def _on_task_started(self, task: Task) -> None:
        self.current_task = task
        task.progress.connect(lambda p, t=task: self._on_task_progress(t, p))
        self.task_label.setText(task.name + " …")
        self.task_bar.setRange(0, 0)
        for w in (self.task_label, self.task_bar, self.task_cancel):
            w.show()

    def _on_task_progress(self, task: Task, p: Any) -> None:
        if task is not self.current_task:
            return
        self.task_label.setText(f"{task.name}: {p.stage} {p.done}/{p.total}" if p.total else f"{task.name}: {p.stage} …")
        if p.total:
            self.task_bar.setRange(0, p.total)
            self.task_bar.setValue(p.done)
        else:
            self.task_bar.setRange(0, 0)

    def _on_task_ended(self, task: Task) -> None:
        remaining = self.tasks.active
        if remaining:
            self.current_task = remaining[-1]
            self.task_label.setText(self.current_task.name + " …")
            return
        self.current_task = None
        for w in (self.task_label, self.task_bar, self.task_cancel):
            w.hide()

    def _cancel_current_task(self) -> None:
        if self.current_task is not None:
            self.current_task.cancel()
            self.task_label.setText(self.current_task.name + ": cancelling …")
