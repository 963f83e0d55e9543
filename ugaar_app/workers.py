"""Run core functions off the GUI thread with progress and cancel.

A :class:`Task` wraps ``fn(progress, cancel) -> result`` where ``progress``
is a ``model.progress.ProgressCallback`` and ``cancel`` a ``CancelToken``.
It runs on the global ``QThreadPool``; its Qt signals arrive on the GUI
thread (queued).  Progress reports are throttled to ~20 per second so a
chatty core function cannot flood the event loop.
"""
from __future__ import annotations

import collections
import threading
import time
import traceback
from typing import Any, Callable, Optional

from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal

from model.progress import CancelToken, Cancelled, Progress


class Task(QObject):
    """One piece of background work; keep a reference until it ends."""

    progress = Signal(object)        # model.progress.Progress
    event = Signal(object)           # free-form events (training events)
    finished = Signal(object)        # the result
    failed = Signal(str)             # a plain-words error message
    cancelled = Signal()
    ended = Signal()                 # after any of the three above

    def __init__(self, name: str, fn: Callable[..., Any], *, min_interval: float = 0.05) -> None:
        super().__init__()
        self.name = name
        self.fn = fn
        self.cancel_token = CancelToken()
        self.min_interval = min_interval
        self._last_emit = 0.0
        self._lock = threading.Lock()
        self.running = False
        self.done = False
        self.result: Any = None
        self.error: Optional[str] = None
        self.last_progress: Optional[Progress] = None

    # called from the worker thread
    def report(self, p: Progress) -> None:
        now = time.monotonic()
        with self._lock:
            stage_changed = self.last_progress is None or self.last_progress.stage != p.stage
            self.last_progress = p
            if not (stage_changed or (p.total and p.done >= p.total) or now - self._last_emit >= self.min_interval):
                return
            self._last_emit = now
        self.progress.emit(p)

    def emit_event(self, obj: Any) -> None:
        self.event.emit(obj)

    def cancel(self) -> None:
        self.cancel_token.set()

    def run_here(self) -> None:
        """Run synchronously in the current thread (the runnable calls this)."""
        self.running = True
        try:
            result = self.fn(self.report, self.cancel_token)
        except Cancelled:
            self.done = True
            self.running = False
            self.cancelled.emit()
        except Exception as exc:  # noqa: BLE001 - every error becomes a message
            self.done = True
            self.running = False
            self.error = f"{self.name} failed: {exc}" if str(exc) else f"{self.name} failed: {exc!r}"
            traceback.print_exc()
            self.failed.emit(self.error)
        else:
            self.done = True
            self.running = False
            self.result = result
            if self.cancel_token.is_set and result is None:
                self.cancelled.emit()
            else:
                self.finished.emit(result)
        self.ended.emit()


class _Runnable(QRunnable):
    def __init__(self, task: Task) -> None:
        super().__init__()
        self.task = task
        self.setAutoDelete(True)

    def run(self) -> None:  # noqa: D401 - Qt API
        task, self.task = self.task, None
        task.run_here()  # the manager keeps the Task alive; it is released on the GUI thread


class TaskManager(QObject):
    """Starts tasks on the thread pool and keeps them alive while they run."""

    task_started = Signal(object)
    task_ended = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(4)
        self.active: list[Task] = []
        # Ended tasks are kept a while so their last reference is never dropped on a
        # worker thread (a QObject must be destroyed on the thread it lives in).
        self.recent: collections.deque[Task] = collections.deque(maxlen=64)

    def start(self, name: str, fn: Callable[..., Any], *,
              on_done: Optional[Callable[[Any], None]] = None,
              on_error: Optional[Callable[[str], None]] = None,
              on_progress: Optional[Callable[[Progress], None]] = None,
              on_cancel: Optional[Callable[[], None]] = None) -> Task:
        task = Task(name, fn)
        if on_done is not None:
            task.finished.connect(on_done)
        if on_error is not None:
            task.failed.connect(on_error)
        if on_progress is not None:
            task.progress.connect(on_progress)
        if on_cancel is not None:
            task.cancelled.connect(on_cancel)
        task.ended.connect(lambda t=task: self._ended(t))
        self.active.append(task)
        self.task_started.emit(task)
        # Start on the next event-loop turn, so the caller can connect more signals
        # (progress, ended) to the returned task before it can possibly emit them.
        QTimer.singleShot(0, lambda: self._launch(task))
        return task

    def _launch(self, task: Task) -> None:
        if task.cancel_token.is_set:
            task.done = True
            task.cancelled.emit()
            task.ended.emit()
            return
        self.pool.start(_Runnable(task))

    def _ended(self, task: Task) -> None:
        if task in self.active:
            self.active.remove(task)
        self.recent.append(task)
        self.task_ended.emit(task)

    def cancel_all(self) -> None:
        for task in list(self.active):
            task.cancel()

    def wait(self, msecs: int = -1) -> bool:
        from PySide6.QtCore import QCoreApplication
        QCoreApplication.processEvents()  # launch tasks still waiting for their event-loop turn
        return self.pool.waitForDone(msecs)
