"""Fault injection for training: kill -9, a full disk, a read-only folder, Ctrl-C.

Each fault is followed by what a user would do next (``ugaar train --resume``)
and the result is compared with an uninterrupted run of the same
configuration: losing nothing means the same final metrics, the same
embeddings and the same loss curve.

The kills are real ``SIGKILL``s of a ``ugaar train`` process.  To land them
at the moments that matter (a checkpoint written to its temporary file but
not yet renamed, a line of ``events.jsonl`` half written, events written
after the last checkpoint) rather than wherever a timer happens to fire, the
child process counts *kill points* (each ``os.replace`` of the atomic writer,
before and after; each event appended) and kills itself at a seeded one.
The disk faults are ``OSError``\\ s raised where the operating system would
raise them: from the write of a checkpoint and from creating a file in the
run folder (the tests run as root, for whom ``chmod`` does not make a folder
read-only).
"""
from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from model.cli import main as ugaar_main
from model.errors import WriteError
from model.validate import CHECKPOINT_KEYS, load_checkpoint, load_npz, read_json_object

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 40  # long enough that a Ctrl-C sent after the first steps lands mid-run (about 1 s of training)
TRAIN_ARGS = ["--method", "baseline", "--epochs", str(EPOCHS), "--batch-size", "32", "--seed", "3",
              "--set", "g_hidden=[32]", "--threads", "1", "--print-every", "100000"]

