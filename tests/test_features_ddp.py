"""``ugaar features extract DATASET --nproc 2``: rank 0 runs the pipeline, both ranks pre-train.

On the tiny dataset of ``tests/test_features_pipeline.py`` with its tiny
encoders (2 gloo processes of one thread each, well under a minute on 2
cores).  Which process wrote which file is recorded by a Python audit hook
(``sitecustomize.py`` on the workers' ``PYTHONPATH``): every ``open`` for
writing, rename, removal and new folder, with the process's ``RANK``.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from test_features_pipeline import TINY, tiny_dataset  # noqa: F401 - the fixture the feature tests share

from model.feature_set import FeatureSet
from model.features import extract_features
from model.features.extract import REPORT_NAME, has_trained_encoders

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 180

# Logs every write-like file operation of the process, one JSON line each, to AUDIT_DIR/<rank>-<pid>.jsonl.
AUDIT_HOOK = '''
import json, os, sys
_rank = os.environ.get("RANK", "launcher")
_log = open(os.path.join(os.environ["AUDIT_DIR"], f"{_rank}-{os.getpid()}.jsonl"), "a", buffering=1)
_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def _name(value):
    try:
        return os.path.abspath(os.fsdecode(value))
    except TypeError:
        return None

def _hook(event, args):
    if event == "open":
        path, mode, flags = args
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE)
        paths = [path] if writing else []
    elif event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "os.truncate"):
        paths = list(args[:2]) if event == "os.rename" else [args[0]]
    else:
        return
    for p in paths:
        name = _name(p)
        if name:
            _log.write(json.dumps([event, name]) + "\\n")

sys.addaudithook(_hook)
'''


def _writes(audit_dir: Path, rank: str, under: Path) -> list[str]:
    """Paths under ``under`` that processes of ``rank`` wrote, renamed, removed or created."""
    out = []
    for log in audit_dir.glob(f"{rank}-*.jsonl"):
        for line in log.read_text(encoding="utf-8").splitlines():
            _event, path = json.loads(line)
            if path.startswith(str(under)):
                out.append(path)
    return out


def test_extract_with_two_processes_matches_one_and_only_rank_0_writes(tiny_dataset, tmp_path):  # noqa: F811
    root = Path(tiny_dataset.root)
    config = tmp_path / "tiny.json"
    TINY.to_json(config)
    audit = tmp_path / "audit"
    audit.mkdir()
    (audit / "sitecustomize.py").write_text(AUDIT_HOOK, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(audit), str(REPO)]), AUDIT_DIR=str(audit),
               OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    enc = tmp_path / "enc-ddp"
    proc = subprocess.run([sys.executable, "-m", "model", "features", "extract", str(root), "--nproc", "2",
                           "--config", str(config), "--encoders", str(enc), "--quiet"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "--nproc-per-node=2" in proc.stderr
    assert "2 processes (the same encoders on every one)" in proc.stdout

    # both ranks pre-trained and ended with the same encoders (each rank's digest, checked by rank 0)
    report = json.loads((enc / REPORT_NAME).read_text(encoding="utf-8"))
    digests = report["processes"]["encoder_digests"]
    assert report["processes"]["count"] == 2 and len(digests) == 2 and digests[0] == digests[1]
    assert has_trained_encoders(enc) and not (enc / "pretrain_resume.pt").exists()

    # rank 0 wrote the caches, encoders and features; rank 1 wrote nothing in the test's folders
    path = Path(re.search(r"^features: (\S+)", proc.stdout, re.M).group(1))
    written0 = set(_writes(audit, "0", tmp_path.parent))
    assert str(enc / REPORT_NAME) in written0 and any(p.startswith(str(path)) for p in written0)
    assert any("/features/inputs/" in p for p in written0)  # the front end ran on rank 0
    assert list(audit.glob("1-*.jsonl")), "rank 1 did not run"
    assert _writes(audit, "1", tmp_path.parent) == []
    assert _writes(audit, "1", root) == []

    # the same kind of FeatureSet as one process makes (another model: trained with another batch split)
    ddp = FeatureSet.load(path)
    single = extract_features(tiny_dataset, TINY, encoders_dir=tmp_path / "enc-single")
    assert ddp.meta["pretrain"]["processes"]["count"] == 2
    assert single.meta["pretrain"]["processes"] == {"count": 1}
    for name in ("audio", "sheet", "lyrics"):
        a, b = getattr(ddp, name), getattr(single, name)
        assert a.shape == b.shape and a.dtype == b.dtype and np.all(np.isfinite(a))
    assert np.array_equal(ddp.sample_ids, single.sample_ids) and np.array_equal(ddp.splits, single.splits)
    assert ddp.has_sequences and single.has_sequences
    assert ddp.tokens.keys() == single.tokens.keys()
    for key in single.tokens:
        assert ddp.tokens[key].shape[1:] == single.tokens[key].shape[1:]
        assert np.array_equal(ddp.lengths[key], single.lengths[key])  # positions come from the data alone


def test_ctrl_c_of_extract_nproc_stops_every_rank_and_keeps_the_checkpoint(tiny_dataset, tmp_path):  # noqa: F811
    import signal
    import time

    from model.features import FeatureConfig

    root = Path(tiny_dataset.root)
    config = tmp_path / "long.json"
    FeatureConfig(**{**TINY.to_dict(), "pretrain_epochs": 200, "pretrain_patience": 200}).to_json(config)
    enc = tmp_path / "enc"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "model", "features", "extract", str(root), "--nproc", "2", "--config",
           str(config), "--encoders", str(enc), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None and not (enc / "pretrain_resume.pt").exists():
        time.sleep(0.05)  # the first epoch's checkpoint: both ranks are pre-training
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 130, out[-3000:] + err[-3000:]  # as a single process's Ctrl-C
    assert "stopping every process" in err and "stopped on every process" in err
    assert "Traceback" not in err and "ChildFailedError" not in err  # both ranks ended cleanly
    assert (enc / "pretrain_resume.pt").is_file() and not has_trained_encoders(enc)
    assert not (root / "features" / "stop.request").exists()
