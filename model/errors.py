"""The project's error contract: expected failures are :class:`UgaarError`.

An expected failure is one a user causes and can fix: a path that is not a
run folder, a truncated checkpoint, a WAV that is really a text file, an
empty lyrics line.  Each is raised as a :class:`UgaarError` whose one-line
message names the file or argument, says what is wrong in the user's words
and, where there is one, the fix.  The CLI (``model.cli.main``) prints that
line and exits with status 2; any other exception is a bug and is shown with
its traceback (see ``docs/reliability.md``).

The importers' ``SourceError`` and the dataset's ``DatasetError`` are
subclasses, so a caller that catches ``UgaarError`` catches them too.
"""
from __future__ import annotations


def one_line(text: str) -> str:
    """``text`` with its line breaks folded, so an error stays one line on a terminal."""
    return " ".join(str(text).split())


class UgaarError(Exception):
    """An expected failure with a message a user can act on.

    Parameters
    ----------
    subject : str
        The file, folder or argument at fault (``runs/x/best.pt``, ``--lyrics``).
        Called with this alone, it is the whole message (for subclasses that
        format their own).
    problem : str, optional
        What is wrong, in the user's words.
    fix : str, optional
        What to do about it.

    Notes
    -----
    ``str(e)`` is ``"<subject>: <problem>; <fix>"`` on one line.  ``args``
    holds only that message, so the error pickles (worker processes) and a
    re-raised copy keeps the text.
    """

    def __init__(self, subject: str, problem: str | None = None, fix: str = "") -> None:
        if problem is None:
            message = one_line(subject)
        else:
            message = one_line(f"{subject}: {problem}" + (f"; {fix}" if fix else ""))
        super().__init__(message)
        self.subject = str(subject) if problem is not None else ""
        self.problem = problem or message
        self.fix = fix


class MissingError(UgaarError, FileNotFoundError):
    """A file or folder that should be there is not.

    Also a ``FileNotFoundError``, which callers that predate this module catch.
    """


class CorruptFileError(UgaarError, ValueError):
    """A file exists but cannot be read as what it should be (truncated, wrong kind, bad fields)."""


class BadInputError(UgaarError, ValueError):
    """A command-line value (a query, a count) that cannot be used."""


class WriteError(UgaarError, OSError):
    """A file could not be written: the disk is full, the folder is read-only or not ours.

    Also an ``OSError``, so callers that already tolerate a failed write (a
    cache that is only an optimisation) keep doing so.  ``errno`` and
    ``filename`` are those of the failure; ``filename`` is the file that was
    being written, not the temporary file the atomic writer used.
    """

    def __init__(self, subject: str, problem: str | None = None, fix: str = "", *,
                 errno: int | None = None) -> None:
        super().__init__(subject, problem, fix)
        self.errno = errno
        self.filename = str(subject) if problem is not None else None

    def __str__(self) -> str:  # OSError's own would print "[Errno 28] None: 'file'"
        return str(self.args[0]) if self.args else ""

    def __reduce__(self):  # keep errno and filename when sent back from a worker process
        return (type(self), (str(self),), {"errno": self.errno, "filename": self.filename,
                                           "subject": self.subject, "problem": self.problem, "fix": self.fix})
