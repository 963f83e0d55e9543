"""The position-wise lyrics ↔ melody pair scorer: masks, a golden tensor, and learning a syllable-by-note pairing."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from model.search.lyrics_rerank import (PairScorer, PairScorerConfig, cannot_train, combined_scores,
                                        ranks_from_scores, score_matrix, structure_tokens, train_pair_scorer)

torch.set_num_threads(1)


class _Features:
    """What the scorer reads of a FeatureSet: splits, structure dims and per-position tokens."""

    has_sequences = True

    def __init__(self, tokens: dict, lengths: np.ndarray, splits: np.ndarray, dims: dict):
        self.tokens, self.lengths, self.splits = tokens, lengths, splits
        self.meta = {"structure_dims": dims}

    def input_of(self, modality, kind="paper"):
        assert kind == "aligned"
        return SimpleNamespace(tokens=self.tokens[modality], lengths=self.lengths)


def _paired(n=400, seed=0, positions=20):
    """Lyrics whose stressed syllables fall on long notes and whose word ends come before rests —
    the pairing issue 9 measured — plus content columns the scorer must ignore (it reads the last D)."""
    rng = np.random.default_rng(seed)
    stress = rng.integers(0, 2, (n, positions)).astype(np.float32)
    word_end = rng.integers(0, 2, (n, positions)).astype(np.float32)
    lyrics = np.concatenate([rng.normal(size=(n, positions, 5)), stress[..., None], word_end[..., None],
                             rng.normal(size=(n, positions, 1))], -1).astype(np.float32)
    long_note = stress + rng.normal(0, 0.3, stress.shape)
    rest = word_end * rng.uniform(0.5, 1.0, stress.shape) + rng.normal(0, 0.2, stress.shape)
    sheet = np.concatenate([rng.normal(size=(n, positions, 7)), long_note[..., None], rest[..., None]],
                           -1).astype(np.float32)
    lengths = rng.integers(positions - 4, positions + 1, n)
    mask = np.arange(positions)[None, :] < lengths[:, None]
    lyrics *= mask[..., None]
    sheet *= mask[..., None]
    splits = np.array(["train"] * int(0.7 * n) + ["val"] * int(0.15 * n) + ["test"] * (n - int(0.7 * n) - int(0.15 * n)))
    return _Features({"lyrics": lyrics, "sheet": sheet, "audio": sheet[..., -4:]}, lengths, splits,
                     {"lyrics": 3, "sheet": 2, "audio": 2})


def test_structure_tokens_take_the_last_columns_and_mask_the_padding():
    fs = _paired(n=20)
    x, mask = structure_tokens(fs, "sheet", 20)
    assert x.shape == (20, 20, 2) and mask.shape == (20, 20)
    assert np.array_equal(x, fs.tokens["sheet"][:, :, -2:])
    assert np.array_equal(mask.sum(1), fs.lengths)
    short, m8 = structure_tokens(fs, "lyrics", 8)
    assert short.shape == (20, 8, 3) and m8.sum() == np.minimum(fs.lengths, 8).sum()


def test_padding_never_changes_a_score():
    torch.manual_seed(0)
    scorer = PairScorer(3, 2, PairScorerConfig(positions=6, hidden=8))
    lyr = torch.randn(2, 6, 3)
    mus = torch.randn(4, 6, 2)
    lm = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.float32)
    mm = torch.tensor([[1] * 6, [1] * 5 + [0], [1] * 4 + [0, 0], [1] * 6], dtype=torch.float32)
    base = scorer(lyr, lm, mus, mm)
    lyr2, mus2 = lyr.clone(), mus.clone()
    lyr2[0, 4:] = 99.0  # beyond line 0's length
    mus2[1, 5:] = -99.0  # beyond melody 1's length
    mus2[2, 4:] = 7.0
    assert torch.allclose(base, scorer(lyr2, lm, mus2, mm))
    assert base.shape == (2, 4)


def test_golden_scores():
    """A regression guard: the architecture and its initialisation give these numbers."""
    torch.manual_seed(0)
    scorer = PairScorer(3, 2, PairScorerConfig(positions=4, hidden=8))
    g = torch.Generator().manual_seed(1)
    lyr, mus = torch.randn(2, 4, 3, generator=g), torch.randn(3, 4, 2, generator=g)
    ones_l, ones_m = torch.ones(2, 4), torch.ones(3, 4)
    got = scorer(lyr, ones_l, mus, ones_m).detach().numpy()
    assert got.shape == (2, 3)
    assert np.allclose(got, GOLDEN, atol=1e-5), got.tolist()


GOLDEN = np.array([[-0.97306776, -0.94721591, -0.94644582], [-1.01580191, -1.10457206, -1.10599792]])


def test_training_learns_the_syllable_by_note_pairing():
    fs = _paired(n=400, seed=1)
    trained = train_pair_scorer(fs, PairScorerConfig(modality="sheet", epochs=6, batch=64, hidden=32, seed=0))
    assert len(trained.history) == 6 and 0 <= trained.best_epoch < 6
    best = min(h["val_medr_n"] for h in trained.history)
    assert trained.history[trained.best_epoch]["val_medr_n"] == best
    assert best < 0.15  # chance is 0.5
    test = np.nonzero(fs.splits == "test")[0]
    lx, lm = structure_tokens(fs, "lyrics", 20)
    mx, mm = structure_tokens(fs, "sheet", 20)
    s = score_matrix(trained.scorer, lx[test], lm[test], mx[test], mm[test], chunk=7)
    ranks = ranks_from_scores(s, lower_is_better=False)
    assert np.median(ranks) / len(test) < 0.2
    # the same seed trains the same scorer
    again = train_pair_scorer(fs, PairScorerConfig(modality="sheet", epochs=6, batch=64, hidden=32, seed=0))
    assert np.allclose(score_matrix(again.scorer, lx[test], lm[test], mx[test], mm[test]), s, atol=1e-5)


def test_combination_and_ranks():
    d = np.array([[0.1, 0.5, 0.9], [0.2, 0.3, 0.1], [0.5, 0.4, 0.3]])
    assert ranks_from_scores(d).tolist() == [1, 3, 1]  # ties and nearer ones count against the partner
    pair = np.array([[1.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 1.0]])
    assert ranks_from_scores(pair, lower_is_better=False).tolist() == [1, 1, 1]
    assert np.array_equal(ranks_from_scores(combined_scores(d, pair, 0.0)), ranks_from_scores(d))
    assert ranks_from_scores(combined_scores(d, pair, 1e6)).tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="sheet' or 'audio'"):
        PairScorerConfig(modality="lyrics")


def test_what_cannot_train_a_scorer_is_said_in_words():
    fs = _paired(n=40)
    assert cannot_train(fs) is None
    assert "no per-position tokens" in cannot_train(None)
    fs.splits = np.array(["train"] * 39 + ["val"])
    assert cannot_train(fs).endswith("this dataset has 39 and 1")
    with pytest.raises(ValueError, match="at least two training and two validation"):
        train_pair_scorer(fs, PairScorerConfig(epochs=1))
