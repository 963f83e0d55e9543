"""The CLI's error contract: a bad argument or file gives one line on stderr and exit status 2.

Each row of ``CASES`` breaks one input the way a user does (a text file
passed as audio, a truncated checkpoint, a hand-edited config.json, ...)
and runs ``ugaar`` in-process.  A bug (an exception nobody expected) must
instead show its traceback under a line that says it is a bug; ``--debug``
shows the traceback of everything.  The run folder is a real one: a
baseline trained for one epoch on a tiny synthetic FeatureSet.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import mido
import numpy as np
import pytest
import soundfile
import torch

from model.cli import main
from model.cli.failures import BUG_LINE, REPORT_LINE
from model.errors import CorruptFileError, UgaarError
from model.ugaar import Run, RunConfig, train
from model.ugaar.synthetic import synthetic_features

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(run folder, FeatureSet .npz) of a 1-epoch baseline on 60 synthetic samples."""
    root = tmp_path_factory.mktemp("cli-errors")
    npz = root / "fs.npz"
    synthetic_features(60, seed=1, lyrics_dim=16).save(npz)
    from model.feature_set import FeatureSet
    cfg = RunConfig.for_method("baseline", epochs=1, batch_size=16, embed_dim=8, g_hidden=(16,),
                               features_path=str(npz))
    run = train(cfg, FeatureSet.load(npz), root / "run")
    assert run.status == "finished"
    return root / "run", npz


@dataclass
class Ctx:
    """Paths a row may break: a private copy of the run and of its FeatureSet."""

    run: Path
    npz: Path
    tmp: Path

    def truncate(self, path: Path) -> Path:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path

    def edit_config(self, **fields) -> None:
        path = self.run / "config.json"
        data = json.loads(path.read_text())
        data.update(fields)
        path.write_text(json.dumps(data))

    def text_file(self, name: str) -> Path:
        path = self.tmp / name
        path.write_text("these are my notes, not a recording\n")
        return path

    def wav(self, name: str, wave: np.ndarray) -> Path:
        path = self.tmp / name
        soundfile.write(str(path), wave.astype(np.float32), 16000)
        return path

    def midi(self, name: str, lyrics: bool, notes: bool) -> Path:
        mf = mido.MidiFile(ticks_per_beat=480)
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120)))
        for i in range(6):
            if lyrics:
                track.append(mido.MetaMessage("lyrics", text=f" la{i}", time=0 if i == 0 else 480))
            if notes:
                track.append(mido.Message("note_on", note=60 + i, velocity=80, time=0 if lyrics or i == 0 else 480))
                track.append(mido.Message("note_off", note=60 + i, velocity=0, time=240 if lyrics else 480))
        mf.tracks.append(track)
        path = self.tmp / name
        mf.save(str(path))
        return path


@pytest.fixture
def ctx(trained, tmp_path) -> Ctx:
    run_dir, npz = trained
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    fs = tmp_path / "fs.npz"
    shutil.copy(npz, fs)
    # the copy resumes from its own FeatureSet copy, so a row may move or break it
    state = json.loads((copy / "config.json").read_text())
    state["features_path"] = str(fs)
    (copy / "config.json").write_text(json.dumps(state))
    ckpt = torch.load(copy / "checkpoint.pt", weights_only=True)
    ckpt["config"]["features_path"] = str(fs)
    torch.save(ckpt, copy / "checkpoint.pt")
    return Ctx(copy, fs, tmp_path)


def after(_done: object, argv: list[str]) -> list[str]:
    """``argv``, once the breaking action in the first argument has run."""
    return argv


def _q(c: Ctx, *rest: str) -> list[str]:
    return ["query", str(c.run), *rest]


def _dataset_without_manifest(c: Ctx) -> Path:
    folder = c.tmp / "not-a-dataset"
    folder.mkdir()
    (folder / "song.mid").write_bytes(b"")
    return folder


def _no_checkpoint(c: Ctx) -> list[str]:
    (c.run / "checkpoint.pt").unlink()
    return ["train", "--resume", str(c.run)]


def _features_gone(c: Ctx) -> list[str]:
    c.npz.unlink()
    return ["train", "--resume", str(c.run)]


