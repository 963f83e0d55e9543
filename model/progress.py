"""Progress reporting and cooperative cancellation for long work.

The GUI runs core functions on worker threads and the CLI runs them under a
progress bar; both pass a ``progress`` callable and a ``CancelToken``.  Core
functions call ``report`` between units of work and ``cancel.raise_if_set()``
at safe points (after a file is written atomically), so cancelling never
leaves a half-written file behind.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Optional


class Cancelled(Exception):
    """Raised inside core functions when their ``CancelToken`` was set."""


class CancelToken:
    """A thread-safe flag: ``set()`` from any thread, checked by the worker."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    def raise_if_set(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


@dataclass(frozen=True)
class Progress:
    """One progress report.

    Parameters
    ----------
    stage : str
        Short name of the current stage (``"parse"``, ``"audio"``, ``"sheet"``,
        ``"pretrain"``, ...).
    done : int
        Units finished in this stage.
    total : int
        Units in this stage (0 when unknown).
    message : str
        Optional human-readable detail.
    """

    stage: str
    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


ProgressCallback = Callable[[Progress], None]


def report(callback: Optional[ProgressCallback], stage: str, done: int, total: int,
           message: str = "") -> None:
    """Call ``callback`` if there is one (keeps call sites free of ``if``)."""
    if callback is not None:
        callback(Progress(stage, done, total, message))
