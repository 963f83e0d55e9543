"""The position-wise lyrics ↔ melody pair scorer: masks, a golden tensor, and learning a syllable-by-note pairing."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from model.features.tokens.prosody import N_PROSODY
from model.search.lyrics_rerank import (PairScorer, PairScorerConfig, cannot_train, combined_scores,
                                        ranks_from_scores, score_matrix, self_similarity, structure_tokens,
                                        train_pair_scorer, query_tokens)

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


@pytest.mark.parametrize("context", [0, 2])
def test_padding_never_changes_a_score(context):
    torch.manual_seed(0)
    scorer = PairScorer(3, 2, PairScorerConfig(positions=6, hidden=8, context=context))
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


def test_golden_scores_with_phrase_context():
    """The same guard for the dilated-convolution context (and a first-version scorer keeps no such weights)."""
    torch.manual_seed(0)
    scorer = PairScorer(3, 2, PairScorerConfig(positions=4, hidden=8, context=2))
    g = torch.Generator().manual_seed(1)
    lyr, mus = torch.randn(2, 4, 3, generator=g), torch.randn(3, 4, 2, generator=g)
    got = scorer(lyr, torch.ones(2, 4), mus, torch.ones(3, 4)).detach().numpy()
    assert np.allclose(got, GOLDEN_CONTEXT, atol=1e-5), got.tolist()
    plain = PairScorer(3, 2, PairScorerConfig(positions=4, hidden=8))
    assert not any("context" in k for k in plain.state_dict())
    assert {k.split(".")[0] for k in scorer.state_dict() if "context" in k} == {"lyrics_context", "music_context"}
    with pytest.raises(ValueError, match="context"):
        PairScorerConfig(context=5)
    assert PairScorerConfig.from_dict({"modality": "audio"}).context == 0  # an older file's config


GOLDEN_CONTEXT = np.array([[-0.85577661, -0.87598777, -0.88241041], [-0.94596493, -1.08694088, -1.08246875]])


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


# -- repetition: where the line and the melody repeat themselves -------------------------

def _lyrics_token(vec):
    """A whole lyrics token: skip-gram head (4 here), unknown flag, prosody."""
    return np.concatenate([np.asarray(vec, np.float32), [0.0], np.zeros(N_PROSODY, np.float32)])


def test_self_similarity_of_each_modality():
    # lyrics: "la la la di": positions 0-2 the same known syllable, 3 another; 4 unknown twice (zeros)
    la, di = [1.0, 0.5, 0.0, 0.0], [0.0, 0.0, 1.0, 0.2]
    rows = [la, la, la, di, [0, 0, 0, 0], [0, 0, 0, 0]]
    lyr = np.stack([_lyrics_token(v) for v in rows])[None]
    mask = np.array([[1, 1, 1, 1, 1, 1]], np.float32)
    s = self_similarity(lyr, mask, "lyrics", N_PROSODY)[0]
    assert s[0, 1] == s[0, 2] == s[1, 2] == 1 and s[0, 3] == 0
    assert s[4, 5] == 0  # unknown syllables are not "the same"
    assert np.trace(s) == 0 and np.array_equal(s, s.T)
    # sheet: structure columns … notes_known (2), log_beats (3), pitch_rel (5); 9 columns, behind a 2-d head
    sheet = np.zeros((1, 4, 2 + 9), np.float32)
    sheet[0, :, 2 + 2] = 1
    sheet[0, :, 2 + 3] = [0.0, 0.0, 0.69, 0.0]
    sheet[0, :, 2 + 5] = [0.1, 0.1, 0.1, -0.2]
    s = self_similarity(sheet, np.ones((1, 4), np.float32), "sheet", 9)[0]
    assert s[0, 1] == 1 and s[0, 2] == 0 and s[0, 3] == 0  # same length and pitch / longer / lower
    # the padding never repeats anything
    s = self_similarity(sheet, np.array([[1, 0, 1, 1]], np.float32), "sheet", 9)[0]
    assert s[0, 1] == 0 and s[1].sum() == 0
    # audio: the CNN head's cosine
    audio = np.zeros((1, 3, 3 + 4), np.float32)
    audio[0, :, :3] = [[1, 0, 0], [0.99, 0.05, 0], [0, 1, 0]]
    s = self_similarity(audio, np.ones((1, 3), np.float32), "audio", 4)[0]
    assert s[0, 1] == 1 and s[0, 2] == 0


def test_repetition_columns_follow_the_structure_columns():
    fs = _repeats_only(n=12)
    plain, mask = structure_tokens(fs, "sheet", 20)
    with_rep, mask2 = structure_tokens(fs, "sheet", 20, repetition=True)
    assert with_rep.shape == (12, 20, 9 + 20) and np.array_equal(mask, mask2)
    assert np.array_equal(with_rep[:, :, :9], plain)
    assert with_rep[:, 12:].sum() == 0 and with_rep[:, :, 9 + 12:].sum() == 0  # 12 positions of 20 exist
    assert with_rep[:, :12, 9:].sum() > 0
    seq = SimpleNamespace(tokens=np.stack([_lyrics_token([1, 0, 0, 0])] * 3 + [_lyrics_token([0, 1, 0, 0])])[None],
                          lengths=np.array([4]))
    tokens, m = query_tokens(seq, "lyrics", positions=6, repetition=True)
    assert tokens.shape == (6, N_PROSODY + 6) and m.tolist() == [1, 1, 1, 1, 0, 0]
    assert tokens[0, N_PROSODY + 1] == 1 and tokens[0, N_PROSODY + 3] == 0 and tokens[4:].sum() == 0


def test_a_lyrics_querys_phonetic_columns_follow_its_prosody_and_the_repeats_still_read_the_syllables():
    """With ``phonetics`` a typed line's phonetic columns (``SequenceInput.phonetics``) extend its structure
    columns; its repeats are still found from the skip-gram head, not from the appended columns."""
    from model.features.tokens.phonetics import N_PHONETIC

    tokens = np.stack([_lyrics_token([1, 0, 0, 0])] * 3 + [_lyrics_token([0, 1, 0, 0])])[None]
    phon = np.zeros((1, 4, N_PHONETIC), np.float32)
    phon[0, :, 3] = [1, 2, 3, 4]
    seq = SimpleNamespace(tokens=tokens, lengths=np.array([4]), phonetics=phon)
    plain, _ = query_tokens(seq, "lyrics", positions=6, repetition=True)
    with_phon, m = query_tokens(seq, "lyrics", positions=6, repetition=True, phonetics=True)
    assert with_phon.shape == (6, N_PROSODY + N_PHONETIC + 6) and m.tolist() == [1, 1, 1, 1, 0, 0]
    assert np.array_equal(with_phon[:, :N_PROSODY], plain[:, :N_PROSODY])
    assert with_phon[:4, N_PROSODY + 3].tolist() == [1, 2, 3, 4]
    assert np.array_equal(with_phon[:, -6:], plain[:, -6:])  # the same repeats
    with pytest.raises(ValueError, match="phonetic"):
        query_tokens(SimpleNamespace(tokens=tokens, lengths=np.array([4])), "lyrics", phonetics=True)


def test_an_audio_querys_pitch_columns_follow_its_scalars_and_the_repeats_still_read_the_cnn_vectors():
    """With ``pitch`` a recording's onset pitch columns (``SequenceInput.onset_pitch``) extend its structure
    columns; which onsets repeat is still decided by the CNN head, not by the appended columns."""
    from model.features.tokens.onset_pitch import N_ONSET_PITCH
    from model.features.tokens.sequences import AUDIO_SCALARS

    head = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0]], np.float32)
    scalars = np.arange(16, dtype=np.float32).reshape(4, len(AUDIO_SCALARS))
    tokens = np.concatenate([head, scalars], 1)[None]
    pitch = np.zeros((1, 4, N_ONSET_PITCH), np.float32)
    pitch[0, :, 0] = [0.1, 0.2, 0.3, 0.4]
    seq = SimpleNamespace(tokens=tokens, lengths=np.array([4]), onset_pitch=pitch)
    plain, _ = query_tokens(seq, "audio", positions=6, repetition=True)
    with_pitch, m = query_tokens(seq, "audio", positions=6, repetition=True, pitch=True)
    assert with_pitch.shape == (6, len(AUDIO_SCALARS) + N_ONSET_PITCH + 6) and m.tolist() == [1, 1, 1, 1, 0, 0]
    assert np.array_equal(with_pitch[:4, :len(AUDIO_SCALARS)], scalars)
    assert np.allclose(with_pitch[:4, len(AUDIO_SCALARS)], [0.1, 0.2, 0.3, 0.4])
    assert np.array_equal(with_pitch[:, -6:], plain[:, -6:])  # the same repeats: onsets 0, 1 and 3
    assert with_pitch[0, -6:].tolist() == [0, 1, 0, 1, 0, 0]
    # a sheet query is not changed by the audio side's setting, and a recording without the columns is refused
    sheet = SimpleNamespace(tokens=np.ones((1, 4, 12), np.float32), lengths=np.array([4]))
    assert np.array_equal(query_tokens(sheet, "sheet", positions=6, pitch=True)[0],
                          query_tokens(sheet, "sheet", positions=6)[0])
    with pytest.raises(ValueError, match="pitch columns.*Embedder.audio_sequence"):
        query_tokens(SimpleNamespace(tokens=tokens, lengths=np.array([4])), "audio", pitch=True)


def test_a_saved_pitch_scorer_over_features_without_room_for_the_columns_is_refused(tmp_path):
    """A scorer file says it reads the onsets' pitch, but its audio side was built without the columns: refused
    by name before any pitch is computed (the features here have no dataset to compute it from)."""
    from model.errors import CorruptFileError
    from model.search.lyrics_rerank import RERANKER_FILE, LyricsReranker

    fs = _repeats_only(n=20)
    fs.sample_ids = np.array([f"s{i}" for i in range(20)])
    scorer = PairScorer(N_PROSODY, 4, PairScorerConfig(modality="audio", positions=20, hidden=8, pitch=True))
    lib = {m: structure_tokens(fs, m, 20) for m in ("lyrics", "audio")}
    LyricsReranker({"audio": scorer}, {"audio": 1.0}, lib, fs.sample_ids).save(tmp_path)
    with pytest.raises(CorruptFileError, match=rf"its audio scorer reads \({N_PROSODY}, 4\).*\({N_PROSODY}, 7\)"):
        LyricsReranker.load(tmp_path, fs)


def _repeats_only(n=300, seed=0, positions=12):
    """Lyrics and melodies with no position-wise link at all: a pair shares only *where* it repeats."""
    rng = np.random.default_rng(seed)
    head = 4
    lyrics = np.zeros((n, positions, head + 1 + N_PROSODY), np.float32)
    sheet = np.zeros((n, positions, 9), np.float32)
    sheet[:, :, 2] = 1
    for i in range(n):
        motif = rng.integers(0, 3, positions)  # which of three "syllables" / "notes" each position is
        words = rng.normal(size=(3, head))
        lyrics[i, :, :head] = words[motif]
        lyrics[i, :, head + 1:] = rng.normal(size=(positions, N_PROSODY))  # noise prosody
        beats, pitch = rng.normal(size=3), rng.normal(size=3)
        sheet[i, :, 3], sheet[i, :, 5] = beats[motif], pitch[motif]
    lengths = np.full(n, positions)
    splits = np.array(["train"] * int(0.7 * n) + ["val"] * int(0.15 * n) + ["test"] * (n - int(0.85 * n)))
    return _Features({"lyrics": lyrics, "sheet": sheet, "audio": sheet[..., -4:]}, lengths, splits,
                     {"lyrics": N_PROSODY, "sheet": 9, "audio": 4})


def test_the_repetition_term_finds_a_pairing_the_position_wise_scorer_cannot():
    fs = _repeats_only()
    cfg = dict(modality="sheet", positions=12, epochs=4, batch=64, hidden=16, seed=0)
    plain = train_pair_scorer(fs, PairScorerConfig(**cfg))
    rep = train_pair_scorer(fs, PairScorerConfig(**cfg, repetition=True))
    best = lambda t: min(h["val_medr_n"] for h in t.history)  # noqa: E731
    assert best(rep) < 0.1 < 0.3 < best(plain)  # chance is 0.5


def test_shifted_windows_run_on_into_the_songs_next_window():
    from model.search.lyrics_rerank import consecutive_pairs, shifted_windows
    songs = np.array(["a", "a", "a", "b", "b", "c"])
    assert consecutive_pairs(songs, np.array([0, 1, 2, 3, 4, 5])).tolist() == [[0, 1], [1, 2], [3, 4]]
    assert consecutive_pairs(songs, np.array([0, 2, 3, 4])).tolist() == [[3, 4]]  # 0 and 2 are not neighbours
    full = np.zeros((3, 6, 2), np.float32)
    full[:, :, 0] = np.arange(6)[None] + 10 * np.arange(3)[:, None]  # position i of row r: 10 r + i
    lengths = np.array([5, 4, 6])
    out, n = shifted_windows(full, lengths, np.array([[0, 1], [1, 2]]), shift=2, positions=6)
    assert n.tolist() == [6, 6]
    assert out[0, :, 0].tolist() == [2, 3, 4, 10, 11, 12]  # row 0 from position 2 (of 5), then row 1
    assert out[1, :, 0].tolist() == [12, 13, 20, 21, 22, 23]
    short, n2 = shifted_windows(full, np.array([3, 2, 6]), np.array([[0, 1]]), shift=2, positions=6)
    assert n2.tolist() == [3] and short[0, 3:].sum() == 0


def test_shifted_training_windows_add_pairs_and_keep_validation():
    fs = _repeats_only(n=120)
    fs.song_ids = np.repeat(np.arange(60), 2).astype(str)
    cfg = dict(modality="sheet", positions=12, epochs=1, batch=32, hidden=8, seed=0)
    plain = train_pair_scorer(fs, PairScorerConfig(**cfg))
    more = train_pair_scorer(fs, PairScorerConfig(**cfg, shifts=(4, 8)))
    train = np.nonzero(fs.splits == "train")[0]
    from model.search.lyrics_rerank import consecutive_pairs
    assert plain.train_pairs == len(train) == 84
    assert more.train_pairs == len(train) + 2 * len(consecutive_pairs(fs.song_ids, train)) == 84 + 2 * 42
    assert len(more.history) == 1 and np.isfinite(more.history[0]["loss"])
    assert PairScorerConfig.from_dict(PairScorerConfig(**cfg, shifts=(4, 8)).to_dict()).shifts == (4, 8)


def test_the_repetition_term_is_the_weighted_agreement_of_the_self_similarities():
    """Golden: at initialisation (weights 1) the term is shared repeats over the root of each side's count + 1."""
    p = 4
    torch.manual_seed(0)
    plain = PairScorer(3, 2, PairScorerConfig(positions=p, hidden=8))
    torch.manual_seed(0)
    rep = PairScorer(3, 2, PairScorerConfig(positions=p, hidden=8, repetition=True))
    g = torch.Generator().manual_seed(1)
    lyr, mus = torch.randn(1, p, 3, generator=g), torch.randn(1, p, 2, generator=g)
    sl, sm = torch.zeros(1, p, p), torch.zeros(1, p, p)
    sl[0, 0, 1] = sl[0, 1, 0] = sl[0, 0, 3] = sl[0, 3, 0] = 1  # the line repeats 0 at 1 and at 3
    sm[0, 0, 1] = sm[0, 1, 0] = 1  # the melody repeats 0 at 1
    ones_l, ones_m = torch.ones(1, p), torch.ones(1, p)
    with_rep = rep(torch.cat([lyr, sl], -1), ones_l, torch.cat([mus, sm], -1), ones_m)
    expected = plain(lyr, ones_l, mus, ones_m) + 2.0 / (np.sqrt(5.0) * np.sqrt(3.0))  # all within REPEAT_NEAR
    assert torch.allclose(with_rep, expected, atol=1e-6)


