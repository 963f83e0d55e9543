"""The music21 corpus shipped inside the ``music21`` package: the embedded default.

No download: the works are files inside the installed package.  Which works
have text lyrics is found by scanning the files' text for lyric markup
(MusicXML ``<lyric>`` with a letter in its ``<text>``, kern ``**text`` /
``**lyrics`` spines, ABC ``w:`` lines) — a few seconds, no parsing — and the
list is cached in ``$UGAAR_CACHE`` (``~/.cache/ugaar``) per music21 version,
so ``list_items(None)`` is instant after the first call.  A work whose only
lyric fields turn out to be figures is still rejected by ``read_song``.

Items are corpus paths relative to the corpus root (``bach/bwv1.6.mxl``);
the song id is ``"m21:" + item``.
"""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from model.atomic import write_json
from model.data.song import Song
from model.sources import SourceError
from model.sources.lmd_archive import cache_root
from model.sources.score_file import is_figure, parse_score, song_from_score

SOURCE = "music21-corpus"
# Roman-numeral analyses (.rntxt) carry no sung text.
SCANNED_EXTENSIONS = (".mxl", ".xml", ".musicxml", ".krn", ".abc")
# A work needs this many lyric words with letters to count as texted.
MIN_TEXT_LYRICS = 8

_XML_LYRIC_TEXT = re.compile(rb"<lyric\b[^>]*>.*?<text[^>]*>([^<]*)</text>", re.S)
_ABC_WORDS = re.compile(rb"^w:(.*)$", re.M)


def corpus_root() -> Path:
    from music21 import common

    return Path(common.getCorpusFilePath())


def _read_bytes(path: Path) -> bytes:
    if path.suffix == ".mxl":
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist()
                     if n.endswith((".xml", ".musicxml")) and not n.startswith("META-INF")]
            return b"".join(archive.read(n) for n in names)
    return path.read_bytes()


def has_text_lyrics(path: Path) -> bool:
    """Whether a corpus file's text shows enough sung (non-figure) lyrics."""
    try:
        data = _read_bytes(path)
    except (OSError, zipfile.BadZipFile):
        return False
    suffix = path.suffix.lower()
    if suffix in (".mxl", ".xml", ".musicxml"):
        texts = [t.decode("utf-8", "replace") for t in _XML_LYRIC_TEXT.findall(data)]
        return sum(1 for t in texts if not is_figure(t)) >= MIN_TEXT_LYRICS
    if suffix == ".krn":
        # music21 attaches **text / **lyrics spines; it ignores **silbe (the
        # three Bach .krn chorales use it), so those are not candidates.
        return b"**text" in data or b"**lyrics" in data
    if suffix == ".abc":
        words = b" ".join(_ABC_WORDS.findall(data)).decode("utf-8", "replace").split()
        return sum(1 for w in words if not is_figure(w)) >= MIN_TEXT_LYRICS
    return False


def _cache_file() -> Path:
    import music21

    return cache_root() / f"music21-corpus-lyrics-{music21.__version__}.json"


def discover(use_cache: bool = True) -> list[str]:
    """Corpus paths (relative to the corpus root) of works with text lyrics."""
    cache = _cache_file()
    if use_cache and cache.is_file():
        try:
            return list(json.loads(cache.read_text())["items"])
        except (ValueError, KeyError, TypeError):
            pass  # a damaged cache is rebuilt below
    root = corpus_root()
    items = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.suffix.lower() in SCANNED_EXTENSIONS and p.is_file() and has_text_lyrics(p)
    )
    write_json(cache, {"root": str(root), "items": items})
    return items


def list_items(path: str | None) -> list[str]:
    """Corpus works with text lyrics; ``path`` (optional) keeps those under a
    corpus folder or matching a corpus path prefix, e.g. ``"bach"``."""
    items = discover()
    if path:
        prefix = str(path).strip("/")
        items = [i for i in items if i == prefix or i.startswith(prefix.rstrip("/") + "/")
                 or i.startswith(prefix)]
        if not items:
            raise SourceError(str(path), "no corpus works with lyrics match this path")
    return items


def read_song(item: str) -> Song:
    """Parse one corpus work and return its texted part's first verse.

    Raises
    ------
    SourceError
        The work is not in the corpus, cannot be parsed, or has no text lyrics.
    """
    item = str(item)
    path = corpus_root() / item
    if not path.is_file():
        raise SourceError(item, "not a file in the music21 corpus")
    try:
        # music21's own parse cache makes a second read of a work fast.
        score = parse_score(str(path), force_source=False)
    except SourceError as exc:
        raise SourceError(item, exc.reason) from None
    return song_from_score(score, item, f"m21:{item}", "", SOURCE)
