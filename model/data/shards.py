"""Which songs a shard of a dataset build takes, and what it records for the merge.

``ugaar dataset build … --shard K/N`` builds shard ``K`` of ``N`` (``0 ≤ K < N``,
so a SLURM array index works as it is).  Every machine lists the whole source,
applies ``--limit``, and keeps the items whose *shard key* hashes to ``K``: no
machine needs to talk to another, and the slice does not depend on list order.

The shard key is an item's file name without its extension: the part of every
source's song id that is known before the file is read (``lmd-npy``: the id
itself; MIDI and MusicXML: stem + content digest; music21: ``m21:`` + corpus
path).  Two items that could be read as the same song id therefore land in the
same shard, and a machine's mount point does not change the key.

Duplicate songs (same notes or same lyrics, ``model.data.cleaning``) are only known
after parsing, so a shard merges the duplicates it holds and records every
parsed song's fingerprints in its manifest (``manifest["shard"]``).
``model.data.merge`` groups the fingerprints of all shards again and drops
a song a shard kept when it duplicates a song of another shard.
"""
from __future__ import annotations

import hashlib
from pathlib import PurePath
from typing import Any, Sequence

from model.errors import UgaarError

SHARD_RECORD = "shard"  # key of the shard record in a shard's manifest


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` → ``(K, N)``.

    Raises
    ------
    UgaarError
        Not two integers with ``0 ≤ K < N``.
    """
    parts = str(text).strip().split("/")
    try:
        index, count = (int(p) for p in parts)
    except ValueError:
        raise UgaarError("--shard", f"expected K/N (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise UgaarError("--shard", f"expected K/N with 0 ≤ K < N, got {text!r}",
                         "shards are numbered from 0, like a SLURM array index")
    return index, count


def format_shard(shard: Sequence[int]) -> str:
    return f"{int(shard[0])}/{int(shard[1])}"


def shard_key(item: str) -> str:
    """The stable identifier an item is sharded by: its file name without extension."""
    return PurePath(str(item)).stem


def shard_of(item: str, count: int) -> int:
    """The shard (``0 … count-1``) that builds ``item``.

    SHA-256 of the shard key, not Python's ``hash()``: that one is salted per
    process, so two machines would disagree.
    """
    digest = hashlib.sha256(shard_key(item).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % int(count)


def shard_items(items: Sequence[str], shard: Sequence[int]) -> list[tuple[int, str]]:
    """``(index in items, item)`` of the items shard ``(K, N)`` builds, in list order."""
    index, count = int(shard[0]), int(shard[1])
    return [(i, item) for i, item in enumerate(items) if shard_of(item, count) == index]


def items_digest(items: Sequence[str]) -> str:
    """SHA-256 of the items' shard keys in list order.

    Shards whose digests differ listed different sources (another folder,
    files added between the runs, another ``--limit``) and cannot be merged.
    """
    h = hashlib.sha256()
    for item in items:
        h.update(shard_key(item).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def shard_record(shard: Sequence[int], items: Sequence[str], parsed: Sequence[dict[str, Any]],
                 windows: dict[str, dict[str, Any]],
                 failures: Sequence[dict[str, str]]) -> dict[str, Any]:
    """What a merge needs beyond a shard's manifest, as plain JSON data.

    Parameters
    ----------
    shard : (K, N)
        This shard.
    items : sequence of str
        The whole source's items (after ``--limit``), not only this shard's.
    parsed : sequence of dict
        This shard's parse records in item order: ``{"index", "item", "error"}``
        or ``{"index", "item", "song_id", "path", "fingerprints"}``, with
        ``index`` the item's position in ``items``.
    windows : dict
        Per song this shard kept: ``{"windows", "dropped_silence", "too_short"}``.
    failures : sequence of dict
        Render failures: ``{"sample_id", "song_id", "reason"}``.
    """
    return {
        "index": int(shard[0]),
        "count": int(shard[1]),
        "items_total": len(items),
        "items_digest": items_digest(items),
        "parsed": [dict(r) for r in parsed],
        "windows": windows,
        "render_failures": [dict(f) for f in failures],
    }
