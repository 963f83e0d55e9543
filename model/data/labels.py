"""Readable names for samples: the title, or the first words of the lyrics.

Songs of the LMD-full release carry no title; the importer names them by the
file's MD5 hash (``song_id == title == "0a1b…"``), which tells a reader
nothing.  Wherever a sample is shown (library, retrieval results, map
tooltips, ``ugaar map``), :func:`sample_label` names it by its title when it
has a real one, else by the first words of its lyrics.  The ids keep a
column of their own.
"""
from __future__ import annotations

import re
from typing import Any

#: A bare hexadecimal digest (MD5 = 32, SHA-1 = 40 characters) is an id, not a title.
_HASH_RE = re.compile(r"^[0-9a-fA-F]{16,64}$")

LABEL_WORDS = 6


def is_placeholder_title(title: str, song_id: str = "") -> bool:
    """True when ``title`` names nothing a reader would recognise (empty, the id, a hash)."""
    t = (title or "").strip()
    if not t or t == song_id:
        return True
    return bool(_HASH_RE.match(t))


def lyrics_label(words: list[str], n_words: int = LABEL_WORDS) -> str:
    """The first ``n_words`` words, with an ellipsis when there are more."""
    words = [w for w in words if w]
    if not words:
        return ""
    return " ".join(words[:n_words]) + (" …" if len(words) > n_words else "")


def sample_label(sample: Any, n_words: int = LABEL_WORDS) -> str:
    """The name to show for ``sample`` (a :class:`model.data.song.Sample`).

    Its title when it has a real one, otherwise the first ``n_words`` words
    of its lyrics, and the song id as a last resort.
    """
    title = getattr(sample, "title", "") or ""
    song_id = getattr(sample, "song_id", "") or ""
    if not is_placeholder_title(title, song_id):
        return title
    words = list(getattr(sample, "words", []) or [])
    text = lyrics_label(words, n_words)
    return text or song_id or str(getattr(sample, "sample_id", ""))
