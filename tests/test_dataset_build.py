"""Build tiny three-modality datasets from every source kind, with real renderers."""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from model.data.dataset import BuildConfig, Dataset, DatasetError, build_dataset

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------- helpers

def _check_modalities(ds: Dataset, n_check: int = 4) -> None:
    """Audio length and loudness, PNG size and ink, for a few samples of ``ds``."""
    from PIL import Image
    sr_expected = ds.renderers["audio"]["sample_rate"]
    for sample in ds.samples[:n_check]:
        audio, sr = ds.load_audio(sample.sample_id)
        assert sr == sr_expected == 16000
        span = max(n.onset + n.duration for n in sample.notes) - sample.notes[0].onset
        # the renderer adds a short release tail after the last note
        assert span * sr <= len(audio) <= (span + 3.0) * sr, (len(audio) / sr, span)
        assert np.isfinite(audio).all()
        assert np.abs(audio).max() > 0.05
        assert np.sqrt(np.mean(audio ** 2)) > 0.005  # not silent
        pngs = [ds.sheet_path(sample.sample_id)]
        if ds.config["display_sheets"]:
            pngs.append(ds.display_sheet_path(sample.sample_id))
        else:
            assert ds.display_sheet_path(sample.sample_id) is None
        for png in pngs:
            assert png is not None and png.is_file()
            img = np.asarray(Image.open(png).convert("L"))
            h, w = img.shape
            assert w >= 100 and h >= 20, img.shape
            ink = (img < 128).mean()
            assert 0.002 < ink < 0.5, ink  # something engraved, not all black
        assert len(sample.notes) == 20
        assert all(n.syllable for n in sample.notes)


def _splits_disjoint_by_song(ds: Dataset) -> None:
    owner: dict[str, str] = {}
    for s in ds.samples:
        assert owner.setdefault(s.song_id, s.split) == s.split
    ids = [s.sample_id for s in ds.samples]
    assert len(ids) == len(set(ids))
    by_split = [set(ds.split_ids(k)) for k in ("train", "val", "test")]
    assert sum(len(x) for x in by_split) == len(ids)


# ---------------------------------------------------------------- LMD release

@pytest.fixture(scope="module")
def lmd_dataset(lmd_release, tmp_path_factory):
    out = tmp_path_factory.mktemp("lmd30")
    seen = []
    ds = build_dataset(BuildConfig(source="lmd-npy", path=str(lmd_release), out=str(out),
                                   limit=30, workers=1, display_sheets=False),
                       progress=seen.append)
    return ds, seen


def test_lmd_30_songs(lmd_dataset):
    ds, seen = lmd_dataset
    manifest = ds.manifest
    assert manifest["report"]["items"] == 30
    songs = manifest["songs"]
    # paper rules: at most two samples per song
    assert all(row["n_samples"] <= 2 for row in songs)
    assert len(ds) == sum(row["n_samples"] for row in songs)
    assert 40 <= len(ds) <= 60, len(ds)
    w = manifest["report"]["windows"]
    assert w["kept"] == len(ds)
    _splits_disjoint_by_song(ds)
    _check_modalities(ds)
    # progress reached the end of every stage
    last = {p.stage: p for p in seen}
    for stage in ("parse", "audio", "sheet", "manifest"):
        assert last[stage].done == last[stage].total > 0
    # renderers are recorded and shown
    assert ds.renderers["audio"]["name"] in ("fluidsynth", "builtin")
    assert ds.renderers["sheet"]["version"]
    summary = ds.summary()
    assert sum(summary["samples_per_split"].values()) == len(ds)
    assert summary["samples_per_source"] == {"lmd-npy": len(ds)}


def test_lmd_reopen_and_lookup(lmd_dataset):
    ds, _ = lmd_dataset
    again = Dataset.open(ds.root)
    assert again.content_hash == ds.content_hash
    assert [s.sample_id for s in again.samples] == [s.sample_id for s in ds.samples]
    first = again.samples[0]
    assert again.sample(first.sample_id) == first
    assert again.audio_path(first.sample_id) == ds.root / "audio" / f"{first.sample_id}.flac"
    xs = again.note_x(first.sample_id)
    assert xs is None or (len(xs) == 20 and xs == sorted(xs))
    with pytest.raises(KeyError):
        again.sample("nope")