def test_a_saved_scorer_for_other_token_columns_is_refused_by_name(tmp_path):
    from model.errors import CorruptFileError
    from model.search.lyrics_rerank import RERANKER_FILE, LyricsReranker
    fs = _repeats_only(n=20)
    fs.sample_ids = np.array([f"s{i}" for i in range(20)])
    scorer = PairScorer(N_PROSODY, 9, PairScorerConfig(positions=20, hidden=8))
    lib = {m: structure_tokens(fs, m, 20) for m in ("lyrics", "sheet")}
    LyricsReranker({"sheet": scorer}, {"sheet": 1.0}, lib, fs.sample_ids).save(tmp_path)
    back = LyricsReranker.load(tmp_path, fs)
    assert back is not None and back.weights == {"sheet": 1.0} and not back.repetition
    fs.meta = {"structure_dims": {"lyrics": N_PROSODY, "sheet": 7, "audio": 4}}  # features of another layout
    with pytest.raises(CorruptFileError, match=rf"{RERANKER_FILE}: its sheet scorer reads \({N_PROSODY}, 9\)"):
        LyricsReranker.load(tmp_path, fs)


def test_a_shift_outside_the_window_is_refused():
    with pytest.raises(ValueError, match=r"1 to 19 positions into a sample, got shifts \(0,\)"):
        PairScorerConfig(shifts=(0,))
    with pytest.raises(ValueError, match="got shifts"):
        PairScorerConfig(shifts=(10, 20))
    assert PairScorerConfig(shifts=(5, 19)).shifts == (5, 19)


