"""Onset noise (RunConfig.audio_onset_noise): a missed onset drops a token, a false alarm duplicates one."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model.events import StepEvent
from model.ugaar import RunConfig, train
from model.ugaar.model import SequenceBatch
from model.ugaar.onset_noise import perturb_onsets
from model.ugaar.synthetic import synthetic_stress_features


def _batch(lengths: list[int], t: int = 6) -> SequenceBatch:
    n = len(lengths)
    mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
    tokens = (torch.arange(n * t, dtype=torch.float32).reshape(n, t, 1) + 1).repeat(1, 1, 3) * mask[..., None]
    return SequenceBatch(torch.zeros(n, 4), tokens, mask)


def _valid(batch: SequenceBatch, i: int) -> list[float]:
    return batch.tokens[i, batch.mask[i], 0].tolist()


def test_each_hit_item_loses_one_token_or_gains_a_duplicate():
    batch = _batch([4, 6, 1, 3, 5, 2] * 20)
    out = perturb_onsets(batch, 1.0, seed=0)
    dropped = duplicated = 0
    for i in range(len(batch)):
        before, after = _valid(batch, i), _valid(out, i)
        if len(after) == len(before) - 1:  # a missed onset: the order kept, one token gone
            assert any(before[:j] + before[j + 1:] == after for j in range(len(before)))
            dropped += 1
        else:  # a false alarm: one token twice, a full sequence loses its last
            grown = [before[:j + 1] + before[j:] for j in range(len(before))]
            assert any(g[:batch.mask.shape[1]] == after for g in grown), (before, after)
            duplicated += 1
        assert np.all(out.tokens[i, ~out.mask[i]].numpy() == 0)  # padding stays zero
    assert dropped > 20 and duplicated > 20
    assert torch.equal(out.pooled, batch.pooled)
    assert min(int(m.sum()) for m in out.mask) >= 1  # a one-token item only gains


def test_the_draw_is_seeded_and_zero_rate_is_the_identity():
    batch = _batch([5] * 50)
    a, b, c = (perturb_onsets(batch, 0.5, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.mask, b.mask)
    assert not torch.equal(a.tokens, c.tokens)
    changed = sum(_valid(a, i) != _valid(batch, i) for i in range(50))
    assert 10 <= changed <= 40  # about half of the items
    assert perturb_onsets(batch, 0.0, seed=1) is batch


def test_the_trainer_applies_it_per_epoch_and_the_config_checks_it(tmp_path):
    with pytest.raises(ValueError, match="audio_onset_noise"):
        RunConfig.for_method("ugaar", inputs="aligned", audio_onset_noise=1.5)
    fs = synthetic_stress_features(120, seed=0)
    losses = {}
    for noise in (0.0, 0.5):
        cfg = RunConfig.for_method("baseline", inputs="aligned", epochs=2, batch_size=32, seed=0, dropout=0.0,
                                   audio_onset_noise=noise, seq_width=16, seq_layers=1, seq_heads=2,
                                   g_hidden=(32,), embed_dim=16)
        run = train(cfg, fs, tmp_path / f"noise{noise}")
        assert run.status == "finished"
        losses[noise] = [e.d_losses["triplet"] for e in run.events() if isinstance(e, StepEvent)]
    assert losses[0.0] != losses[0.5]  # the audio the model saw differed