def test_cli_info_prints_counts(lmd_dataset, capsys):
    from model.cli import main
    ds, _ = lmd_dataset
    assert main(["dataset", "info", str(ds.root)]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "test" in out and ds.renderers["audio"]["name"] in out
    assert f"{len(ds)} samples" in out


def test_open_rejects_non_datasets(tmp_path):
    with pytest.raises(DatasetError, match=str(tmp_path)):
        Dataset.open(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="unreadable"):
        Dataset.open(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(DatasetError, match="not a UGAAR dataset"):
        Dataset.open(tmp_path)


# ---------------------------------------------------------------- music21 corpus

def test_music21_default_subset(tmp_path):
    ds = build_dataset(BuildConfig(source="music21-corpus", path=None, out=str(tmp_path),
                                   limit=15, workers=2, display_sheets=False))
    assert ds.manifest["report"]["items"] == 15
    assert len(ds) >= 5
    assert {s.source for s in ds.samples} == {"music21-corpus"}
    _splits_disjoint_by_song(ds)
    _check_modalities(ds, n_check=2)


# ---------------------------------------------------------------- MIDI and MusicXML

SYLLABLES = ["Twin", "kle", "twin", "kle", "lit", "tle", "star", "how", "I", "won", "der",
             "what", "you", "are", "up", "a", "bove", "the", "world", "so", "high", "like",
             "a", "dia", "mond", "in", "the", "sky"]


def _write_lyric_midi(path: Path, n_notes: int, with_lyrics: bool = True) -> None:
    import pretty_midi
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=0, name="melody")
    for i in range(n_notes):
        start = i * 0.5
        inst.notes.append(pretty_midi.Note(velocity=90, pitch=60 + (i * 5) % 12,
                                           start=start, end=start + 0.45))
        if with_lyrics:
            pm.lyrics.append(pretty_midi.Lyric(SYLLABLES[i % len(SYLLABLES)], start))
    pm.instruments.append(inst)
    pm.write(str(path))


def _write_lyric_musicxml(path: Path, n_notes: int) -> None:
    from music21 import meter, note, stream
    part = stream.Part()
    part.append(meter.TimeSignature("4/4"))
    for i in range(n_notes):
        n = note.Note(62 + (i * 3) % 10, quarterLength=1.0)
        n.lyric = SYLLABLES[i % len(SYLLABLES)]
        part.append(n)
    score = stream.Score([part])
    score.write("musicxml", fp=str(path))


def test_midi_with_lyric_events(tmp_path):
    src = tmp_path / "midi"
    src.mkdir()
    _write_lyric_midi(src / "song_a.mid", 45)   # two samples
    _write_lyric_midi(src / "song_b.mid", 25)   # one sample
    _write_lyric_midi(src / "no_lyrics.mid", 30, with_lyrics=False)
    (src / "garbage.mid").write_bytes(b"MThd\x00\x00\x00\x06not really midi")
    ds = build_dataset(BuildConfig(source="midi", path=str(src), out=str(tmp_path / "out")))
    assert len(ds) == 3
    assert sorted(row["n_samples"] for row in ds.songs) == [1, 2]
    assert ds.samples[0].syllables[:3] == ["Twin", "kle", "twin"]
    skipped = {Path(s["path"]).name: s["reason"] for s in ds.report["skipped"]}
    assert set(skipped) == {"no_lyrics.mid", "garbage.mid"}, skipped
    assert "lyric" in skipped["no_lyrics.mid"].lower()
    _check_modalities(ds, n_check=3)


def test_all_windows_option(tmp_path):
    src = tmp_path / "midi"
    src.mkdir()
    _write_lyric_midi(src / "long.mid", 65)
    paper = build_dataset(BuildConfig(source="midi", path=str(src), out=str(tmp_path / "paper"),
                                      display_sheets=False))
    every = build_dataset(BuildConfig(source="midi", path=str(src), out=str(tmp_path / "all"),
                                      display_sheets=False, all_windows=True))
    assert [s.start for s in paper.samples] == [0, 20]
    assert [s.start for s in every.samples] == [0, 20, 40]
    assert every.samples[2].syllables[0] == SYLLABLES[40 % len(SYLLABLES)]


def test_musicxml_with_lyrics(tmp_path):
    src = tmp_path / "xml"
    src.mkdir()
    _write_lyric_musicxml(src / "tune.musicxml", 24)
    (src / "broken.musicxml").write_text("<?xml version='1.0'?><score-partwise><part>")
    ds = build_dataset(BuildConfig(source="musicxml", path=str(src), out=str(tmp_path / "out")))
    assert len(ds) == 1
    assert ds.samples[0].syllables[:4] == ["Twin", "kle", "twin", "kle"]
    assert ds.samples[0].notes[1].onset > ds.samples[0].notes[0].onset
    skipped = [Path(s["path"]).name for s in ds.report["skipped"]]
    assert skipped == ["broken.musicxml"]
    _check_modalities(ds, n_check=1)


# ---------------------------------------------------------------- bad .npy files

class _Evil:
    """Unpickling this would create a marker file (must never happen)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _good_npy_array(src: Path) -> np.ndarray:
    return np.load(src, allow_pickle=True)


def test_bad_npy_files_are_reported_and_good_ones_built(lmd_release, tmp_path):
    good = sorted((Path(lmd_release) / "Syllable_Parsing").glob("*.npy"))[:3]
    folder = tmp_path / "release" / "Syllable_Parsing"
    folder.mkdir(parents=True)
    for f in good:
        shutil.copy(f, folder / f.name)
    data = good[0].read_bytes()
    (folder / "truncated.npy").write_bytes(data[: len(data) // 2])
    (folder / "empty.npy").write_bytes(b"")
    np.save(folder / "wrong_shape.npy", np.zeros((4, 4)))
    marker = tmp_path / "pwned"
    with open(folder / "evil.npy", "wb") as fh:
        # a valid .npy header for an object array followed by a code-running pickle
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "|O", "fortran_order": False, "shape": (1, 3)})
        pickle.dump(_Evil(str(marker)), fh, protocol=2)
    arr = _good_npy_array(good[1])
    cont = [list(row) for row in arr[0][0]]
    cont[3][1] = float("nan")
    nan_arr = np.empty((1, 3), dtype=object)
    nan_arr[0, 0], nan_arr[0, 1], nan_arr[0, 2] = cont, arr[0][1], arr[0][2]
    np.save(folder / "nan.npy", nan_arr, allow_pickle=True)
    # a folder named like a song file: unreadable even for root (chmod would not be)
    (folder / "unreadable.npy").mkdir()

    ds = build_dataset(BuildConfig(source="lmd-npy", path=str(tmp_path / "release"),
                                   out=str(tmp_path / "out"), display_sheets=False))
    assert not marker.exists(), "the pickle ran code"
    skipped = {Path(s["path"]).name: s["reason"] for s in ds.report["skipped"]}
    assert set(skipped) == {"truncated.npy", "empty.npy", "wrong_shape.npy", "evil.npy",
                            "nan.npy", "unreadable.npy"}, skipped
    assert all(len(reason) > 5 for reason in skipped.values())
    assert {s.song_id for s in ds.samples} == {f.stem for f in good}
    assert ds.display_sheet_path(ds.samples[0].sample_id) is None
    assert ds.sheet_path(ds.samples[0].sample_id).is_file()


def test_build_config_round_trips_through_the_manifest(lmd_dataset):
    ds, _ = lmd_dataset
    config = BuildConfig.from_json(ds.config)
    assert config.to_json() == ds.config
    assert config.limit == 30 and config.split_fractions == (0.8, 0.1, 0.1)
    assert type(config.cleaning).__name__ == "CleaningConfig"


def test_unknown_source_and_missing_path_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown source"):
        build_dataset(BuildConfig(source="wav", path=str(tmp_path), out=str(tmp_path / "o")))
    with pytest.raises(ValueError, match="no such"):
        build_dataset(BuildConfig(source="midi", path=str(tmp_path / "absent"),
                                  out=str(tmp_path / "o")))
