"""The trainer under torchrun: 2 CPU processes (gloo) against one process with the doubled batch.

Every rank draws the same global batch, candidate pool and samples, and
computes the terms of its own rows; the negatives come from every rank
through the all-gather with gradient.  With dropout off, the only
differences from one process on the whole batch are float32 rounding, so
the losses must agree to ``RTOL``/``ATOL``:

* float32 has a relative rounding of 6e-8 per operation; the per-rank
  matrix products and the sum of the ranks' partial losses and gradients
  add the same numbers in another order, which moves a loss of ~1 by
  ~1e-7–1e-6 at the first step;
* Adam divides each gradient by its running RMS, so the rounding of small
  gradients becomes a relative change of the update, and the difference
  grows over steps: over this run's 14 steps the largest difference seen
  is 2.6e-5 relative, ~3e-6 absolute (the policy term, a difference of
  nearly equal rewards);
* 1e-4 leaves a margin of ~30× for another BLAS or thread count, and is
  ~100× below what a real mistake gives: gathering the negatives without
  their gradient (the plain ``all_gather``) moves the losses by 1e-2–1 from
  the second step on (measured, docs/scaling.md).

Multinomial draws use the same uniforms on every rank and in the single
process; a draw could flip only if a uniform fell within the rounding
difference (~1e-6) of a cumulative-probability boundary, which over ~10³
draws is a ~1e-3 chance, and the seeds are fixed, so the test is
deterministic on a given machine.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from model import distributed as dist_
from model.events import EpochEvent, RunEvent, StepEvent
from model.ugaar import Run, RunConfig, train
from model.ugaar.synthetic import synthetic_features

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "ddp_worker.py"
RTOL, ATOL = 1e-4, 1e-4
TIMEOUT_S = 120


def _config(method: str, fs_path: Path) -> RunConfig:
    # 160 training rows in batches of 24 → 7 global batches of 23/22 rows, 12/11 per rank:
    # uneven on every step, and the last batch is smaller than the others
    return RunConfig.for_method(method, epochs=2, seed=3, batch_size=24, candidates=48, dropout=0.0,
                                g_hidden=(64,), embed_dim=32, gen_nll_symmetric=(method == "ugaar"),
                                features_path=str(fs_path))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The feature file, and each method's config and single-process run on the same global batch."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ddp")
    fs = synthetic_features(200, seed=1)
    fs_path = root / "fs.npz"
    fs.save(fs_path)
    out = {"root": root, "fs_path": fs_path}
    for method in ("ugaar", "baseline-gan"):
        cfg = _config(method, fs_path)
        cfg_path = root / f"{method}.json"
        cfg_path.write_text(cfg.to_json(), encoding="utf-8")
        out[method] = (cfg_path, train(cfg, fs, root / f"single-{method}"))
    return out


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("WORLD_SIZE", None)
    return env


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _ranks(run_dir: Path) -> list[dict]:
    return [json.loads((run_dir / f"rank{r}.json").read_text()) for r in range(2)]


def _steps(run: Run) -> list[StepEvent]:
    return [e for e in run.events() if isinstance(e, StepEvent)]


def _assert_same_losses(got: list[StepEvent], want: list[StepEvent]) -> None:
    assert [e.step for e in got] == [e.step for e in want]
    for a, b in zip(got, want):
        for mine, ref in ((a.g_losses, b.g_losses), (a.d_losses, b.d_losses)):
            assert mine.keys() == ref.keys()
            assert np.allclose(list(mine.values()), list(ref.values()), rtol=RTOL, atol=ATOL), (a.step, mine, ref)


@pytest.mark.parametrize("method", ["ugaar", "baseline-gan"])
def test_two_processes_match_one_process_on_the_doubled_batch(setup, tmp_path, method):
    cfg_path, single = setup[method]
    run_dir = tmp_path / "ddp"
    _torchrun(str(WORKER), str(setup["fs_path"]), str(cfg_path), str(run_dir))
    ranks = _ranks(run_dir)
    assert [r["backend"] for r in ranks] == ["gloo", "gloo"] and [r["world"] for r in ranks] == [2, 2]
    assert [r["status"] for r in ranks] == ["finished", "finished"]
    assert ranks[0]["global_step"] == ranks[1]["global_step"] == 14  # the same steps on both ranks
    assert ranks[0]["digest"] == ranks[1]["digest"]  # the same networks at the end, bit for bit
    ddp = Run.open(run_dir)
    assert ddp.status == "finished"
    _assert_same_losses(_steps(ddp), _steps(single))
    # rank 0 alone writes the event stream: one started, two epochs, one finished
    events = ddp.events()
    assert [e.status for e in events if isinstance(e, RunEvent)] == ["started", "finished"]
    assert len([e for e in events if isinstance(e, EpochEvent)]) == 2
    a, b = ddp.embeddings(), single.embeddings()
    assert all(np.allclose(a[k], b[k], atol=1e-4) for k in b)


def test_stop_on_rank_0_stops_both_and_resume_with_nproc_finishes_the_same_curve(setup, tmp_path):
    cfg_path, single = setup["ugaar"]
    run_dir = tmp_path / "ddp"
    _torchrun(str(WORKER), str(setup["fs_path"]), str(cfg_path), str(run_dir), "--stop-at", "5")
    ranks = _ranks(run_dir)
    assert [r["status"] for r in ranks] == ["stopped", "stopped"]
    assert ranks[0]["global_step"] == ranks[1]["global_step"] == 5  # rank 1 was never told, and stopped too
    stopped = Run.open(run_dir)
    assert stopped.status == "stopped" and len(_steps(stopped)) == 5

    # `ugaar train --resume RUN --nproc 2` starts torchrun itself
    proc = subprocess.run([sys.executable, "-m", "model", "train", "--resume", str(run_dir), "--nproc", "2"],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "(finished)" in proc.stdout and "--nproc-per-node=2" in proc.stderr
    resumed = Run.open(run_dir)
    assert resumed.status == "finished"
    assert [e.message for e in resumed.events() if isinstance(e, RunEvent)] [:3] == ["", stopped.message, "resumed"]
    _assert_same_losses(_steps(resumed), _steps(single))


def test_ctrl_c_of_ugaar_train_nproc_stops_every_rank_cleanly(setup, tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "model", "train", str(setup["fs_path"]), "--nproc", "2", "--out", str(run_dir),
           "--method", "baseline", "--epochs", "200", "--batch-size", "24", "--set", "g_hidden=[32]"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    events = run_dir / "events.jsonl"
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        if events.is_file() and '"step"' in events.read_text(encoding="utf-8"):
            break  # training is under way on both ranks
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    assert "stopping every process" in err and "(stopped)" in out
    run = Run.open(run_dir)
    assert run.status == "stopped" and "ugaar train --resume" in run.message
    assert not (run_dir / "stop.request").exists()
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] < 200


def test_feature_pretraining_under_torchrun_keeps_the_ranks_identical(tmp_path):
    _torchrun(str(WORKER), "--pretrain", str(tmp_path))
    ranks = _ranks(tmp_path)
    # gradients summed and batch-norm statistics averaged after every step: the same model on both
    assert ranks[0]["digest"] == ranks[1]["digest"]
    assert ranks[0]["losses"] == ranks[1]["losses"] and all(np.isfinite(ranks[0]["losses"]))
    # rank 0 validated, and both selected the same epoch from its score
    assert ranks[0]["val"] == ranks[1]["val"] and None not in ranks[0]["val"]
    assert ranks[0]["best_epoch"] == ranks[1]["best_epoch"]
    assert (tmp_path / "pretrain_resume.pt").is_file()


def test_sharding_helpers_agree_across_ranks():
    # array_split's cut, known to every rank without asking the others
    assert dist_.shard_sizes(23, 2) == [12, 11] and dist_.shard_sizes(4, 3) == [2, 1, 1]
    bounds = [dist_.shard_bounds(23, dist_.World(r, 3)) for r in range(3)]
    assert bounds == [(0, 8), (8, 16), (16, 23)]
    a = dist_.epoch_batches(160, 7, (3, 0, 7))
    b = dist_.epoch_batches(160, 7, (3, 0, 7))
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and sum(map(len, a)) == 160
    # one process: no process group, every collective is the identity
    t = torch.arange(6.0).reshape(3, 2)
    assert dist_.current() == dist_.World() and dist_.gather_rows(t, [3]) is t
    assert dist_.any_rank(True) and not dist_.any_rank(False)
