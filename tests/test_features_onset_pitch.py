"""The pitch of each audio token's note: real renderings, the columns, and a dataset's cached columns."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import soundfile

from model.data.song import Note
from model.feature_set import cached_feature_files
from model.features.config import FeatureConfig
from model.features.extract import audio_input
from model.features.tokens import onset_pitch as op
from model.features.tokens.onset_pitch import (N_ONSET_PITCH, audio_pitch_columns, dataset_onset_pitch,
                                               note_pitches, pitch_columns)
from model.features.tokens.sequences import AUDIO_SCALARS, audio_rows, audio_segments
from model.progress import CancelToken, Cancelled
from model.render.audio import BuiltinRenderer, FluidSynthRenderer, fluidsynth_available

CONFIG = FeatureConfig()
LEAPS = [57, 64, 59, 67, 60, 69, 62, 71]


def _melody(pitches, step=0.4, length=0.35) -> list[Note]:
    return [Note(int(p), 0.2 + i * step, length, "la") for i, p in enumerate(pitches)]


def _rows(wave, rate=16000):
    return audio_rows(audio_input(wave, rate, CONFIG))


RENDERERS = {"builtin": lambda: BuiltinRenderer(16000),
             "piano": lambda: FluidSynthRenderer(16000, program=0),
             "flute": lambda: FluidSynthRenderer(16000, program=73)}


#: The flux picking each timbre's onsets are found with here: the default finds a flute's breath and vibrato
#: as onsets too (docs/features.md, "Onset picking"), the first default (0.05 over 3 rows) finds its notes.
PICKING = {"builtin": CONFIG, "piano": CONFIG, "flute": FeatureConfig(onset_delta=0.05, onset_window=3)}


@pytest.mark.parametrize("timbre", list(RENDERERS))
def test_each_tokens_pitch_is_its_notes_whatever_the_instrument(timbre):
    if timbre != "builtin" and not fluidsynth_available()[0]:
        pytest.skip("FluidSynth is not installed")
    wave = RENDERERS[timbre]().render(_melody(LEAPS))
    pitches = note_pitches(wave, 16000, _rows(wave), PICKING[timbre])
    assert len(pitches) == len(LEAPS)  # one per detected onset: every note found once
    assert np.all(np.abs(pitches - np.array(LEAPS)) < 0.5), pitches


def test_a_quiet_recordings_last_note_rings_past_its_end():
    """A quiet recording's padding rows (the last 0.96 s patch runs past its end) count as sounding, so the last
    note's frames would lie beyond the samples: they are read at the recording's end instead."""
    wave = BuiltinRenderer(16000).render(_melody(LEAPS)) * 0.03
    rows = _rows(wave)
    assert len(rows) * CONFIG.stft_hop_s * CONFIG.audio_time_pool > len(wave) / 16000 + 0.3
    assert np.all(np.abs(note_pitches(wave, 16000, rows, CONFIG) - np.array(LEAPS)) < 0.5)


def test_silence_and_noise_have_no_pitch():
    silence = np.zeros(3 * 16000, np.float32)
    noise = np.random.default_rng(0).normal(0, 0.1, 3 * 16000).astype(np.float32)
    for wave in (silence, noise):
        cols = audio_pitch_columns(wave, 16000, CONFIG)
        assert np.all(cols == 0)  # no pitch: every column 0, and the scorer reads "unpitched"
    short = np.ones(200, np.float32) * 0.1  # shorter than one analysis frame
    assert np.isnan(note_pitches(short, 16000, _rows(np.pad(short, (0, 16000))), CONFIG)).all()


def test_pitch_columns_golden_values():
    cols = pitch_columns(np.array([60.0, np.nan, 64.0, 67.0]))
    mean = (60 + 64 + 67) / 3
    want = np.array([[(60 - mean) / 12, 0, 1],
                     [0, 0, 0],  # unpitched: no pitch, and no interval either side
                     [(64 - mean) / 12, 0, 1],
                     [(67 - mean) / 12, 3 / 12, 1]], np.float32)
    assert cols.shape == (4, N_ONSET_PITCH) and np.allclose(cols, want, atol=1e-6)
    assert np.all(pitch_columns(np.full(3, np.nan)) == 0) and pitch_columns(np.zeros(0)).shape == (0, 3)


class _Dataset:
    """What dataset_onset_pitch reads of a Dataset: its audio, by id (no front-end cache kept)."""

    def __init__(self, root):
        self.root = root

    def load_audio(self, sid):
        data, sr = soundfile.read(str(self.root / "audio" / f"{sid}.flac"), dtype="float32")
        return data, sr


def _features(tmp_path, n=5):
    """Rendered melodies in a folder and a FeatureSet-like view of their audio tokens (the real scalars)."""
    synth = BuiltinRenderer(16000)
    (tmp_path / "audio").mkdir()
    ids, items = [], []
    for i in range(n):
        sid = f"s{i}"
        wave = synth.render(_melody([60 + i, 64, 67, 72, 67]))
        soundfile.write(str(tmp_path / "audio" / f"{sid}.flac"), wave, 16000)
        _patches, scalars = audio_segments(_rows(wave), CONFIG)
        items.append(np.concatenate([np.zeros((len(scalars), 2), np.float32), scalars], 1))
        ids.append(sid)
    width = CONFIG.sequence_max_len
    tokens = np.zeros((n, width, 2 + len(AUDIO_SCALARS)), np.float32)
    lengths = np.array([len(t) for t in items])
    for i, t in enumerate(items):
        tokens[i, :len(t)] = t
    seq = SimpleNamespace(tokens=tokens, lengths=lengths)
    return SimpleNamespace(sample_ids=np.array(ids), input_of=lambda m, kind: seq,
                           meta={"dataset_root": str(tmp_path), "config": CONFIG.to_dict(), "cache_key": "abc"})


def test_dataset_columns_are_cached_resumed_and_survive_a_broken_file(tmp_path, monkeypatch):
    fs = _features(tmp_path)
    (tmp_path / "audio" / "s3.flac").write_bytes(b"not audio")
    monkeypatch.setattr(op, "SAVE_EVERY", 2)
    cancel, seen = CancelToken(), []

    def progress(p):
        seen.append(p.done)
        if p.done == 3:
            cancel.set()

    folder = tmp_path / "features" / "onset-pitch"
    with pytest.raises(Cancelled):
        dataset_onset_pitch(fs, 20, progress, cancel, dataset=_Dataset(tmp_path))
    assert (folder / "v1-abc.partial.npz").is_file() and not (folder / "v1-abc.npz").exists()
    seen.clear()
    cols = dataset_onset_pitch(fs, 20, lambda p: seen.append(p.done), dataset=_Dataset(tmp_path))
    assert len(seen) == 3  # s0, s1 came from the partial file; s2, s3, s4 were computed
    assert (folder / "v1-abc.npz").is_file() and not (folder / "v1-abc.partial.npz").exists()
    assert cached_feature_files(tmp_path) == []  # never mistaken for a FeatureSet
    assert cols.shape == (5, 20, N_ONSET_PITCH) and cols.dtype == np.float32
    assert np.all(cols[3] == 0)  # the unreadable file: no pitch, no error
    for i in (0, 1, 2, 4):
        k = int(fs.input_of("audio", "aligned").lengths[i])
        assert np.all(cols[i, :k, 2] == 1) and np.all(cols[i, k:] == 0)
        # the first note is 60 + i, the others 64 67 72 67: its interval to the second is 4 - i semitones
        assert abs(cols[i, 1, 1] * 12 - (4 - i)) < 0.3
    seen.clear()
    fronts = []  # the extraction's cached front end is large: not read when no audio file opens
    monkeypatch.setattr(op, "_cached_rows", lambda *a: fronts.append(a))
    again = dataset_onset_pitch(fs, 20, lambda p: seen.append(p.done), dataset=_Dataset(tmp_path))
    assert seen == [1] and np.array_equal(again, cols)  # only the broken file is tried again
    assert fronts == []


def test_tokens_cut_at_other_onsets_get_no_pitch(tmp_path):
    """Features extracted with another onset setting: pitches would sit on other tokens' notes, so none are given."""
    fs = _features(tmp_path, n=2)
    seq = fs.input_of("audio", "aligned")
    ioi = seq.tokens.shape[2] - len(AUDIO_SCALARS) + AUDIO_SCALARS.index("log_ioi")
    seq.tokens[1, 0, ioi] += 0.3  # the first token's span no longer matches the onsets found again
    cols = dataset_onset_pitch(fs, 20, dataset=_Dataset(tmp_path))
    assert cols[0, :, 2].sum() > 0 and np.all(cols[1] == 0)


def test_a_missing_dataset_is_named(tmp_path):
    from model.data.dataset import DatasetError

    fs = _features(tmp_path, n=1)
    fs.meta["dataset_root"] = str(tmp_path / "moved-away")
    with pytest.raises(DatasetError, match="moved-away"):
        dataset_onset_pitch(fs, 20)