def test_a_batch_without_negatives_is_refused():
    with pytest.raises(ValueError, match="at least 2 pairs .* got batch 1"):
        PairScorerConfig(batch=1)
    assert PairScorerConfig(batch=2).batch == 2


def test_a_query_pairs_with_the_library_encoded_once():
    """LyricsReranker keeps the library's encoding (the phrase context is the costly part) and scores
    exactly what score_matrix scores, both ways."""
    from model.search.lyrics_rerank import LyricsReranker
    rng = np.random.default_rng(2)
    n, p = 30, 6

    def tokens(d):
        x = rng.normal(size=(n, p, d + p)).astype(np.float32)
        x[..., d:] = rng.random((n, p, p)) < 0.2  # self-similarity rows are 0 / 1
        return x, (np.arange(p)[None, :] < rng.integers(3, p + 1, n)[:, None]).astype(np.float32)

    torch.manual_seed(0)
    scorer = PairScorer(3, 2, PairScorerConfig(positions=p, hidden=8, context=2, repetition=True))
    library = {"lyrics": tokens(3), "sheet": tokens(2)}
    rr = LyricsReranker({"sheet": scorer}, {"sheet": 4.0}, library, [f"s{i}" for i in range(n)])
    lx, lm = library["lyrics"]
    mx, mm = library["sheet"]
    got = rr.pair_scores("lyrics", "sheet", (lx[4], lm[4]))
    assert np.allclose(got, score_matrix(scorer, lx[4:5], lm[4:5], mx, mm)[0], atol=1e-5)
    back = rr.pair_scores("sheet", "lyrics", (mx[9], mm[9]))
    assert np.allclose(back, score_matrix(scorer, lx, lm, mx[9:10], mm[9:10])[:, 0], atol=1e-5)
    assert set(rr._encoded_library) == {("sheet", "sheet"), ("sheet", "lyrics")}
    kept = rr._encoded_library[("sheet", "sheet")][0]
    rr.pair_scores("lyrics", "sheet", (lx[1], lm[1]))
    assert rr._encoded_library[("sheet", "sheet")][0] is kept


