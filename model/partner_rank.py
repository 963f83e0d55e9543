"""Where each sample's true partners rank, for error analysis (library column, map colour, ``ugaar map``).

The rank is the one the retrieval panel shows: the 1-based position of the
sample's own item among all N items of the target modality (ties count
against), over the run's whole index, not one split.
"""
from __future__ import annotations

import numpy as np

MODALITIES = ("audio", "sheet", "lyrics")
DIRECTIONS = tuple((s, t) for s in MODALITIES for t in MODALITIES if s != t)


def partner_rank_table(index) -> dict[tuple[str, str], np.ndarray]:
    """``{(source, target): (N,) ranks}`` for the six directions of a :class:`~model.retrieval.RetrievalIndex`."""
    return {(s, t): index.partner_ranks(s, t) for s, t in DIRECTIONS}


def median_partner_ranks(table: dict[tuple[str, str], np.ndarray]) -> np.ndarray:
    """Per sample, the median of its six directions' partner ranks (N,), float.

    One number per sample to sort and colour by: the median is not pulled by
    the lyrics directions alone, which stay near chance for every method
    (docs/results.md), the way a mean would be.
    """
    return np.median(np.stack([table[d] for d in DIRECTIONS], axis=1), axis=1)
