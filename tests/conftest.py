"""Shared fixtures. Qt tests run offscreen; the LMD archive is optional."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

from model.sources.lmd_archive import find_lmd_archive, unpack_lmd_archive


@pytest.fixture(scope="session")
def lmd_release():
    """Folder with ``Syllable_Parsing/`` and ``Word_Parsing/``; skips when absent."""
    archive = find_lmd_archive()
    if archive is None:
        pytest.skip("shared LMD-full archive not present (../shared/data)")
    return unpack_lmd_archive(archive)
