"""Locate and unpack the shared LMD-full lyrics–melody archive.

Tests and benchmarks read ``../shared/data/lmd-full-lyrics-melody.tar.xz``
when it exists and skip when it does not.  It is unpacked once into a cache
folder outside the project (``$UGAAR_CACHE`` or ``~/.cache/ugaar``), never into
the repository.
"""
from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

ARCHIVE_NAME = "lmd-full-lyrics-melody.tar.xz"
RELEASE_FOLDER = "lmd-full_MIDI_dataset"


def cache_root() -> Path:
    return Path(os.environ.get("UGAAR_CACHE", Path.home() / ".cache" / "ugaar"))


def find_lmd_archive(start: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the shared archive's path, or None when it is not on this machine.

    Looks in ``$UGAAR_LMD_ARCHIVE``, then ``shared/data`` beside every parent of
    ``start`` (default: this file).
    """
    env = os.environ.get("UGAAR_LMD_ARCHIVE")
    if env:
        return Path(env) if Path(env).is_file() else None
    here = Path(start or __file__).resolve()
    for parent in [here, *here.parents]:
        candidate = parent / "shared" / "data" / ARCHIVE_NAME
        if candidate.is_file():
            return candidate
    return None


def unpack_lmd_archive(archive: str | os.PathLike[str], dest: str | os.PathLike[str] | None = None) -> Path:
    """Unpack the archive once and return the folder holding ``Syllable_Parsing``.

    A marker file written last makes an interrupted unpack start again
    rather than leave a partial folder in use.
    """
    dest = Path(dest) if dest is not None else cache_root() / "lmd-full"
    release = dest / RELEASE_FOLDER
    marker = dest / ".unpacked"
    if marker.is_file() and (release / "Syllable_Parsing").is_dir():
        return release
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(archive, "r:xz") as tar:
        tar.extractall(dest, filter="data")
    marker.write_text(str(archive))
    return release