def test_dropout_acts_only_while_training_and_adds_no_weights():
    """Dropout on the hidden rows changes training-mode scores, never eval-mode ones, and keeps the
    state dict of a scorer without it (files written before the field load unchanged)."""
    torch.manual_seed(0)
    scorer = PairScorer(3, 2, PairScorerConfig(positions=4, hidden=8, context=2, dropout=0.5))
    torch.manual_seed(0)
    plain = PairScorer(3, 2, PairScorerConfig(positions=4, hidden=8, context=2))
    assert scorer.state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(scorer.state_dict())
    g = torch.Generator().manual_seed(1)
    lyr, mus = torch.randn(2, 4, 3, generator=g), torch.randn(3, 4, 2, generator=g)
    args = (lyr, torch.ones(2, 4), mus, torch.ones(3, 4))
    scorer.eval(), plain.eval()
    assert torch.allclose(scorer(*args), plain(*args))
    scorer.train()
    assert not torch.allclose(scorer(*args), plain(*args))
    with pytest.raises(ValueError, match="dropout"):
        PairScorerConfig(dropout=1.0)
    assert PairScorerConfig.from_dict({"modality": "sheet"}).dropout == 0.0


def test_phonetic_columns_without_the_features_dataset_name_the_missing_folder(tmp_path):
    """The library's phonetic columns come from the dataset the features name: gone, the error says which."""
    from model.data.dataset import DatasetError
    from model.search.lyrics_rerank import lyrics_phonetics

    fs = _paired(n=20)
    fs.sample_ids = [f"s{i}" for i in range(20)]
    fs.meta["dataset_root"] = str(tmp_path / "moved-away")
    with pytest.raises(DatasetError, match="moved-away"):
        lyrics_phonetics(fs, 20)


