"""Importers: every source yields the same ``model.data.song.Song``.

Each source module exposes two plain functions, so the dataset builder can
call them in worker processes:

``list_items(path) -> list[str]``
    The items (file paths, or corpus paths) a source folder holds, sorted.
``read_song(item) -> Song``
    One song, raw (uncleaned); raises :class:`SourceError` with a clear
    reason when the item cannot be read.
"""
from __future__ import annotations

import contextlib
import importlib
import os
from types import ModuleType
from pathlib import Path
from typing import Iterator

from model.errors import UgaarError

SOURCE_KINDS = ("lmd-npy", "midi", "musicxml", "music21-corpus")

_MODULES = {
    "lmd-npy": "model.sources.npy_release",
    "midi": "model.sources.midi_file",
    "musicxml": "model.sources.score_file",
    "music21-corpus": "model.sources.music21_corpus",
}


class SourceError(UgaarError):
    """An item that cannot be imported; ``str(e)`` is ``"<path>: <reason>"``.

    An expected failure (:class:`model.errors.UgaarError`): the CLI prints it
    as one line.

    Parameters
    ----------
    path : str
        The file (or corpus path) that failed.
    reason : str
        Why, in words a user can act on.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(str(path), reason)
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):  # keep both attributes when sent back from a worker process
        return (type(self), (self.path, self.reason))


def get_source(kind: str) -> ModuleType:
    """Return the importer module for a source kind.

    Raises
    ------
    ValueError
        When ``kind`` is not one of :data:`SOURCE_KINDS`.
    """
    if kind not in _MODULES:
        raise ValueError(f"unknown source kind {kind!r}; valid kinds: {', '.join(SOURCE_KINDS)}")
    return importlib.import_module(_MODULES[kind])


@contextlib.contextmanager
def os_errors_as_source_errors(path: str, what: str) -> Iterator[None]:
    """Turn the ways opening ``path`` can fail into a :class:`SourceError`.

    ``what`` names the expected kind of file (``"a MIDI file"``) for the
    directory case.
    """
    try:
        yield
    except IsADirectoryError:
        raise SourceError(path, f"is a directory, not {what}") from None
    except PermissionError:
        raise SourceError(path, "permission denied") from None
    except FileNotFoundError:
        raise SourceError(path, "file not found") from None
    except OSError as exc:
        raise SourceError(path, f"cannot read ({exc.strerror or exc})") from None


def read_item_bytes(path: str, what: str) -> bytes:
    """The whole file, or a :class:`SourceError` naming it and what went wrong."""
    if os.path.isdir(path):
        raise SourceError(path, f"is a directory, not {what}")
    with os_errors_as_source_errors(path, what):
        with open(path, "rb") as handle:
            data = handle.read()
    return data


def list_files(path: str | None, extensions: frozenset[str] | set[str], kind: str) -> list[str]:
    """Sorted files with one of ``extensions`` under a folder (recursively), or the single file.

    ``kind`` names the source in the error raised when no path is given.
    """
    if path is None:
        raise SourceError(kind, "a file or folder is needed")
    p = Path(path)
    if p.is_file():
        return [str(p)]
    if not p.is_dir():
        raise SourceError(str(path), "no such file or folder")
    return sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in extensions and f.is_file())
