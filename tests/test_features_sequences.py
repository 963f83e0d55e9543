"""Per-position tokens: the sheet's note columns, the audio onsets and the CCA baseline's lyrics rows."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from model.features.config import FeatureConfig
from model.features.extract import audio_input
from model.features.tokens.onset_picking import choose_onset_picking
from model.features.tokens.sequences import (SHEET_SCALARS, STRUCTURE_DIMS, audio_rows, detect_onsets, note_structure,
                                             sheet_segments)
from model.render.audio import BuiltinRenderer
from model.data.song import Note
from model.ugaar import RunConfig
from model.ugaar.factory import build_method
from model.ugaar.synthetic import synthetic_stress_features


def _notes() -> list[Note]:
    # a quarter, an eighth after a quarter rest, a half note an octave up, one without quantised beats
    return [Note(60, 0.0, 0.5, "ti", True, beats=1.0, rest_beats=0.0),
            Note(62, 1.0, 0.25, "ny", False, beats=0.5, rest_beats=1.0),
            Note(72, 1.25, 1.0, "star", True, beats=2.0, rest_beats=0.0),
            Note(70, 3.25, 0.25, "light", True)]


def test_note_structure_states_durations_rests_and_pitch():
    cols = note_structure(_notes())
    assert cols.shape == (4, 7) and cols.dtype == np.float32
    assert np.all(cols[:, 0] == 1.0)                                   # notes known
    np.testing.assert_allclose(cols[:3, 1], np.log([1.0, 0.5, 2.0]), rtol=1e-6)
    np.testing.assert_allclose(cols[3, 1], np.log(0.25 / 0.5), rtol=1e-6)  # seconds at 120 bpm
    np.testing.assert_allclose(cols[:3, 2], np.log1p([0.0, 1.0, 0.0]), rtol=1e-6)
    # the last note has no rest_beats: its gap after the half note (1.25 + 1.0 → 3.25 s) is 2 beats
    np.testing.assert_allclose(cols[3, 2], np.log1p(2.0), rtol=1e-6)
    np.testing.assert_allclose(cols[:, 3].mean(), 0.0, atol=1e-6)       # relative to the mean pitch
    np.testing.assert_allclose(cols[:, 4], [0.0, 2 / 12, 10 / 12, -2 / 12], rtol=1e-6)
    assert cols[:, 5].tolist() == [1.0, 0.0, 1.0, 0.0]                 # ≥ 1 beat
    assert cols[:, 6].tolist() == [0.0, 1.0, 0.0, 1.0]                 # ≤ ½ beat
    assert note_structure([]).shape == (0, 7)


def test_sheet_tokens_carry_the_notes_only_where_they_are_known():
    config = FeatureConfig()
    ink = np.zeros((120, 400), dtype=np.float32)
    ink[40:80, ::37] = 1.0  # something inked, so the staff band is found
    notes = _notes()
    x = [30.0, 120.0, 210.0, 300.0]
    _, with_notes = sheet_segments(ink, x, config, notes)
    _, without = sheet_segments(ink, x, config)
    assert with_notes.shape == (4, len(SHEET_SCALARS)) == without.shape
    np.testing.assert_array_equal(with_notes[:, 2:], note_structure(notes))
    np.testing.assert_array_equal(with_notes[:, :2], without[:, :2])  # the image's own columns unchanged
    assert np.all(without[:, 2:] == 0.0)                               # notes_known = 0 and nothing made up
    assert STRUCTURE_DIMS["sheet"] == len(SHEET_SCALARS)


def test_cca_lyrics_pairs_read_structure_columns_only_with_their_own_settings():
    features = synthetic_stress_features(n=240, seed=0)
    config = RunConfig.for_method("cca", inputs="aligned", cca_components=8, cca_lyrics_components=3,
                                  cca_lyrics_reg=0.5)
    method = build_method(config, features)
    train = features.split("train")
    row = method.flat("audio", train.input_of("audio", "aligned"), "lyrics")
    assert row.shape[1] == config.cca_positions * method.structure_dims["audio"]  # no pooled vector
    assert method.ccas["audio|lyrics"].n_components == 3 and method.ccas["audio|lyrics"].reg == 0.5
    assert method.ccas["audio|sheet"].n_components == 8 and method.ccas["audio|sheet"].reg == config.cca_reg


def _fast_melody(seed: int, n: int = 20) -> list[Note]:
    """Eighths and sixteenths at a quick tempo (0.12–0.14 s), a third of them repeating the last pitch."""
    rng = np.random.default_rng(seed)
    notes, t, pitch = [], 0.0, 64
    for _ in range(n):
        duration = float(rng.choice([0.12, 0.14, 0.25, 0.5]))
        pitch = pitch if rng.random() < 0.4 else int(np.clip(pitch + rng.integers(-4, 5), 55, 76))
        notes.append(Note(pitch, t, duration * 0.97, "la"))
        t += duration
    return notes


def test_default_onset_picking_finds_every_note_of_a_quick_melody():
    """The default picking (threshold 0.015 over 1 row each side) gives one token per note where the first
    one (0.05 over 3 rows) measured a note 3 rows after the last against that note's rise, and missed it."""
    new, first = FeatureConfig(), FeatureConfig(onset_delta=0.05, onset_window=3)
    counts = []
    for seed in range(6):
        notes = _fast_melody(seed)
        rows = audio_rows(audio_input(BuiltinRenderer(new.sample_rate).render(notes), new.sample_rate, new))
        found = detect_onsets(rows, new)
        counts.append((len(found), len(detect_onsets(rows, first))))
        truth = np.array([n.onset for n in notes])
        assert np.all(np.abs(found * new.stft_hop_s * new.audio_time_pool - truth) <= 0.08)
    assert all(n == 20 for n, _ in counts), counts
    assert sum(f for _, f in counts) < 20 * len(counts), counts


