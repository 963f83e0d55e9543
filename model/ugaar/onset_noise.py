"""Onset errors as a training augmentation of the audio token sequences.

An audio item's tokens are cut at the onsets a detector finds
(``model.features.tokens.sequences``).  On a timbre the detector handles badly it
misses an onset or finds an extra one, and every token after that position
moves by one: the sequence encoder and the structure block, which read
positions, then compare syllable *i* with note *i* ± 1 (docs/benchmarks.md,
"Onsets are the timbre gap").  :func:`perturb_onsets` makes those errors
during training, so the model meets shifted sequences before a user's
recording brings them.
"""
from __future__ import annotations

import numpy as np
import torch

from .model import SequenceBatch


def perturb_onsets(batch: SequenceBatch, rate: float, seed: int) -> SequenceBatch:
    """A copy of ``batch`` where each item, with probability ``rate``, lost one token or gained a duplicate.

    A lost token is a missed onset: the tokens after it move one position
    forward.  A duplicated token is a false alarm: the tokens after it move
    one position back (the last one falls off a full sequence).  The
    position is uniform over the item's tokens; an item with one token only
    gains.  ``pooled`` is kept.

    Parameters
    ----------
    batch : SequenceBatch
        Tokens ``(N, T, D)`` and mask ``(N, T)`` (valid positions first).
    rate : float
        Probability that an item gets one error, in [0, 1].
    seed : int
        The draw (the trainer passes one per epoch, the same on every rank).

    Returns
    -------
    SequenceBatch
    """
    if rate <= 0:
        return batch
    n, t = batch.mask.shape
    rng = np.random.default_rng(seed)
    lengths = batch.mask.sum(1).cpu().numpy().astype(np.int64)
    hit = rng.random(n) < rate
    drop = (rng.random(n) < 0.5) & (lengths > 1)
    where = np.floor(rng.random(n) * np.maximum(lengths, 1)).astype(np.int64)
    positions = np.arange(t)[None, :].repeat(n, 0)
    index = positions.copy()
    new_lengths = lengths.copy()
    for i in np.flatnonzero(hit):
        j = where[i]
        if drop[i]:  # positions j.. read j+1..
            index[i, j:t - 1] = positions[i, j + 1:]
            new_lengths[i] = lengths[i] - 1
        else:  # positions j+1.. read j..
            index[i, j + 1:] = positions[i, j:t - 1]
            new_lengths[i] = min(lengths[i] + 1, t)
    idx = torch.from_numpy(index).to(batch.tokens.device)
    tokens = batch.tokens.gather(1, idx.unsqueeze(-1).expand(-1, -1, batch.tokens.shape[-1]))
    mask = torch.from_numpy(positions < new_lengths[:, None]).to(batch.mask.device, batch.mask.dtype)
    tokens = tokens * mask.unsqueeze(-1).to(tokens.dtype)  # padding stays zero
    return SequenceBatch(batch.pooled, tokens, mask)