def test_distillation_pulls_the_audio_scorer_towards_its_sheet_teacher():
    """With ``distill`` the audio scorer's in-batch softmax over training pairs comes closer to its sheet
    teacher's than without; it refuses to train without a teacher, or with one that reads the lyrics
    differently."""
    fs = _paired(n=400, seed=3)
    rng = np.random.default_rng(4)
    sheet = fs.tokens["sheet"][..., -2:]
    valid = (np.arange(20)[None, :] < fs.lengths[:, None])[..., None]
    fs.tokens["audio"] = ((sheet + rng.normal(0, 1.0, sheet.shape)) * valid).astype(np.float32)
    base = dict(epochs=4, batch=64, hidden=32, seed=0)
    teacher = train_pair_scorer(fs, PairScorerConfig(modality="sheet", **base)).scorer
    rows = np.nonzero(fs.splits == "train")[0][:64]
    lx, lm = structure_tokens(fs, "lyrics", 20)
    sx, sm = structure_tokens(fs, "sheet", 20)
    ax, am = structure_tokens(fs, "audio", 20)
    taught = torch.log_softmax(torch.as_tensor(score_matrix(teacher, lx[rows], lm[rows], sx[rows], sm[rows])), 1)

    def divergence(distill):
        cfg = PairScorerConfig(modality="audio", distill=distill, **base)
        student = train_pair_scorer(fs, cfg, teacher=teacher if distill else None).scorer
        scores = torch.log_softmax(torch.as_tensor(score_matrix(student, lx[rows], lm[rows], ax[rows], am[rows])), 1)
        return float(torch.nn.functional.kl_div(scores, taught, log_target=True, reduction="batchmean"))

    plain, distilled = divergence(0.0), divergence(20.0)
    assert distilled < 0.85 * plain, (plain, distilled)
    print(f"KL to the teacher: {plain:.4f} without, {distilled:.4f} with distillation")
    with pytest.raises(ValueError, match="teacher"):
        train_pair_scorer(fs, PairScorerConfig(modality="audio", distill=1.0, **base))
    with pytest.raises(ValueError, match="teacher"):
        train_pair_scorer(fs, PairScorerConfig(modality="audio", distill=1.0, repetition=True, **base), teacher=teacher)
    with pytest.raises(ValueError, match="distill"):
        PairScorerConfig(distill=-1.0)