def test_onset_window_is_a_sequence_setting_that_keeps_the_encoders():
    first = FeatureConfig(onset_delta=0.05, onset_window=3, onset_picking="fixed")
    # the first defaults are left out of the digest: feature caches and encoders made before the field stay valid
    assert first.digest() == "79a8b96f4035dc43"
    assert FeatureConfig().digest() != first.digest()  # new features: the onsets differ
    assert FeatureConfig().encoders_digest() == first.encoders_digest() == first.digest()
    assert FeatureConfig(onset_window=2, onset_method="learned").encoders_digest() == first.digest()
    assert FeatureConfig(seed=1).encoders_digest() != first.digest()
    saved = first.to_dict()
    del saved["onset_window"], saved["onset_picking"]  # a config.json or FeatureSet meta from before the fields
    again = FeatureConfig.from_dict(saved)
    assert again.onset_window == 3 and again.onset_picking == "fixed" and again.digest() == first.digest()
    # a threshold or window given over the encoders' config is the picking: nothing is chosen instead
    assert FeatureConfig().with_sequence_settings({"onset_delta": 0.3}).onset_picking == "fixed"
    assert FeatureConfig().with_sequence_settings({"onset_method": "learned"}).onset_picking == "auto"
    assert FeatureConfig.from_dict({}).onset_window == FeatureConfig().onset_window == 1
    assert FeatureConfig().with_sequence_settings({"onset_window": 2}).onset_window == 2
    with pytest.raises(ValueError, match="onset_window"):
        FeatureConfig(onset_window=0)
    with pytest.raises(ValueError, match="onset_picking"):
        FeatureConfig(onset_picking="best")


def test_auto_picking_chooses_the_candidate_that_gives_each_item_its_notes():
    """On quick melodies the default candidate gives every item its 20 onsets and the first default does
    not, so it is chosen; items of the test split are not counted; with none countable the first stays."""
    config = FeatureConfig()
    samples, patches = [], []
    for seed in range(6):
        notes = _fast_melody(seed)
        samples.append(SimpleNamespace(split="test" if seed == 5 else "train", notes=notes))
        patches.append(audio_input(BuiltinRenderer(config.sample_rate).render(notes), config.sample_rate, config))
    offsets = np.cumsum([0] + [len(p) for p in patches])
    inputs = SimpleNamespace(data=np.concatenate(patches), offsets=offsets)
    chosen, record = choose_onset_picking(samples, inputs, config)
    assert record["items"] == 5 and record["chosen"] == "0.015/1" and record["exact_share"]["0.015/1"] == 1.0
    assert record["exact_share"]["0.05/3"] < 1.0
    assert (chosen.onset_delta, chosen.onset_window, chosen.onset_picking) == (0.015, 1, "auto")
    assert chosen.digest() == dataclasses.replace(config, onset_delta=0.05, onset_window=3).digest()
    # a picking that loses on these items is not chosen when it comes first
    _, record = choose_onset_picking(samples, inputs, config, candidates=((0.05, 3), (0.015, 1)))
    assert record["chosen"] == "0.015/1"
    nothing, record = choose_onset_picking([SimpleNamespace(split="test", notes=[])], inputs, config)
    assert record["items"] == 0 and (nothing.onset_delta, nothing.onset_window) == (0.015, 1)
