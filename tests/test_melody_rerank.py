"""Pitch tracks of real renderings, the contour DTW, and re-ranking audio ↔ sheet results by the melody."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile

from model.data.song import Note
from model.feature_set import cached_feature_files
from model.features.tokens import pitch_track as pt
from model.features.tokens.pitch_track import TRACK_FRAME_S, dataset_pitch_tracks, pitch_track
from model.progress import CancelToken, Cancelled
from model.render.audio import BuiltinRenderer, FluidSynthRenderer, fluidsynth_available
from model.search.melody_rerank import (MelodyReranker, MelodyRerankConfig, contour_distance, note_contour,
                                        rerank_hits, rerank_ranks, spatial_score)


def _melody(pitches, step=0.4, length=0.35) -> list[Note]:
    return [Note(int(p), 0.2 + i * step, length, "la") for i, p in enumerate(pitches)]


RISING = _melody([60, 62, 64, 65, 67, 69, 71, 72])
FALLING = _melody([72, 71, 69, 67, 65, 64, 62, 60])
LEAPS = _melody([57, 64, 59, 67, 60, 69, 62, 71])
MELODIES = {"rising": RISING, "falling": FALLING, "leaps": LEAPS}


def _held_pitches(track: np.ndarray) -> list[int]:
    """The pitches the track holds for at least two frames, in order (glides between notes are one frame)."""
    rounded = np.round(track).astype(int)
    runs: list[list[int]] = []
    for p in rounded:
        if runs and runs[-1][0] == p:
            runs[-1][1] += 1
        else:
            runs.append([int(p), 1])
    return [p for p, n in runs if n >= 2]


def test_pitch_track_of_the_builtin_synth_follows_the_notes():
    wave = BuiltinRenderer(16000).render(RISING)
    track = pitch_track(wave, 16000)
    assert 40 <= len(track) <= 62 and track.dtype == np.float32  # 8 × 0.4 s of sound at 60 ms, release included
    assert _held_pitches(track) == [n.pitch for n in RISING]
    assert contour_distance(track, note_contour(RISING)) < 0.3 < 1.0 < contour_distance(track, note_contour(LEAPS))
    assert np.array_equal(track, pitch_track(wave, 16000))  # deterministic


@pytest.mark.parametrize("rate", [8000, 44100])
def test_pitch_track_at_other_rates(rate):
    wave = BuiltinRenderer(rate).render(FALLING)
    track = pitch_track(wave, rate)
    assert _held_pitches(track) == [n.pitch for n in FALLING]


def test_silence_noise_and_a_too_short_file_have_no_track():
    rng = np.random.default_rng(0)
    assert len(pitch_track(np.zeros(32000, np.float32), 16000)) == 0
    assert len(pitch_track(np.ones(100, np.float32), 16000)) == 0
    noise = rng.normal(0, 0.3, 32000).astype(np.float32)
    assert len(pitch_track(noise, 16000)) <= 3  # white noise is not periodic
    stereo = np.stack([BuiltinRenderer(16000).render(LEAPS)] * 2, axis=1)
    assert len(pitch_track(stereo, 16000)) > 30


def test_note_contour_repeats_each_pitch_for_its_duration():
    contour = note_contour([Note(60, 0.0, 0.6, "a"), Note(62, 1.0, 0.12, "b"), Note(64, 2.0, 0.01, "c")])
    assert contour.tolist() == [60.0] * 10 + [62.0] * 2 + [64.0]
    assert len(note_contour([])) == 0 and TRACK_FRAME_S == pytest.approx(0.06)


def test_contour_distance_golden_values():
    a = np.array([60, 60, 62, 64, 64, 64], np.float32)
    b = np.array([60, 62, 62, 64], np.float32)
    assert contour_distance(a, a) == 0.0
    assert contour_distance(a, b) == pytest.approx(0.0)  # the same melody at another tempo
    assert contour_distance(a, b + 1) == pytest.approx(1.0)
    assert contour_distance(a, b + 12) == pytest.approx(3.0)  # capped: an octave off is "wrong", not "far"
    assert contour_distance(a, b + 12, cap=20.0) == pytest.approx(10.2)  # 64 ↔ 72 is the nearest pair
    assert contour_distance(a, b + 5, any_key=True) == pytest.approx(contour_distance(a, b, any_key=True))
    assert contour_distance(a, a + 7, any_key=True) == 0.0
    c = np.array([60, 67, 60], np.float32)
    assert contour_distance(a, c) == pytest.approx(contour_distance(c, a))  # symmetric
    assert contour_distance(a, c) == pytest.approx(14 / 9)  # golden value of the kernel
    assert contour_distance(a, np.zeros(0)) == 3.0


def test_config_is_checked():
    with pytest.raises(ValueError, match="k ≥ 0"):
        MelodyRerankConfig(k=-1)
    with pytest.raises(ValueError, match="weight"):
        MelodyRerankConfig(weight=-1)
    assert MelodyRerankConfig().to_dict() == {"k": 100, "weight": 10.0, "cap": 3.0, "any_key": False}


@pytest.mark.skipif(not fluidsynth_available()[0], reason="FluidSynth is not installed")
@pytest.mark.parametrize("program", [73, 52])  # flute, choir "aahs": timbres the audio encoders never train on
def test_a_melody_played_by_another_instrument_finds_its_sheet(program):
    renderer = FluidSynthRenderer(16000, program=program)
    contours = {k: note_contour(v) for k, v in MELODIES.items()}
    for name, notes in MELODIES.items():
        track = pitch_track(renderer.render(notes), 16000)
        # the learned space ranks the true sheet last of three, with the others far closer
        hits = sorted(((k, 0.0 if k != name else 0.3) for k in MELODIES), key=lambda h: h[1])
        reranked = rerank_hits(hits, track, contours.get, "cosine", MelodyRerankConfig(k=3))
        assert reranked[0][0] == name, (program, name, reranked)
        # with weight 0 the learned order stands
        assert rerank_hits(hits, track, contours.get, "cosine", MelodyRerankConfig(k=3, weight=0.0))[-1][0] == name


def test_rerank_hits_keeps_the_tail_and_an_unpitched_query():
    contours = {k: note_contour(v) for k, v in MELODIES.items()}
    track = note_contour(LEAPS)  # a perfect track of "leaps"
    hits = [("rising", 0.1), ("falling", 0.2), ("leaps", 0.3)]
    out = rerank_hits(hits, track, contours.get, "cosine", MelodyRerankConfig(k=2))
    assert [h[0] for h in out] == ["rising", "falling", "leaps"] and out[2] == ("leaps", 0.3)  # beyond k: kept
    assert rerank_hits(hits, np.zeros(0), contours.get, "cosine") == hits  # nothing pitched: unchanged
    out = rerank_hits(hits, track, contours.get, "euclidean", MelodyRerankConfig(k=3))
    half_sq = np.array([0.1, 0.2, 0.3]) ** 2 / 2  # Euclidean → 1 − cos on unit vectors, then standardised
    assert out[0] == ("leaps", pytest.approx((half_sq[2] - half_sq.mean()) / half_sq.std()))  # + 0 contour distance
    assert np.allclose(spatial_score(np.array([1.0, 2.0, 3.0]), "cosine"), [-1.2247449, 0.0, 1.2247449])
    assert np.allclose(spatial_score(np.array([10.0, 20.0, 30.0]), "cosine"), [-1.2247449, 0.0, 1.2247449])  # scale-free
    assert spatial_score(np.array([0.4]), "cosine").tolist() == [0.0]


def test_rerank_ranks_agrees_with_rerank_hits():
    rng = np.random.default_rng(3)
    seqs = [note_contour(_melody(rng.integers(55, 75, 8))) for _ in range(12)]
    tracks = [s + rng.normal(0, 0.2, len(s)).astype(np.float32) for s in seqs]
    d = rng.uniform(0.2, 1.0, (12, 12))
    cfg = MelodyRerankConfig(k=5, weight=2.0)
    ranks = rerank_ranks(d, tracks, seqs, "cosine", cfg)
    for i in range(12):
        order = np.argsort(d[i], kind="stable")
        hits = rerank_hits([(int(j), d[i, j]) for j in order], tracks[i], lambda j: seqs[j], "cosine", cfg)
        assert [j for j, _ in hits].index(i) + 1 == ranks[i]
    plain = rerank_ranks(d, tracks, seqs, "cosine", MelodyRerankConfig(k=5, weight=0.0))
    assert np.mean(ranks == 1) > np.mean(plain == 1)


class _Folder:
    """The two things dataset_pitch_tracks reads of a Dataset."""

    def __init__(self, root, waves):
        self.root, self.waves = root, waves
        self.samples = [type("S", (), {"sample_id": k})() for k in waves]

    def load_audio(self, sid):
        path = self.root / "audio" / f"{sid}.flac"
        data, sr = soundfile.read(str(path), dtype="float32")
        return data, sr


def _folder(tmp_path, n=5):
    synth = BuiltinRenderer(16000)
    (tmp_path / "audio").mkdir()
    ids = []
    for i in range(n):
        sid = f"s{i}"
        soundfile.write(str(tmp_path / "audio" / f"{sid}.flac"), synth.render(_melody([60 + i, 64, 67, 72])), 16000)
        ids.append(sid)
    return _Folder(tmp_path, dict.fromkeys(ids))


def test_dataset_tracks_are_cached_resumed_and_survive_a_broken_file(tmp_path, monkeypatch):
    folder = _folder(tmp_path)
    (tmp_path / "audio" / "s3.flac").write_bytes(b"not audio")
    monkeypatch.setattr(pt, "SAVE_EVERY", 2)
    cancel, seen = CancelToken(), []

    def progress(p):
        seen.append(p.done)
        if p.done == 3:
            cancel.set()

    with pytest.raises(Cancelled):
        dataset_pitch_tracks(folder, progress=progress, cancel=cancel)
    partial = tmp_path / "features" / "pitch-tracks" / "v1.partial.npz"
    assert partial.is_file() and not (tmp_path / "features" / "pitch-tracks" / "v1.npz").exists()
    seen.clear()
    tracks = dataset_pitch_tracks(folder, progress=lambda p: seen.append(p.done))
    assert len(seen) == 3  # s0, s1 came from the partial file; s2, s3, s4 were computed
    assert len(tracks["s3"]) == 0 and all(len(tracks[s]) > 10 for s in ("s0", "s1", "s2", "s4"))
    assert (tmp_path / "features" / "pitch-tracks" / "v1.npz").is_file() and not partial.exists()
    assert cached_feature_files(tmp_path) == []  # never mistaken for a FeatureSet
    assert abs(np.median(tracks["s2"][:4]) - 62) < 0.5
    seen.clear()
    again = dataset_pitch_tracks(folder, ["s0", "s4"], progress=lambda p: seen.append(p.done))
    assert seen == [] and np.array_equal(again["s4"], tracks["s4"])
    seen.clear()
    dataset_pitch_tracks(folder, ["s3"], progress=lambda p: seen.append(p.done))
    assert seen == [1]  # the unreadable file is not cached: read again once repaired


def test_reranker_orders_only_audio_and_sheet():
    contours = {k: note_contour(v) for k, v in MELODIES.items()}
    tracks = dict(contours)
    rr = MelodyReranker.from_tables(tracks, contours, "cosine", MelodyRerankConfig(k=3))
    hits = [("rising", 0.1), ("falling", 0.2), ("leaps", 0.3)]
    assert rr.applies("audio", "sheet") and rr.applies("sheet", "audio") and not rr.applies("audio", "lyrics")
    assert rr.rerank("audio", "lyrics", hits, rr.query_sequence("audio", "leaps")) == hits
    assert rr.rerank("audio", "sheet", hits, rr.query_sequence("audio", "leaps"))[0][0] == "leaps"
    assert rr.rerank("sheet", "audio", hits, rr.query_sequence("sheet", "falling"))[0][0] == "falling"
    assert len(rr.query_sequence("audio", "unknown")) == 0


def test_any_key_orders_the_whole_library_by_key_free_pitch():
    cfg = MelodyRerankConfig.choose(any_key=True)
    assert cfg == MelodyRerankConfig.for_any_key() and cfg.k == 0 and cfg.any_key
    assert MelodyRerankConfig.choose(False) == MelodyRerankConfig()
    assert cfg.fetch(10, 5000) == 5000 and MelodyRerankConfig().fetch(10, 5000) == 100
    contours = {k: note_contour(v) for k, v in MELODIES.items()}
    sung = contours["leaps"] - 4  # the same melody a major third lower
    # the learned space ranks the transposed recording's sheet last, far behind
    hits = [("rising", 0.1), ("falling", 0.2), ("leaps", 0.9)]
    assert rerank_hits(hits, sung, contours.get, "cosine", cfg)[0][0] == "leaps"
    assert rerank_hits(hits, sung, contours.get, "cosine", MelodyRerankConfig(k=0))[0][0] != "leaps"  # key-exact


class _Index:
    """What MelodyReranker asks of a RetrievalIndex: its length and nearest-first results."""

    def __init__(self, hits):
        self.hits, self.asked = hits, []

    def __len__(self):
        return 3

    def query_sample(self, sid, source, target, k):
        self.asked.append(k)
        return self.hits[:k]

    def query(self, vector, target, k, source=None):
        self.asked.append(k)
        return self.hits[:k]


def test_library_items_are_always_compared_in_their_own_key():
    contours = {k: note_contour(v) for k, v in MELODIES.items()}
    rr = MelodyReranker.from_tables(dict(contours), contours, "cosine", MelodyRerankConfig.for_any_key())
    index = _Index([("rising", 0.1), ("falling", 0.2), ("leaps", 0.3)])
    assert rr.query_sample(index, "falling", "audio", "sheet", 2)[0][0] == "falling"
    assert index.asked == [100]  # the key-exact top k, not the whole library
    index.asked.clear()
    assert rr.query_vector(index, None, "audio", "sheet", 2, contours["falling"] + 2)[0][0] == "falling"
    assert index.asked == [3]  # a new recording in any key: the whole library


def test_rerank_hits_reports_each_candidate_and_stops_when_cancelled():
    contours = {k: note_contour(v) for k, v in MELODIES.items()}
    hits = [("rising", 0.1), ("falling", 0.2), ("leaps", 0.3)]
    seen = []
    rerank_hits(hits, contours["leaps"], contours.get, "cosine", MelodyRerankConfig(k=0),
                progress=lambda p: seen.append((p.stage, p.done, p.total)))
    assert seen == [("melody", 1, 3), ("melody", 2, 3), ("melody", 3, 3)]
    cancel = CancelToken()
    cancel.set()
    with pytest.raises(Cancelled):
        rerank_hits(hits, contours["leaps"], contours.get, "cosine", MelodyRerankConfig(k=0), cancel=cancel)
