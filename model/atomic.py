"""Atomic file writes: a crash or kill never leaves a half-written file.

Every cache, manifest and checkpoint in the project is written through these
helpers: write to a temporary file in the same folder, flush and fsync, then
``os.replace`` (atomic on POSIX and Windows).
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _read_umask() -> int:
    # os.umask can only be read by setting it; done once at import, before
    # any worker threads exist.
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    Use this for writers that want a file name (numpy, soundfile, torch.save,
    LilyPond output).  ``suffix`` keeps an extension some writers insist on.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}",
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; give the result the mode a plain open()
        # would (0666 less the umask) so other users and tools can read it.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 1) -> None:
    write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, sort_keys=False))
