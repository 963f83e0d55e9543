"""Guard against a reference-count bug of PySide6 6.12 on Python < 3.12.

On this platform every wrapped Qt method that returns ``void`` hands back
``None`` without taking a reference, and ``Signal.emit`` does the same with
``True``/``False``.  Each call therefore decrements the reference count of
those singletons by one (measured here: ``QWidget.update()`` ×1000 lowers
``sys.getrefcount(None)`` by exactly 1000).  Once a count reaches zero the
interpreter aborts with ``Fatal Python error: none_dealloc``.  An app that
repaints plots does this within minutes.  From Python 3.12 on these objects
are immortal and the bug is harmless.

PyPI serves only PySide6 6.12.0 here, so an older PySide6 is not an option.
The guard keeps a bank of references to the three singletons and tops it
up from a timer, so their counts never approach zero.  Memory cost: 8 bytes
per banked reference, about 32 MB per 4 million leaked calls (hours of use).
"""
from __future__ import annotations

import sys

_BANK: list[list[object]] = []
_SINGLETONS = (None, True, False)


def _make_immortal(obj: object) -> None:
    """Never free ``obj``: at interpreter exit, freeing the bank would push the
    leaked counts below zero and abort the process."""
    try:
        import ctypes
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
    except Exception:  # noqa: BLE001 - not CPython: nothing to guard
        pass


_make_immortal(_BANK)
MIN_REFS = 3_000_000
CHUNK = 4_000_000
_timer = None


def needed() -> bool:
    return sys.version_info < (3, 12)


def top_up() -> int:
    """Bank more references to any singleton whose count fell below MIN_REFS; returns how many chunks."""
    if not needed():
        return 0
    added = 0
    for obj in _SINGLETONS:
        if sys.getrefcount(obj) < MIN_REFS:
            _BANK.append([obj] * CHUNK)
            added += 1
    return added


def install(interval_ms: int = 250) -> None:
    """Top up now and from a Qt timer on the GUI thread (idempotent)."""
    global _timer
    if not needed():
        return
    top_up()
    if _timer is None:
        from PySide6.QtCore import QCoreApplication, QTimer
        app = QCoreApplication.instance()
        if app is None:
            return
        _timer = QTimer(app)
        _timer.setInterval(interval_ms)
        _timer.timeout.connect(top_up)
        _timer.start()
