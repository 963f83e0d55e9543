"""Fuzzing every file reader a user can point UGAAR at.

Each reader gets random bytes, a valid file cut short or with bytes
overwritten, and content of the right kind with wrong structure (JSON with
wrong types, an ``.npz`` with the right names and wrong arrays, a checkpoint
holding the wrong objects).  The only acceptable outcomes are success, or the
project's own error (:class:`model.errors.UgaarError`, whose subclasses
include ``SourceError`` and ``DatasetError``) with a one-line message that
names the file.  Any other exception is a reader that lets a library's error
through, which the CLI would report as a bug and the window as a traceback.

The example budget is fixed and small (30 per reader, no deadline) so the
module runs in well under a minute; ``derandomize`` derives the examples
from the test names, so a failure repeats.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
import wave
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.errors import UgaarError

# UGAAR_FUZZ_EXAMPLES=500 for a longer hunt; the suite's default stays small
FUZZ = settings(max_examples=int(os.environ.get("UGAAR_FUZZ_EXAMPLES", "30")), deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_DIR = Path(tempfile.mkdtemp(prefix="ugaar-fuzz-"))


# ------------------------------------------------------------------ harness
def check_reader(read: Callable[[Path], Any], path: Path) -> None:
    """``read(path)`` succeeds or raises a one-line UgaarError naming ``path``."""
    try:
        read(path)
    except UgaarError as exc:
        message = str(exc)
        assert str(path) in message, f"message does not name the file: {message!r}"
        assert "\n" not in message, message
    # anything else propagates and fails the test, with hypothesis's minimal example


def write(name: str, data: bytes) -> Path:
    path = _DIR / name
    path.write_bytes(data)
    return path


def mutations(valid: bytes) -> st.SearchStrategy[bytes]:
    """A valid file cut short, with bytes overwritten, or with random bytes appended."""
    n = len(valid)
    cut = st.integers(0, n).map(lambda i: valid[:i])
    flipped = st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 255)), min_size=1, max_size=8).map(
        lambda edits: bytes(_overwrite(valid, edits)))
    tail = st.binary(min_size=1, max_size=256).map(lambda extra: valid + extra)
    header_only = st.binary(max_size=512).map(lambda rest: valid[:min(n, 32)] + rest)
    return st.one_of(cut, flipped, tail, header_only)


def _overwrite(data: bytes, edits: list[tuple[int, int]]) -> bytearray:
    out = bytearray(data)
    for i, b in edits:
        out[i] = b
    return out


def any_bytes_for(valid: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=2048), mutations(valid))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


# ------------------------------------------------------------- valid seeds
def _npy_song() -> bytes:
    rows = [[[0.0 if i == 0 else 0.5, 0.4, 440.0, 90.0] for i in range(4)],
            [[60.0 + i, 2.0, 0.0] for i in range(4)], [f"la{i}" for i in range(4)]]
    array = np.empty((1, 3), dtype=object)
    for i, row in enumerate(rows):
        array[0, i] = row
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def _midi() -> bytes:
    import mido

    mf = mido.MidiFile(ticks_per_beat=96)
    track = mido.MidiTrack()
    mf.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    for i, text in enumerate(["Hel", "lo ", "dar", "ling "]):
        track.append(mido.MetaMessage("lyrics", text=text, time=0))
        track.append(mido.Message("note_on", note=64 + i, velocity=90, time=0))
        track.append(mido.Message("note_off", note=64 + i, velocity=0, time=48))
    buf = io.BytesIO()
    mf.save(file=buf)
    return buf.getvalue()


MUSICXML = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE score-partwise PUBLIC "-//Recordare//DTD MusicXML 3.1 Partwise//EN"
 "http://www.musicxml.org/dtds/partwise.dtd">
<score-partwise version="3.1"><part-list><score-part id="P1"><part-name>Voice</part-name></score-part>
</part-list><part id="P1"><measure number="1"><attributes><divisions>1</divisions>
<time><beats>4</beats><beat-type>4</beat-type></time></attributes>
<note><pitch><step>C</step><octave>4</octave></pitch><duration>1</duration><type>quarter</type>
<lyric><syllabic>begin</syllabic><text>Hal</text></lyric></note>
<note><pitch><step>D</step><octave>4</octave></pitch><duration>1</duration><type>quarter</type>
<lyric><syllabic>end</syllabic><text>lo</text></lyric></note>
<note><pitch><step>E</step><octave>4</octave></pitch><duration>2</duration><type>half</type>
<lyric><syllabic>single</syllabic><text>there</text></lyric></note>
</measure></part></score-partwise>
"""


def _wav() -> bytes:
    buf = io.BytesIO()
    t = np.arange(1600) / 16000.0
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def _png() -> bytes:
    from PIL import Image

    img = Image.fromarray((np.arange(24 * 40) % 255).astype(np.uint8).reshape(24, 40), mode="L")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _feature_set_npz() -> bytes:
    from model.ugaar.synthetic import synthetic_features

    path = _DIR / "seed-features.npz"
    synthetic_features(12, seed=0).save(path)
    return path.read_bytes()


