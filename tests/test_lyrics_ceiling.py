"""benchmarks/lyrics_ceiling.py's measures, and the scorer's training loop over token arrays."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from model.data.song import Note
from model.search.lyrics_rerank import (PairScorer, PairScorerConfig, fit_pair_scorer, score_matrix,
                                        standardise_rows, train_pair_scorer, training_rows)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from lyrics_ceiling import best_offset, offset_scores, rests_inside_words  # noqa: E402
from test_lyrics_rerank import _paired  # noqa: E402

torch.set_num_threads(1)


def _note(syllable: str, word_start: bool, rest: float | None) -> Note:
    return Note(pitch=60, onset=0.0, duration=0.5, syllable=syllable, word_start=word_start, beats=0.5,
                rest_beats=rest)


def test_a_rest_counts_only_inside_a_word_and_never_before_the_first_note():
    notes = [_note("lone", True, 2.0),  # the window's first note: what came before is not this window's
             _note("ly", False, 1.0),  # inside "lonely", after a rest
             _note("there's", True, 1.0),  # a rest before a new word: as sung
             _note("si", True, 0.0), _note("lence", False, 0.0),  # no rest
             _note("ba", True, None), _note("by", False, 0.5)]  # no rest known, then one inside "baby"
    assert rests_inside_words(notes) == 2
    assert rests_inside_words(notes[:1]) == 0 and rests_inside_words([]) == 0


def _scorer(repetition: bool) -> PairScorer:
    torch.manual_seed(0)
    return PairScorer(3, 2, PairScorerConfig(positions=6, hidden=8, context=2, repetition=repetition))


def _tokens(n: int, dim: int, repetition: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = (np.arange(6)[None, :] < rng.integers(4, 7, n)[:, None]).astype(np.float32)
    x = rng.normal(size=(n, 6, dim)).astype(np.float32) * mask[..., None]
    if repetition:
        x = np.concatenate([x, (rng.random((n, 6, 6)) < 0.2).astype(np.float32)], -1)
    return x, mask


def test_offset_zero_is_the_scorers_own_matrix_and_a_shift_pairs_the_next_position():
    for repetition in (False, True):
        scorer = _scorer(repetition)
        lyrics, music = _tokens(5, 3, repetition, 1), _tokens(4, 2, repetition, 2)
        got = offset_scores(scorer, lyrics, music, chunk=2)
        assert set(got) == {-1, 0, 1}
        assert np.allclose(got[0], score_matrix(scorer, *lyrics, *music), atol=1e-5)
        # offset +1 pairs syllable i with note i + 1.  Position by position (no phrase context to see
        # the neighbours), that is the unshifted pairing of the melody's positions one to the left.
        plain = PairScorer(3, 2, PairScorerConfig(positions=6, hidden=8, repetition=repetition))
        by_offset = offset_scores(plain, lyrics, music)
        mh, _ = plain.encode("music", torch.as_tensor(music[0]), torch.as_tensor(music[1]))
        lh, lrep = plain.encode("lyrics", torch.as_tensor(lyrics[0]), torch.as_tensor(lyrics[1]))
        left = torch.zeros_like(mh)
        left[:, :-1] = mh[:, 1:]
        valid = np.ones_like(music[1])
        valid[:, -1] = 0.0  # the last syllable's partner would be past the window
        with torch.no_grad():
            want = (plain.mix(lh[:, None] + left[None]).squeeze(-1) * torch.as_tensor(lyrics[1])[:, None, :]
                    * torch.as_tensor(valid)[None]).sum(-1)
            if repetition:
                want = want + plain._repeats(lrep, torch.as_tensor(music[0][..., -6:]))
        assert np.allclose(by_offset[1], want.numpy(), atol=1e-5)
        assert not np.allclose(by_offset[1], by_offset[0])


def test_a_shift_wins_only_by_more_than_its_penalty():
    scores = {-1: np.array([[0.0, 5.0]]), 0: np.array([[1.0, 1.0]]), 1: np.array([[3.0, 0.0]])}
    assert np.array_equal(best_offset(scores, 1.0), [[2.0, 4.0]])
    assert np.array_equal(best_offset(scores, 10.0), scores[0])


def test_standardised_rows_sum_seeds_on_one_scale():
    a = np.array([[1.0, 2.0, 3.0], [10.0, 10.0, 10.0]])
    z = standardise_rows(a)
    assert np.allclose(z[0], [-1.2247449, 0.0, 1.2247449]) and np.array_equal(z[1], [0.0, 0.0, 0.0])
    assert np.allclose(standardise_rows(100.0 * a + 7.0), z)


def test_the_training_loop_over_arrays_is_train_pair_scorer_and_takes_further_rows():
    fs = _paired(n=240, seed=3)
    fs.song_ids = np.repeat(np.arange(120), 2).astype(str)  # two windows a song: shifted windows run on
    cfg = PairScorerConfig(modality="sheet", epochs=2, batch=32, hidden=16, seed=0, shifts=(5,))
    whole = train_pair_scorer(fs, cfg)
    splits = np.asarray(fs.splits)
    train, val = np.nonzero(splits == "train")[0], np.nonzero(splits == "val")[0]
    torch.manual_seed(cfg.seed)
    lyrics = training_rows(fs, "lyrics", cfg, train)
    music = training_rows(fs, "sheet", cfg, train)
    rows = np.concatenate([train, np.arange(len(splits), len(lyrics[0]))])
    by_hand = fit_pair_scorer(lyrics, music, rows, val, cfg)
    assert by_hand.history == whole.history and by_hand.train_pairs == whole.train_pairs > len(train)
    # further rows (a benchmark's extra windows) are trained on, and validation stays the FeatureSet's
    torch.manual_seed(cfg.seed)
    more = fit_pair_scorer(tuple(np.concatenate([a, a[train]]) for a in lyrics),
                           tuple(np.concatenate([a, a[train]]) for a in music),
                           np.concatenate([rows, np.arange(len(lyrics[0]), len(lyrics[0]) + len(train))]), val, cfg)
    assert more.train_pairs == whole.train_pairs + len(train)
    assert more.history != whole.history
