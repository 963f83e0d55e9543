"""How ``ugaar`` reports a failed command: one line for the user's mistakes, a traceback for ours.

Expected failures get one line on stderr, ``ugaar: error: <message>``, and
exit status 2:

* a :class:`model.errors.UgaarError` (its subclasses ``SourceError``,
  ``DatasetError``, the checks of ``model.validate``);
* a ``ValueError`` or ``FileNotFoundError`` raised by the project's own code
  (``model/``), whose messages were written for users before
  ``UgaarError`` existed (``RunConfig.validate``, "no CUDA device", ...);
* an ``OSError`` naming a file (disk full, permission denied): the machine,
  not the program.

Anything else is a bug: the traceback is printed under a line that says so,
followed by where to report it, and the exit status is 1.  A ``ValueError``
raised inside numpy or torch counts as a bug too: it means an input reached
a library unchecked.  ``--debug`` prints the traceback of every failure.
"""
from __future__ import annotations

import errno
import sys
import traceback
from pathlib import Path
from typing import TextIO

from model.errors import UgaarError, one_line

EXIT_EXPECTED = 2
EXIT_BUG = 1
EXIT_INTERRUPTED = 130

_MODEL_DIR = Path(__file__).resolve().parents[1]

BUG_LINE = "ugaar: internal error: this is a bug in UGAAR Explorer, not a problem with your input"
REPORT_LINE = ("ugaar: please report it with the traceback above and the command you ran "
               "(an issue in the project's tracker); `--debug` shows tracebacks for every error")

# What to do about the OS errors a user can fix.
_OS_FIXES = {
    errno.ENOSPC: "free some disk space and run the command again; finished work is kept",
    errno.EACCES: "check the permissions of the file or folder",
    errno.EPERM: "check the permissions of the file or folder",
    errno.EROFS: "write to another folder (this one is on a read-only file system)",
}


def _raised_in_project(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc``'s traceback is in the ``model`` package."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    try:
        Path(tb.tb_frame.f_code.co_filename).resolve().relative_to(_MODEL_DIR)
    except ValueError:
        return False
    return True


def expected_message(exc: BaseException) -> str | None:
    """The one-line message of an expected failure; None when ``exc`` is a bug."""
    if isinstance(exc, UgaarError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror or exc}"
        fix = _OS_FIXES.get(exc.errno or 0)
        return one_line(text + (f"; {fix}" if fix else ""))
    if isinstance(exc, (ValueError, FileNotFoundError)) and _raised_in_project(exc):
        return one_line(str(exc)) or type(exc).__name__
    return None


def report_failure(exc: BaseException, debug: bool = False, stream: TextIO | None = None) -> int:
    """Print ``exc`` the way the CLI's contract says; return the exit status."""
    stream = stream or sys.stderr
    message = expected_message(exc)
    if message is not None:
        if debug:
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=stream)
        print(f"ugaar: error: {message}", file=stream)
        return EXIT_EXPECTED
    print(BUG_LINE, file=stream)
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=stream)
    print(REPORT_LINE, file=stream)
    return EXIT_BUG
