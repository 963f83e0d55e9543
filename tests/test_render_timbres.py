"""Renderings the user chooses: a SoundFont and a program at build time, a split rendered again for evaluation."""
from __future__ import annotations

import json

import numpy as np
import pytest

from model.render.audio import fluidsynth_available, held_out_soundfont

pytestmark = pytest.mark.skipif(not fluidsynth_available()[0], reason="FluidSynth not available")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from model.data.dataset import BuildConfig, build_dataset
    out = tmp_path_factory.mktemp("timbres") / "m21"
    return build_dataset(BuildConfig(source="music21-corpus", path=None, out=str(out), limit=3, workers=1,
                                     audio_renderer="fluidsynth", program=71, display_sheets=False))


def test_build_records_the_chosen_program(built):
    manifest = json.loads((built.root / "manifest.json").read_text())
    assert manifest["config"]["program"] == 71 and "soundfont" not in manifest["config"]
    audio = manifest["renderers"]["audio"]
    assert audio["program"] == 71 and audio["version"].endswith("TimGM6mb.sf2 program 71")


def test_default_build_settings_are_unchanged():
    from model.data.dataset import BuildConfig
    data = BuildConfig(source="music21-corpus", path=None, out="x").to_json()
    assert "soundfont" not in data and "program" not in data  # earlier manifests compare equal


def test_render_split_in_a_held_out_timbre(built, tmp_path):
    from model.cli import main
    sf2 = held_out_soundfont()
    if sf2 is None:
        pytest.skip("FluidR3_GM absent (apt-get install fluid-soundfont-gm)")
    out = tmp_path / "flute"
    assert main(["dataset", "render-audio", str(built.root), "--split", "all", "--soundfont", str(sf2),
                 "--program", "73", "--noise-snr", "20", "--out", str(out), "--quiet"]) == 0
    from model.data.dataset import Dataset
    ds = Dataset.open(out)
    assert [s.sample_id for s in ds.samples] == [s.sample_id for s in built.samples]
    assert ds.content_hash != built.content_hash
    audio = ds.renderers["audio"]
    assert audio["program"] == 73 and audio["noise_snr_db"] == 20.0 and "FluidR3_GM" in audio["version"]
    sid = ds.samples[0].sample_id
    a, sr = ds.load_audio(sid)
    b, _ = built.load_audio(sid)
    assert sr == 16000 and a.shape == b.shape and not np.allclose(a, b, atol=0.05)
    assert ds.sheet_path(sid).is_file()  # sheets linked from the original
    # hard links (or copies), not symlinks: the new dataset stays whole if the original moves
    assert not ds.sheet_path(sid).is_symlink() and ds.sheet_path(sid).read_bytes() == built.sheet_path(sid).read_bytes()


def test_bad_program_and_soundfont_are_refused(tmp_path, capsys):
    from model.cli import main
    assert main(["dataset", "build", "--source", "music21-corpus", "--out", str(tmp_path / "x"),
                 "--program", "128"]) == 2
    assert "--program 128: a General MIDI program is 0-127" in capsys.readouterr().err
    assert main(["dataset", "build", "--source", "music21-corpus", "--out", str(tmp_path / "x"),
                 "--soundfont", str(tmp_path / "none.sf2")]) == 2
    assert "none.sf2: no such file" in capsys.readouterr().err


def test_render_split_transposed_plays_the_same_notes_higher(built, tmp_path, capsys):
    """--transpose 3: every note sounds 3 semitones higher; the sheets and the manifest's notes stay as they were."""
    from model.cli import main
    from model.data.dataset import Dataset
    from model.features.tokens.pitch_track import pitch_track
    from model.search.melody_rerank import contour_distance, note_contour
    out = tmp_path / "up3"
    assert main(["dataset", "render-audio", str(built.root), "--split", "all", "--transpose", "3",
                 "--out", str(out), "--quiet"]) == 0
    ds = Dataset.open(out)
    assert ds.renderers["audio"]["transpose"] == 3
    sid = ds.samples[0].sample_id
    assert [n.pitch for n in ds.sample(sid).notes] == [n.pitch for n in built.sample(sid).notes]
    track, notes = pitch_track(*ds.load_audio(sid)), note_contour(ds.sample(sid).notes)
    assert contour_distance(track, notes + 3) < 0.2 < 1.0 < contour_distance(track, notes)
    assert main(["dataset", "render-audio", str(built.root), "--transpose", "30", "--out", str(tmp_path / "x")]) == 2
    assert "--transpose 30: transpose by at most two octaves" in capsys.readouterr().err