def _embeddings_npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, sample_ids=np.array(["a", "b"]), splits=np.array(["test", "test"]),
             audio=np.zeros((2, 4), np.float32), sheet=np.ones((2, 4), np.float32),
             lyrics=np.eye(2, 4, dtype=np.float32))
    return buf.getvalue()


def _checkpoint() -> bytes:
    import torch

    from model.validate import CHECKPOINT_KEYS

    state = {k: 0 for k in CHECKPOINT_KEYS}
    state.update(config={"method": "baseline"}, method={"w": torch.zeros(3)}, history="[]")
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


# ----------------------------------------------------------------- readers
def read_npy(path: Path) -> None:
    from model.sources.npy_release import read_song

    read_song(str(path))


def read_midi(path: Path) -> None:
    from model.sources.midi_file import read_song

    read_song(str(path))


def read_score(path: Path) -> None:
    from model.sources.score_file import read_song

    read_song(str(path))


def read_audio(path: Path) -> None:
    from model.validate import check_audio_query

    check_audio_query(path)


def read_png(path: Path) -> None:
    from model.features.frontend import load_grey

    load_grey(path)


def read_feature_set(path: Path) -> None:
    from model.validate import load_feature_set

    load_feature_set(path)


def read_embeddings(path: Path) -> None:
    from model.validate import load_npz

    load_npz(path, ("sample_ids", "splits"), what="a run's embeddings (.npz)")


def read_checkpoint(path: Path) -> None:
    from model.validate import CHECKPOINT_KEYS, load_checkpoint

    load_checkpoint(path, CHECKPOINT_KEYS)


READERS = {  # name: (file name, reader, valid seed)
    "npy": ("song.npy", read_npy, _npy_song),
    "midi": ("song.mid", read_midi, _midi),
    "kar": ("song.kar", read_midi, _midi),
    "musicxml": ("song.musicxml", read_score, lambda: MUSICXML),
    "audio": ("query.wav", read_audio, _wav),
    "png": ("sheet.png", read_png, _png),
    "features": ("features.npz", read_feature_set, _feature_set_npz),
    "embeddings": ("embeddings.npz", read_embeddings, _embeddings_npz),
    "checkpoint": ("checkpoint.pt", read_checkpoint, _checkpoint),
}


@pytest.mark.parametrize("kind", list(READERS))
def test_valid_seed_is_read(kind):
    """The fuzzers start from files the readers accept: otherwise they test nothing."""
    name, read, seed = READERS[kind]
    read(write(name, seed()))


@pytest.mark.parametrize("kind", list(READERS))
def test_damaged_files_give_the_projects_error(kind):
    name, read, seed = READERS[kind]
    valid = seed()

    @FUZZ
    @given(any_bytes_for(valid))
    def run(data: bytes) -> None:
        check_reader(read, write(name, data))

    run()


# ------------------------------------------------ right kind, wrong content
@FUZZ
@given(st.lists(json_values, min_size=0, max_size=4), st.sampled_from([(1, 3), (1, 4), (3,), (1, 1)]))
def test_npy_with_wrong_structure(rows, shape):
    array = np.empty(shape, dtype=object)
    flat = array.reshape(-1)
    for i in range(flat.size):
        flat[i] = rows[i % len(rows)] if rows else None
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    check_reader(read_npy, write("song.npy", buf.getvalue()))


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["lyrics", "text", "note_on", "note_off", "tempo"]),
                          st.integers(0, 127), st.integers(0, 400),
                          st.text(st.characters(max_codepoint=255), max_size=6)), max_size=20),
       st.integers(1, 960))
def test_midi_with_strange_events(events, ticks):
    import mido

    mf = mido.MidiFile(ticks_per_beat=ticks)
    track = mido.MidiTrack()
    mf.tracks.append(track)
    for kind, value, dt, text in events:
        if kind in ("lyrics", "text"):
            track.append(mido.MetaMessage(kind, text=text, time=dt))
        elif kind == "tempo":
            track.append(mido.MetaMessage("set_tempo", tempo=1 + value * 10000, time=dt))
        else:
            track.append(mido.Message(kind, note=value, velocity=value if kind == "note_on" else 0, time=dt))
    buf = io.BytesIO()
    mf.save(file=buf)
    check_reader(read_midi, write("song.mid", buf.getvalue()))


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["C", "D", "H", "", "Z"]), st.integers(-3, 12),
                          st.sampled_from(["1", "0", "-2", "x", "1e9", ""]), st.text(max_size=5)),
                max_size=8))
def test_musicxml_with_wrong_values(notes):
    from xml.sax.saxutils import escape

    body = "".join(f"<note><pitch><step>{escape(s)}</step><octave>{o}</octave></pitch>"
                   f"<duration>{escape(d)}</duration><lyric><text>{escape(t)}</text></lyric></note>"
                   for s, o, d, t in notes)
    text = MUSICXML.decode().split("<measure number=\"1\">")[0] + f"<measure number=\"1\">{body}</measure></part></score-partwise>"
    check_reader(read_score, write("song.musicxml", text.encode("utf-8")))


