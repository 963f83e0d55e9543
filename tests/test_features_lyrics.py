"""Skip-gram lyrics features: training, determinism, OOV, typed lines, persistence, published encoders."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.features.config import FeatureConfig
from model.features.learned.lyrics import (LyricsEncoder, stable_hash, syllables_and_words, token, train_lyrics_encoder)

PUBLISHED = Path(__file__).resolve().parents[2] / "shared" / "data" / "skipgram-yu2019"

SONGS = [
    [("Love", True), ("ly", False), ("day", True), ("for", True), ("the", True), ("sun", True),
     ("shine", False)],
    [("I", True), ("love", True), ("you", True), ("sun", True), ("day", False), ("mor", True),
     ("ning", False)],
    [("the", True), ("love", True), ("ly", False), ("mor", True), ("ning", False), ("sun", True)],
] * 5
CFG = FeatureConfig(skipgram_dim=6, skipgram_epochs=20, skipgram_window=3)


def test_pairs_and_tokens():
    assert syllables_and_words(["Love", "ly", "day"], [True, False, True]) == [
        ("Love", "Lovely"), ("ly", "Lovely"), ("day", "day")]
    assert syllables_and_words(["ly"], [False]) == [("ly", "ly")]  # a sample starting mid-word
    assert token("Love,") == "love" and token("don't") == "don't" and token("...") == "..."
    assert stable_hash("abc") == stable_hash("abc") and isinstance(stable_hash("x"), int)


def test_training_is_deterministic_and_shapes():
    a = train_lyrics_encoder(SONGS, CFG)
    b = train_lyrics_encoder(SONGS, CFG)
    assert a.dim == 12
    assert a.digest() == b.digest()
    assert "love" in a.syllables.key_to_index and "lovely" in a.words.key_to_index
    v = a.encode_sample(["Love", "ly", "day"], [True, False, True])
    assert v.shape == (12,) and v.dtype == np.float32 and np.all(np.isfinite(v))
    # syllable half = mean of syllable vectors; word half = mean of each syllable's word vector
    exp_s = np.mean([a.syllables["love"], a.syllables["ly"], a.syllables["day"]], axis=0)
    exp_w = np.mean([a.words["lovely"], a.words["lovely"], a.words["day"]], axis=0)
    assert np.allclose(v, np.concatenate([exp_s, exp_w]), atol=1e-6)


def test_oov_never_crashes():
    enc = train_lyrics_encoder(SONGS, CFG)
    assert np.array_equal(enc.encode_sample(["zzq", "xxv"], [True, True]), np.zeros(12, np.float32))
    assert np.array_equal(enc.encode_text(""), np.zeros(12, np.float32))
    assert np.array_equal(enc.encode_text("   !!! ???"), np.zeros(12, np.float32))
    # one known syllable among unknown ones: the mean is over the known ones
    v = enc.encode_sample(["zzq", "sun"], [True, True])
    assert np.allclose(v[:6], enc.syllables["sun"], atol=1e-6)
    assert np.all(np.isfinite(enc.encode_text("Ünïcödé 🎵 sun-shine")))


def test_typed_line_segments_words_into_known_syllables():
    enc = train_lyrics_encoder(SONGS, CFG)
    assert enc.segment("lovely") == ["love", "ly"] or enc.segment("lovely") == ["lovely"]
    assert enc.segment("sunshine") == ["sun", "shine"]
    assert enc.segment("mor-ning") == ["mor", "ning"]
    line = enc.encode_text("Lovely sunshine")
    assert line.shape == (12,) and np.abs(line).sum() > 0


def test_save_load_roundtrip_without_pickle(tmp_path):
    enc = train_lyrics_encoder(SONGS, CFG)
    enc.save(tmp_path)
    head = (tmp_path / "skipgram_syll.model").read_bytes()[:20]
    assert head.split(b"\n")[0].split() == [str(len(enc.syllables)).encode(), b"6"]  # word2vec header
    back = LyricsEncoder.load(tmp_path)
    assert back.digest() == enc.digest()
    assert np.array_equal(back.encode_text("lovely day"), enc.encode_text("lovely day"))


@pytest.mark.skipif(not PUBLISHED.is_dir(), reason="published skip-gram encoders not present")
def test_published_encoders_load_and_embed():
    enc = LyricsEncoder.load_published(PUBLISHED)
    assert enc.dim == 20
    v = enc.encode_sample(["I", "love", "you"], [True, True, True])
    assert v.shape == (20,) and np.abs(v).sum() > 0
    assert np.abs(enc.encode_text("i LOVE you")).sum() > 0  # case fallbacks


def test_published_loader_requires_the_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        LyricsEncoder.load_published(tmp_path)
