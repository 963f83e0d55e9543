"""Atomic file writes: a crash or kill never leaves a half-written file.

Every cache, manifest and checkpoint in the project is written through these
helpers: write to a temporary file in the same folder, flush and fsync, then
``os.replace`` (atomic on POSIX and Windows).

A write that fails because of the machine (disk full, read-only folder,
permission denied) raises :class:`model.errors.WriteError` naming the file
being written, never the temporary one, and leaves the previous version of
the file in place.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from model.errors import WriteError

# What each OS error means for a write, in a user's words, and what to do.
_WRITE_PROBLEMS = {
    errno.ENOSPC: ("disk full", "free some disk space"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or ask for a larger quota"),
    errno.EROFS: ("read-only file system", "write to another folder"),
    errno.EACCES: ("permission denied", "make the folder writable, or write to another folder"),
    errno.EPERM: ("permission denied", "make the folder writable, or write to another folder"),
}


def _read_umask() -> int:
    # os.umask can only be read by setting it; done once at import, before
    # any worker threads exist.
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def write_error(path: str | os.PathLike[str], exc: OSError,
                then: str = "run the command again; files already written are kept") -> WriteError:
    """The :class:`WriteError` for ``exc`` raised while writing ``path``.

    Parameters
    ----------
    path : str or PathLike
        The file being written (what the message names).
    exc : OSError
        The failure.
    then : str
        What to do once the cause is fixed (a command to re-run, a run to resume).
    """
    detail = exc.strerror or type(exc).__name__
    what, action = _WRITE_PROBLEMS.get(exc.errno or 0, (None, "check the disk and the folder"))
    problem = f"cannot be written: {what} ({detail})" if what else f"cannot be written ({detail})"
    return WriteError(str(path), problem, f"{action}, then {then}", errno=exc.errno)


def _failed_writing(exc: OSError, tmp: Path) -> bool:
    """Whether an error raised by a writer is about the file it writes.

    A writer's ``write()`` on a full disk raises without a file name; one
    that opens the temporary file names it.  An error naming another file
    (an input the writer reads) is not a write failure and passes unchanged.
    """
    if isinstance(exc, WriteError):
        return False
    return exc.filename is None or Path(exc.filename) == tmp


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    Use this for writers that want a file name (numpy, soundfile, torch.save,
    LilyPond output).  ``suffix`` keeps an extension some writers insist on.

    Raises
    ------
    WriteError
        The folder cannot be created or written, or the disk is full; the
        previous ``path``, if any, is untouched.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}",
                                        dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise write_error(target, exc) from exc
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
        except OSError as exc:
            if _failed_writing(exc, tmp):
                raise write_error(target, exc) from exc
            raise
        try:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            # mkstemp creates 0600 files; give the result the mode a plain open()
            # would (0666 less the umask) so other users and tools can read it.
            os.chmod(tmp, 0o666 & ~_UMASK)
            os.replace(tmp, target)
        except OSError as exc:
            raise write_error(target, exc) from exc
    finally:
        with contextlib.suppress(OSError):  # on a read-only folder the leftover cannot go either
            if tmp.exists():
                tmp.unlink()


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 1) -> None:
    write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, sort_keys=False))


def write_torch(path: str | os.PathLike[str], state: Any) -> None:
    """``torch.save(state)`` to ``path`` atomically (checkpoints, encoder weights, resume states).

    Written through a Python file object: on a full disk ``torch.save(path)``
    raises an opaque ``RuntimeError`` ("unexpected pos"), a file object an
    ``OSError(ENOSPC)``, which :func:`atomic_path` turns into a ``WriteError``
    naming ``path``.
    """
    import torch
    with atomic_path(path, suffix=".pt") as tmp, open(tmp, "wb") as handle:
        torch.save(state, handle)


def link_or_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> str:
    """Put ``src``'s content at ``dst`` atomically: a hard link, else a copy.

    A hard link costs no space and no time; where one cannot be made (another
    file system, a file system without links) the file is copied through
    :func:`atomic_path`.  Either way ``dst`` appears whole or not at all.

    Returns
    -------
    str
        ``"linked"`` or ``"copied"``.

    Raises
    ------
    WriteError
        ``dst`` cannot be written (disk full, read-only folder, permission).
    FileNotFoundError
        ``src`` does not exist.
    """
    import shutil

    source, target = Path(src), Path(dst)
    if not source.is_file():
        raise FileNotFoundError(errno.ENOENT, "no such file", str(source))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(target, exc) from exc
    # A name like atomic_path's temporaries (".<name>.*.tmp"), so the cleanup
    # of an interrupted run's leftovers finds it too.
    tmp = target.parent / f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        os.link(source, tmp)
        os.replace(tmp, target)
        return "linked"
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP,
                             errno.EOPNOTSUPP):
            raise write_error(target, exc) from exc
    with atomic_path(target) as tmp_copy:
        shutil.copyfile(source, tmp_copy)
    return "copied"