# (id, argv from a Ctx, substrings the one line must hold: the file or argument, and the problem)
CASES: list[tuple[str, Callable[[Ctx], list[str]], tuple[str, ...]]] = [
    # query inputs
    ("audio-not-audio", lambda c: _q(c, "--audio", str(c.text_file("notes.wav"))),
     ("--audio", "notes.wav", "not an audio file")),
    ("audio-silent", lambda c: _q(c, "--audio", str(c.wav("quiet.wav", np.zeros(16000)))),
     ("--audio", "quiet.wav", "no signal")),
    ("audio-no-samples", lambda c: _q(c, "--audio", str(c.wav("empty.wav", np.zeros(0)))),
     ("--audio", "empty.wav", "no audio samples")),
    ("audio-missing", lambda c: _q(c, "--audio", str(c.tmp / "gone.wav")), ("--audio", "gone.wav", "no such file")),
    ("audio-folder", lambda c: _q(c, "--audio", str(c.tmp)), ("--audio", "is a folder")),
    ("midi-not-midi", lambda c: _q(c, "--midi", str(c.text_file("tune.mid"))),
     ("--midi", "tune.mid", "not a readable MIDI file")),
    ("midi-no-lyrics", lambda c: _q(c, "--midi", str(c.midi("plain.mid", lyrics=False, notes=True))),
     ("--midi", "plain.mid", "no lyric events")),
    ("midi-no-notes", lambda c: _q(c, "--midi", str(c.midi("words.mid", lyrics=True, notes=False))),
     ("--midi", "words.mid", "notes")),
    ("sample-unknown", lambda c: _q(c, "--sample", "nope"), ("--sample nope", "no such sample")),
    ("sample-near-miss", lambda c: _q(c, "--sample", "s0000"), ("--sample s0000", "did you mean")),
    ("lyrics-empty", lambda c: _q(c, "--lyrics", ""), ("--lyrics", "empty")),
    ("lyrics-blank", lambda c: _q(c, "--lyrics", "   "), ("--lyrics", "empty")),
    ("lyrics-no-letters", lambda c: _q(c, "--lyrics", "1, 2, 3 ... !"), ("--lyrics", "no letters")),
    ("k-zero", lambda c: _q(c, "--sample", "s00000", "--k", "0"), ("--k", "at least 1")),
    ("source-is-target", lambda c: _q(c, "--sample", "s00000", "--source", "audio", "--target", "audio"),
     ("--source audio", "itself")),
    # run folders
    ("run-missing", lambda c: ["query", str(c.tmp / "nothing"), "--sample", "x"], ("nothing", "not a training run")),
    ("run-is-a-file", lambda c: ["query", str(c.npz), "--sample", "x"], ("fs.npz", "not a training run folder")),
    ("config-not-json", lambda c: after((c.run / "config.json").write_text("{epochs: 1"), _q(c, "--sample", "x")),
     ("config.json", "not valid JSON")),
    ("config-wrong-type", lambda c: after(c.edit_config(epochs="ten"), _q(c, "--sample", "x")),
     ("config.json", "'epochs'", "whole number")),
    ("config-unknown-field", lambda c: after(c.edit_config(epoch=3), _q(c, "--sample", "x")),
     ("config.json", "'epoch'", "did you mean 'epochs'")),
    ("config-bad-value", lambda c: after(c.edit_config(metric="manhattan"), _q(c, "--sample", "x")),
     ("config.json", "metric")),
    ("metrics-not-json", lambda c: after((c.run / "metrics.json").write_text("[1, 2"), ["evaluate", str(c.run)]),
     ("metrics.json", "not valid JSON")),
    ("embeddings-truncated-query", lambda c: after(c.truncate(c.run / "embeddings.npz"), _q(c, "--sample", "s00000")),
     ("embeddings.npz", "truncated")),
    ("embeddings-truncated-evaluate", lambda c: after(c.truncate(c.run / "embeddings.npz"), ["evaluate", str(c.run)]),
     ("embeddings.npz", "truncated")),
    ("embeddings-wrong-kind", lambda c: after(shutil.copy(c.text_file("x.txt"), c.run / "embeddings.npz"),
                    ["evaluate", str(c.run)]), ("embeddings.npz", "not a run's embeddings")),
    # resume
    ("resume-config-wrong-type", lambda c: after(c.edit_config(features_path=5), ["train", "--resume", str(c.run)]),
     ("config.json", "'features_path'", "string")),
    ("resume-checkpoint-truncated", lambda c: after(c.truncate(c.run / "checkpoint.pt"),
                                                  ["train", "--resume", str(c.run)]), ("checkpoint.pt", "truncated")),
    ("resume-no-checkpoint", _no_checkpoint, ("run", "nothing to resume")),
    ("resume-features-gone", _features_gone, ("fs.npz", "is gone", "--resume")),
    # training inputs
    ("train-midi-file", lambda c: ["train", str(c.midi("song.mid", lyrics=True, notes=True)), "--epochs", "1"],
     ("song.mid", "MIDI file, not a FeatureSet", "ugaar dataset build --source midi")),
    ("train-text-file", lambda c: ["train", str(c.text_file("fs.txt"))], ("fs.txt", "not a FeatureSet")),
    ("train-features-truncated", lambda c: after(c.truncate(c.npz), ["train", str(c.npz)]), ("fs.npz", "truncated")),
    ("train-not-a-dataset", lambda c: ["train", str(_dataset_without_manifest(c))],
     ("not-a-dataset", "no manifest.json")),
    ("train-missing", lambda c: ["train", str(c.tmp / "nowhere")], ("nowhere", "no such")),
    ("train-set-wrong-type", lambda c: ["train", str(c.npz), "--set", "epochs=ten"], ("--set", "'epochs'")),
    ("train-set-unknown", lambda c: ["train", str(c.npz), "--set", "lr=0.1"], ("--set", "'lr'", "did you mean")),
    # datasets
    ("dataset-info-file", lambda c: ["dataset", "info", str(c.npz)], ("fs.npz", "not a dataset folder")),
    ("dataset-info-missing", lambda c: ["dataset", "info", str(c.tmp / "gone")], ("gone", "no such dataset")),
    ("dataset-info-bad-manifest", lambda c: after((_dataset_without_manifest(c) / "manifest.json").write_text("{}"),
                                                ["dataset", "info", str(c.tmp / "not-a-dataset")]), ("not-a-dataset", "manifest")),
    ("evaluate-dataset-missing", lambda c: ["evaluate", str(c.run), "--dataset", str(c.tmp / "gone")],
     ("--dataset", "gone", "no such dataset")),
    ("features-not-a-dataset", lambda c: ["features", "extract", str(_dataset_without_manifest(c))],
     ("not-a-dataset", "no manifest.json")),
    ("features-onset-delta", lambda c: ["features", "extract", str(_dataset_without_manifest(c)), "--onset-delta",
                                        "-0.1"], ("--onset-delta", "[0, 1)", "-0.1")),
    ("features-onset-window", lambda c: ["features", "extract", str(_dataset_without_manifest(c)), "--onset-window",
                                         "0"], ("--onset-window", "≥ 1", "0")),
    ("build-missing-source", lambda c: ["dataset", "build", "--source", "midi", str(c.tmp / "none"),
                                        "--out", str(c.tmp / "ds"), "--quiet"], ("none",)),
]


