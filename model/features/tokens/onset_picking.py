"""Choosing a dataset's flux onset picking on its own notes (``FeatureConfig.onset_picking = "auto"``).

The audio tokens are cut at detected onsets, and the lyrics scorer pairs
syllable *i* with token *i*: one missed or extra onset shifts every later token
against its syllable.  How often a picking gives an item exactly its notes'
onsets depends on the music: LMD-full's quick pop melodies need a low threshold
over a narrow window (93 % of its validation items against 74 % with the first
default), the music21 corpus's slow chorales are better served by the first
default (99.2 % against 97.2 %), whose higher threshold fires on fewer of their
swells.  A built dataset knows every item's notes, so the extraction counts, for
each candidate picking, the training and validation items whose onset count is
their notes', and keeps the best (docs/features.md, "Onset picking").  The test
split is never read.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from ..config import ONSET_PICKING_CANDIDATES, FeatureConfig

#: Items counted at most (spread evenly over the training and validation splits): enough to separate the
#: candidates by a few tenths of a percent, and a few seconds of peak picking on the cached front end.
MAX_ITEMS = 2000


def note_onset_count(notes: Sequence[Any]) -> int:
    """Distinct onsets of an item's notes (two notes struck together are one onset)."""
    return len({round(float(n.onset), 4) for n in notes})


def exact_count_shares(rows_and_counts: Sequence[tuple[np.ndarray, int]], config: FeatureConfig,
                       candidates: Sequence[tuple[float, int]] = ONSET_PICKING_CANDIDATES) -> dict[str, float]:
    """Share of items whose detected onsets (at most ``config.sequence_max_len``) are exactly as many as their
    notes', per candidate picking, keyed ``"<threshold>/<rows>"``."""
    from .sequences import detect_onsets

    shares = {}
    for delta, window in candidates:
        picking = dataclasses.replace(config, onset_delta=float(delta), onset_window=int(window),
                                      onset_picking="fixed")
        cap = picking.sequence_max_len
        exact = sum(min(len(detect_onsets(rows, picking)), cap) == min(count, cap)
                    for rows, count in rows_and_counts)
        shares[f"{delta:g}/{window}"] = exact / max(len(rows_and_counts), 1)
    return shares


def choose_onset_picking(samples: Sequence[Any], audio_inputs: Any, config: FeatureConfig,
                         candidates: Sequence[tuple[float, int]] = ONSET_PICKING_CANDIDATES
                         ) -> tuple[FeatureConfig, dict[str, Any]]:
    """``config`` with the candidate picking that gives the most training and validation items exactly their
    notes' onsets (the first candidate on ties, and when no item can be counted), still ``auto``: its digest,
    and so the features' cache key, does not depend on the pair chosen.

    Parameters
    ----------
    samples : the dataset's samples, in the order of ``audio_inputs``
    audio_inputs : the cached front end (``Ragged`` of time-pooled log-mel patches)
    config : FeatureConfig with ``onset_picking == "auto"`` and a flux method

    Returns
    -------
    config : FeatureConfig
        With the chosen ``onset_delta`` and ``onset_window``.
    record : dict
        What was counted: ``items``, ``exact_share`` per candidate, ``chosen``.
    """
    from .sequences import audio_rows

    wanted = [i for i, s in enumerate(samples) if getattr(s, "split", "") in ("train", "val") and len(s.notes)]
    if len(wanted) > MAX_ITEMS:
        wanted = [wanted[int(k)] for k in np.linspace(0, len(wanted) - 1, MAX_ITEMS)]
    rows_and_counts = [(audio_rows(audio_inputs.data[audio_inputs.offsets[i]:audio_inputs.offsets[i + 1]]),
                        note_onset_count(samples[i].notes)) for i in wanted]
    shares = exact_count_shares(rows_and_counts, config, candidates) if rows_and_counts else {}
    keys = [f"{d:g}/{w}" for d, w in candidates]
    best = max(range(len(candidates)), key=lambda k: (shares.get(keys[k], 0.0), -k))
    delta, window = candidates[best]
    chosen = dataclasses.replace(config, onset_delta=float(delta), onset_window=int(window))
    return chosen, {"items": len(rows_and_counts), "exact_share": shares, "chosen": keys[best]}