# The child: `ugaar train` with kill points.  FAULT_KILL_AT=k kills at the k-th point (1-based);
# FAULT_POINTS=file records the labels of every point passed (the uninterrupted run's list).
CHILD = r"""
import json, os, signal, sys
kill_at = int(os.environ.get("FAULT_KILL_AT", "0"))
points = []

def point(label):
    points.append(label)
    if len(points) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

real_replace = os.replace

def replace(src, dst, *args, **kwargs):
    name = os.path.basename(str(dst))
    point("before " + name)   # the new file is complete under its temporary name
    real_replace(src, dst, *args, **kwargs)
    point("after " + name)

os.replace = replace

from model.ugaar import trainer
real_emit = trainer.Trainer._emit

def emit(self, event):
    if len(points) + 1 == kill_at:  # killed in the middle of appending the line
        with open(self.run_dir / "events.jsonl", "a", encoding="utf-8") as fh:
            fh.write('{"kind": "st')
            fh.flush()
    point("torn event")
    real_emit(self, event)
    point("event " + type(event).__name__)

trainer.Trainer._emit = emit

from model.cli import main
try:
    code = main(sys.argv[1:])
finally:
    if os.environ.get("FAULT_POINTS"):
        with open(os.environ["FAULT_POINTS"], "w") as fh:
            json.dump(points, fh)
sys.exit(code)
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAULT_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def _child(args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, *args], cwd=REPO, env=_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _ugaar(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "model", *args], cwd=REPO, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(procs: list[subprocess.Popen], timeout: float = 120) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append((p.returncode, stdout, stderr))
    return out


def _curve(run_dir: Path) -> list[tuple]:
    """Steps and epochs of events.jsonl without wall-clock fields (what must repeat exactly)."""
    rows = []
    for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines():
        e = json.loads(line)
        if e["kind"] == "step":
            rows.append(("step", e["epoch"], e["step"], tuple(sorted(e["d_losses"].items()))))
        elif e["kind"] == "epoch":
            rows.append(("epoch", e["epoch"], json.dumps(e["metrics"], sort_keys=True)))
    return rows


def _assert_same_result(run_dir: Path, reference: Path) -> None:
    """Same metrics, embeddings and loss curve as the uninterrupted reference run."""
    got, want = read_json_object(run_dir / "metrics.json"), read_json_object(reference / "metrics.json")
    assert got["selected_epoch"] == want["selected_epoch"]
    for split in ("val", "test"):
        assert got[split].keys() == want[split].keys()
        for direction, figures in want[split].items():
            for name, value in figures.items():
                assert got[split][direction][name] == pytest.approx(value, rel=1e-9, abs=1e-9), (split, direction, name)
    a = load_npz(run_dir / "embeddings.npz")
    b = load_npz(reference / "embeddings.npz")
    for key in ("audio", "sheet", "lyrics"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6)
    curve, ref_curve = _curve(run_dir), _curve(reference)
    assert [r[:3] for r in curve] == [r[:3] for r in ref_curve]  # no step lost, none repeated
    for r, s in zip(curve, ref_curve):
        if r[0] == "step":
            np.testing.assert_allclose([v for _, v in r[3]], [v for _, v in s[3]], rtol=1e-6)
    assert read_json_object(run_dir / "status.json")["status"] == "finished"


@pytest.fixture(scope="module")
def fs_path(tmp_path_factory) -> Path:
    from model.ugaar.synthetic import synthetic_features

    path = tmp_path_factory.mktemp("faults") / "fs.npz"
    synthetic_features(120, seed=0).save(path)
    return path


@pytest.fixture(scope="module")
def reference(fs_path, tmp_path_factory) -> tuple[Path, list[str]]:
    """An uninterrupted run, with the list of kill points it passed."""
    root = tmp_path_factory.mktemp("reference")
    points_file = root / "points.json"
    [(rc, _out, err)] = _finish([_child(["train", str(fs_path), "--out", str(root / "run"), *TRAIN_ARGS],
                                        FAULT_POINTS=str(points_file))])
    assert rc == 0, err
    return root / "run", json.loads(points_file.read_text())


@pytest.mark.slow
def test_kill_9_at_three_points_then_resume_gives_the_uninterrupted_result(fs_path, reference, tmp_path):
    ref_dir, points = reference
    # a run killed before its first checkpoint has nothing to resume (and lost nothing): start after it
    first = points.index("after checkpoint.pt") + 1  # 1-based index of that point
    rng = random.Random(2024)
    kinds = {  # the three moments where a careless writer loses data
        "a checkpoint complete under its temporary name, not yet renamed": "before checkpoint.pt",
        "a line of events.jsonl half written": "torn event",
        "an epoch's event written after the last checkpoint": "event EpochEvent",
    }
    kills = {}
    for what, label in kinds.items():
        candidates = [i + 1 for i, p in enumerate(points) if p == label and i + 1 > first]
        kills[what] = rng.choice(candidates)

    runs = {what: tmp_path / f"run{i}" for i, what in enumerate(kills)}
    results = _finish([_child(["train", str(fs_path), "--out", str(runs[what]), *TRAIN_ARGS],
                              FAULT_KILL_AT=str(k)) for what, k in kills.items()])
    for (what, k), (rc, _out, err) in zip(kills.items(), results):
        assert rc == -signal.SIGKILL, (what, k, rc, err)
        status = read_json_object(runs[what] / "status.json")
        assert status["status"] == "running"  # killed: nothing had the chance to say otherwise
        load_checkpoint(runs[what] / "checkpoint.pt", CHECKPOINT_KEYS)  # never half written
    torn = runs["a line of events.jsonl half written"] / "events.jsonl"
    assert torn.read_text(encoding="utf-8").endswith('{"kind": "st')

    resumed = _finish([_ugaar(["train", "--resume", str(runs[what]), "--threads", "1"]) for what in kills])
    for what, (rc, _out, err) in zip(kills, resumed):
        assert rc == 0, (what, err)
        _assert_same_result(runs[what], ref_dir)
    events = [json.loads(line) for line in torn.read_text(encoding="utf-8").splitlines()]  # every line parses
    assert [e["message"] for e in events if e["kind"] == "run"][-2:] == ["resumed", events[-1]["message"]]


@pytest.mark.slow
def test_ctrl_c_stops_with_a_checkpoint_and_resume_finishes(fs_path, reference, tmp_path):
    ref_dir, _ = reference
    run_dir = tmp_path / "run"
    proc = _ugaar(["train", str(fs_path), "--out", str(run_dir), *TRAIN_ARGS])
    events = run_dir / "events.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if events.is_file() and len(events.read_text(encoding="utf-8").splitlines()) >= 4:
            break  # a few steps in: the handler is installed and training is under way
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    [(rc, out, err)] = _finish([proc])
    assert rc == 0, err
    assert "stopping after this step" in err and "Traceback" not in err
    status = read_json_object(run_dir / "status.json")
    assert status["status"] == "stopped", status
    assert f"ugaar train --resume {run_dir}" in status["message"]
    state = load_checkpoint(run_dir / "checkpoint.pt", CHECKPOINT_KEYS)
    assert state["epoch"] < EPOCHS
    assert "(stopped)" in out

    [(rc, out, err)] = _finish([_ugaar(["train", "--resume", str(run_dir), "--threads", "1"])])
    assert rc == 0, err
    assert "(finished)" in out
    _assert_same_result(run_dir, ref_dir)


# ----------------------------------------------------------------- disk faults
def _leftovers(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.iterdir() if p.name.startswith("."))


def _run_cli(args: list[str], capsys) -> tuple[int, list[str]]:
    torch.set_num_threads(1)
    code = ugaar_main(args)
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("these features")]
    return code, err


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(fs_path, reference, tmp_path, monkeypatch,
                                                                     capsys):
    ref_dir, _ = reference
    run_dir = tmp_path / "run"
    real_save = torch.save
    checkpoint_writes = []

    def save(obj, f, *args, **kwargs):  # the third checkpoint (after epoch 2) meets a full disk
        if Path(getattr(f, "name", str(f))).name.startswith(".checkpoint.pt."):
            checkpoint_writes.append(f)
            if len(checkpoint_writes) == 3:
                real_save(obj, f, *args, **kwargs)  # part of the file reached the disk
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    code, err = _run_cli(["train", str(fs_path), "--out", str(run_dir), *TRAIN_ARGS], capsys)
    assert code == 2 and len(err) == 1, err
    line = err[0]
    assert line.startswith(f"ugaar: error: {run_dir / 'checkpoint.pt'}: cannot be written: disk full"), line
    assert f"ugaar train --resume {run_dir}" in line and "Traceback" not in line
    state = load_checkpoint(run_dir / "checkpoint.pt", CHECKPOINT_KEYS)
    assert state["epoch"] == 1  # the checkpoint before the failed one, intact
    assert _leftovers(run_dir) == []  # the half-written temporary file is gone
    status = read_json_object(run_dir / "status.json")
    assert status["status"] == "failed" and "disk full" in status["message"]

    monkeypatch.setattr(torch, "save", real_save)  # space freed: resume loses nothing
    code, err = _run_cli(["train", "--resume", str(run_dir), "--threads", "1"], capsys)
    assert code == 0, err
    _assert_same_result(run_dir, ref_dir)


@pytest.mark.parametrize("code_,words", [(errno.EACCES, "permission denied"),
                                         (errno.EROFS, "read-only file system")])
def test_read_only_run_folder_fails_cleanly(fs_path, tmp_path, monkeypatch, capsys, code_, words):
    run_dir = tmp_path / "run"
    real_mkstemp = tempfile.mkstemp
    created = []

    def mkstemp(*args, **kwargs):  # the folder turns read-only after the first epoch's checkpoint
        prefix, folder = kwargs.get("prefix", ""), Path(kwargs.get("dir", "."))
        if folder == run_dir:
            created.append(prefix)
            if created.count(".checkpoint.pt.") >= 2:
                raise OSError(code_, os.strerror(code_), str(folder / f"{prefix}x{kwargs.get('suffix', '')}"))
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    code, err = _run_cli(["train", str(fs_path), "--out", str(run_dir), *TRAIN_ARGS], capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"ugaar: error: {run_dir / 'checkpoint.pt'}: cannot be written: {words}"), err[0]
    assert f"ugaar train --resume {run_dir}" in err[0]
    assert load_checkpoint(run_dir / "checkpoint.pt", CHECKPOINT_KEYS)["epoch"] == 0
    assert _leftovers(run_dir) == []


def test_write_error_is_one_line_and_an_os_error():
    from model.atomic import write_bytes

    with pytest.raises(WriteError) as info:
        write_bytes("/proc/ugaar-cannot-write-here/x.bin", b"x")
    err = info.value
    assert isinstance(err, OSError) and err.filename == "/proc/ugaar-cannot-write-here/x.bin"
    assert str(err).startswith("/proc/ugaar-cannot-write-here/x.bin: cannot be written") and "\n" not in str(err)