@pytest.mark.parametrize("make,expected", [pytest.param(m, e, id=i) for i, m, e in CASES])
def test_bad_input_is_one_line_exit_2(ctx, capsys, make, expected):
    argv = make(ctx)
    capsys.readouterr()  # what building the case printed
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("ugaar: error: ")
    assert "Traceback" not in err
    for text in expected:
        assert text in lines[0], (text, lines[0])


def test_debug_shows_the_traceback_anywhere_in_argv(ctx, capsys):
    for argv in (["--debug", *_q(ctx, "--sample", "nope")], [*_q(ctx, "--sample", "nope"), "--debug"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and "BadInputError" in err
        assert err.strip().splitlines()[-1].startswith("ugaar: error: --sample nope")


def test_a_bug_prints_the_bug_line_and_traceback(ctx, capsys, monkeypatch):
    """A ValueError from inside numpy is not a message for users: it is an unchecked input, a bug."""
    import model.cli.query_cmd as query_cmd

    def broken_check(args):
        np.zeros(3).reshape(2)  # a real numpy ValueError, raised inside numpy

    monkeypatch.setattr(query_cmd, "check_query_args", broken_check)
    assert main(_q(ctx, "--sample", "s00000")) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[0] == BUG_LINE and lines[-1] == REPORT_LINE
    assert "Traceback (most recent call last)" in err and "reshape" in err and "ValueError" in err


def test_messages_from_project_code_stay_one_line(ctx, capsys):
    """A ValueError the project raises on purpose (RunConfig.validate) is a message, not a bug."""
    assert main(["train", str(ctx.npz), "--set", "epochs=-1", "--out", str(ctx.tmp / "neg")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["ugaar: error: epochs must be positive, got -1"]


def test_truncated_best_checkpoint_names_the_file(ctx):
    """``Run.method()`` (queries, --dataset evaluation, the window) reads best.pt."""
    ctx.truncate(ctx.run / "best.pt")
    with pytest.raises(CorruptFileError, match="best.pt: is truncated"):
        Run.open(ctx.run).method()
    (ctx.run / "best.pt").write_bytes(b"")
    with pytest.raises(UgaarError, match="best.pt: is empty"):
        Run.open(ctx.run).method()


def test_errors_are_subclasses_users_catch_once():
    from model.data.dataset import DatasetError
    from model.sources import SourceError
    assert issubclass(SourceError, UgaarError) and issubclass(DatasetError, UgaarError)
    assert str(SourceError("a.mid", "empty file")) == "a.mid: empty file"
    assert str(UgaarError("x.wav", "is silent\n(peak 0)", "give a recording")) == "x.wav: is silent (peak 0); give a recording"


def test_console_script_reports_one_line(ctx, tmp_path):
    """The installed entry point (a real process): stderr, exit status, no traceback."""
    notes = ctx.text_file("notes.wav")
    proc = subprocess.run([sys.executable, "-m", "model", "query", str(ctx.run), "--audio", str(notes)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"ugaar: error: --audio {notes}: is not an audio file libsndfile can read (Format not recognised); "
        "give a WAV, FLAC, OGG or MP3 recording"]
    assert proc.stdout == ""