def test_the_weights_moving_average_is_validated_and_kept():
    """With ``ema_epochs`` the scorer kept is the moving average of the weights: its validation MedR/N is the
    one recorded for the best epoch, and it differs from the last step's weights of the same training."""
    fs = _paired(n=400, seed=5)
    base = dict(modality="sheet", epochs=3, batch=64, hidden=32, seed=0)
    val = np.nonzero(fs.splits == "val")[0]
    lx, lm = structure_tokens(fs, "lyrics", 20)
    mx, mm = structure_tokens(fs, "sheet", 20)

    def val_medr(scorer):
        return float(np.median(ranks_from_scores(score_matrix(scorer, lx[val], lm[val], mx[val], mm[val]),
                                                 lower_is_better=False))) / len(val)

    averaged = train_pair_scorer(fs, PairScorerConfig(ema_epochs=0.5, **base))
    assert val_medr(averaged.scorer) == averaged.history[averaged.best_epoch]["val_medr_n"]
    assert averaged.history[averaged.best_epoch]["val_medr_n"] < 0.2  # it still learns the pairing (chance 0.5)
    last_step = train_pair_scorer(fs, PairScorerConfig(ema_epochs=0.0, **base))  # the same seed: the same steps
    differ = [not torch.equal(a, b) for a, b in zip(averaged.scorer.state_dict().values(),
                                                     last_step.scorer.state_dict().values())]
    assert any(differ)
    with pytest.raises(ValueError, match="ema_epochs"):
        PairScorerConfig(ema_epochs=-0.1)