@FUZZ
@given(st.sampled_from(["PCM_16", "FLOAT", "PCM_U8"]), st.integers(1, 4), st.integers(0, 64),
       st.sampled_from([1, 8000, 44100, 192000]), st.sampled_from([0.0, 1e-9, 0.5, np.nan, np.inf]))
def test_audio_with_odd_shapes_and_values(subtype, channels, frames, rate, value):
    import soundfile

    data = np.full((frames, channels), value, dtype=np.float32)
    path = _DIR / "query.wav"
    soundfile.write(str(path), data, rate, subtype=subtype, format="WAV")
    check_reader(read_audio, path)


@FUZZ
@given(st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "I;16"]), st.integers(1, 40), st.integers(1, 40))
def test_png_in_every_mode(mode, width, height):
    from PIL import Image

    img = Image.new(mode, (width, height))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    check_reader(read_png, write("sheet.png", buf.getvalue()))


def _manifest_variants() -> st.SearchStrategy[Any]:
    from model.data.dataset import FORMAT_NAME, FORMAT_VERSION

    base = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION}
    with_fields = st.dictionaries(st.sampled_from(["samples", "songs", "config", "content_hash", "splits",
                                                   "renderers", "name"]), json_values, max_size=4)
    return st.one_of(json_values, with_fields.map(lambda extra: {**base, **extra}))


@FUZZ
@given(st.data())
def test_manifest_json(data):
    from model.data.dataset import Dataset

    root = _DIR / "dataset"
    root.mkdir(exist_ok=True)
    manifest = data.draw(st.one_of(_manifest_variants().map(lambda v: json.dumps(v).encode()),
                                   st.binary(max_size=256)))
    (root / "manifest.json").write_bytes(manifest)
    check_reader(Dataset.open, root)


@FUZZ
@given(st.dictionaries(st.sampled_from(["method", "epochs", "seed", "batch_size", "g_hidden", "metric",
                                        "inputs", "lr_g", "temperature_g", "device", "epoch", "features_path"]),
                       json_values, max_size=5) | json_values)
def test_config_json(value):
    from model.validate import load_run_config

    run = _DIR / "run"
    run.mkdir(exist_ok=True)
    (run / "config.json").write_text(json.dumps(value), encoding="utf-8")
    check_reader(load_run_config, run)


_arrays = st.one_of(
    st.just(np.zeros((0,), np.float32)), st.just(np.array("text")), st.just(np.ones((3, 2), np.float64)),
    st.just(np.array(["a", "b", "c"])), st.just(np.full((3, 4), np.nan, np.float32)),
    st.just(np.arange(6, dtype=np.int8).reshape(2, 3)), st.just(np.array([b"x", b"y"])),
    st.just(np.array("{not json")), st.just(np.array('{"a": 1}')))


@FUZZ
@given(st.dictionaries(st.sampled_from(["sample_ids", "song_ids", "splits", "audio", "sheet", "lyrics", "meta",
                                        "tokens_audio", "lengths_audio"]), _arrays, max_size=9))
def test_feature_set_npz_with_wrong_arrays(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    check_reader(read_feature_set, write("features.npz", buf.getvalue()))


@FUZZ
@given(st.dictionaries(st.sampled_from(["config", "method", "epoch", "step_in_epoch", "global_step",
                                        "best_score", "best_epoch", "history", "n_events", "opt_g"]),
                       json_values, max_size=10)
       | json_values)
def test_checkpoint_holding_wrong_objects(state):
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    check_reader(read_checkpoint, write("checkpoint.pt", buf.getvalue()))


def test_a_pickled_object_is_refused_not_run():
    """A checkpoint that would run code when unpickled is named and refused (weights_only)."""
    marker = _DIR / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = write("checkpoint.pt", pickle.dumps({"method": Evil()}))
    with pytest.raises(UgaarError, match="checkpoint.pt"):
        read_checkpoint(path)
    assert not marker.exists()


def test_npy_memo_index_that_exhausted_memory():
    """A damaged LMD .npy the fuzzer found, which once ended the Python process.

    One byte turns a MEMOIZE into a LONG_BINPUT whose index is the next four
    bytes (about 1.2e9): the C unpickler sized its memo table for it, asked
    for about 10 GB and the OOM killer ended the run.  Read in a child with a
    memory cap, so a regression fails this test (a MemoryError) instead of the run.
    """
    import subprocess
    import sys

    valid = _npy_song()
    at = valid.index(b"\x8c\x01|\x94")  # the object dtype's byte order, then MEMOIZE
    path = write("crash.npy", valid[:at + 3] + b"r" + valid[at + 4:])
    code = ("import resource\n"
            "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
            "from model.sources import SourceError\n"
            "from model.sources.npy_release import load_object_array\n"
            "try:\n"
            f"    load_object_array({str(path)!r})\n"
            "except SourceError as exc:\n"
            "    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith(f"{path}: corrupt or truncated pickle"), out.stdout
    assert "MemoryError" not in out.stdout
