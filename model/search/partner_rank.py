"""Where each sample's true partners rank, for error analysis (library column, map colour, ``ugaar map``).

The rank is the one the retrieval panel shows: the 1-based position of the
sample's own item among all N items of the target modality (ties count
against), over the run's whole index, not one split.

Above :data:`model.search.retrieval.EXACT_RANKS_MAX_ITEMS` items the ranks come
from the retrieval index's top K (:data:`model.search.retrieval.PARTNER_TOP_K`):
a partner beyond it is stored as K + 1, the table's *cap*, and shown as
"> K" (:func:`format_rank`).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from model.progress import CancelToken, ProgressCallback

MODALITIES = ("audio", "sheet", "lyrics")
DIRECTIONS = tuple((s, t) for s in MODALITIES for t in MODALITIES if s != t)


def partner_rank_table(index, progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
                       exact_max_items: Optional[int] = None) -> dict[tuple[str, str], np.ndarray]:
    """``{(source, target): (N,) ranks}`` for the six directions of a :class:`~model.search.retrieval.RetrievalIndex`.

    ``exact_max_items`` overrides the index's threshold for exact ranks;
    :func:`rank_cap` says whether ranks beyond the top K were capped.
    """
    return {(s, t): index.partner_ranks(s, t, exact_max_items=exact_max_items, progress=progress, cancel=cancel)
            for s, t in DIRECTIONS}


def rank_cap(index, exact_max_items: Optional[int] = None) -> Optional[int]:
    """K + 1 when :func:`partner_rank_table` ranks ``index`` from its top K (the value of "> K"), else None."""
    return index.partner_rank_cap(exact_max_items)


def format_rank(rank: Optional[float], cap: Optional[int] = None) -> str:
    """A rank as the library shows it: ``"3"``, ``"2.5"``, ``"> 100"`` at or above the cap, ``""`` for none.

    A median at the cap means at least four of the six directions lie
    beyond the top K.  A median between K and the cap (one middle value
    capped) is kept as a number: a lower bound of the true median.
    """
    if rank is None or not np.isfinite(rank):
        return ""
    if cap is not None and rank >= cap:
        return f"> {cap - 1}"
    return str(int(rank)) if rank == int(rank) else f"{rank:.1f}"


def median_partner_ranks(table: dict[tuple[str, str], np.ndarray]) -> np.ndarray:
    """Per sample, the median of its six directions' partner ranks (N,), float.

    One number per sample to sort and colour by: the median is not pulled by
    the lyrics directions alone, which stay near chance for every method
    (docs/results.md), the way a mean would be.
    """
    return np.median(np.stack([table[d] for d in DIRECTIONS], axis=1), axis=1)
