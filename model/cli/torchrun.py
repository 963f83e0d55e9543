"""Starting a command under ``torchrun`` for the user, and stopping it cleanly.

``ugaar train --nproc N`` and ``ugaar features extract --nproc N`` start
``torchrun --standalone --nproc-per-node N`` on the same command (without
``--nproc``); each copy finds torchrun's environment and joins the process
group (``model.distributed``).  A stop travels two ways:

* the launcher's Ctrl-C writes a stop file that rank 0 watches
  (:func:`watch_stop_file`); on a cluster, ``touch`` the same file;
* a SIGINT or SIGTERM that reaches a rank (torchrun forwards the terminal's,
  SLURM sends SIGTERM before a time limit) asks that rank to stop
  (:func:`rank_stop_signals`).

Either way the rank's stop vote ends every rank after the same step.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

#: The file that asks a distributed job to stop (``ugaar train`` puts it in
#: the run folder, ``ugaar features extract`` in ``DATASET/features/``).
STOP_FILE = "stop.request"


@dataclass(frozen=True)
class Launched:
    """How a torchrun job ended.

    Parameters
    ----------
    returncode : int
        torchrun's exit status (non-zero when a rank failed).
    stop_requested : bool
        Whether the user pressed Ctrl-C (a clean stop was asked for).
    """

    returncode: int
    stop_requested: bool


def check_nproc(nproc: int, device: str | None) -> None:
    """Refuse more processes than GPUs under ``--device cuda`` (one GPU per process)."""
    from model.errors import BadInputError

    if nproc < 1:
        raise BadInputError("--nproc", f"is {nproc}", "give 1 or more processes")
    if device == "cuda":
        import torch

        if nproc > torch.cuda.device_count():
            raise BadInputError("--nproc", f"{nproc} processes but {torch.cuda.device_count()} GPUs",
                                "use at most one process per GPU")


def run_torchrun(nproc: int, argv: Sequence[str], stop_file: Path, threads: int = 0,
                 stop_message: str = "stopping every process after this step") -> Launched:
    """Start ``torchrun --standalone --nproc-per-node N -m model ARGV`` and wait for it.

    The first Ctrl-C writes ``stop_file`` (rank 0 turns it into a clean
    stop of every rank); a second one ends the job at once.  The workers
    run in their own session, so the terminal's Ctrl-C reaches this process
    only (torchrun would otherwise kill its workers on the spot).

    Parameters
    ----------
    nproc : int
        Processes on this machine.
    argv : sequence of str
        ``ugaar`` arguments of one rank (without ``--nproc``).
    stop_file : Path
        Where the stop request is written; a stale one is removed first.
    threads : int
        ``OMP_NUM_THREADS`` of each rank (0: torchrun's default of 1).
    stop_message : str
        What the first Ctrl-C prints.

    Returns
    -------
    Launched
    """
    stop_file.parent.mkdir(parents=True, exist_ok=True)
    stop_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "model", *argv]
    print(f"starting {nproc} processes: torchrun --standalone --nproc-per-node={nproc} -m model "
          + " ".join(argv), file=sys.stderr, flush=True)
    env = dict(os.environ)
    if threads:  # torchrun sets OMP_NUM_THREADS=1 unless told
        env.setdefault("OMP_NUM_THREADS", str(threads))
    child = subprocess.Popen(cmd, env=env, start_new_session=True)
    previous = signal.getsignal(signal.SIGINT)
    asked = threading.Event()

    def on_sigint(signum, frame):
        if not asked.is_set():
            asked.set()
            print(f"{stop_message} (Ctrl-C again to abort)…", file=sys.stderr, flush=True)
            stop_file.touch()
        else:
            os.killpg(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGINT, on_sigint)
    try:
        while True:
            try:
                return Launched(child.wait(), asked.is_set())
            except KeyboardInterrupt:  # pragma: no cover - the handler above replaces it
                continue
    finally:
        signal.signal(signal.SIGINT, previous)
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
            child.wait()
        stop_file.unlink(missing_ok=True)  # a request the job ended before reading is not left for the next


def watch_stop_file(path: Path, stop: Callable[[], None], done: threading.Event, every_s: float = 0.5) -> None:
    """Call ``stop()`` once ``path`` appears (a file older than the watch is stale), then remove it."""
    started = time.time()
    while not done.wait(every_s):
        try:
            if path.stat().st_mtime >= started - 1.0:
                stop()
                path.unlink(missing_ok=True)
                return
        except FileNotFoundError:
            continue


@contextlib.contextmanager
def rank_stop_signals(stop: Callable[[], None], stop_file: Path | None = None) -> Iterator[None]:
    """While inside: SIGINT and SIGTERM call ``stop()``, and so does ``stop_file`` appearing.

    A repeated signal is the same request, not an abort: torchrun sends its
    own after the terminal's, and kills the workers itself if they take
    longer than its grace period.  Pass ``stop_file`` on rank 0 only.
    """
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in handlers:
        signal.signal(sig, lambda signum, frame: stop())
    done = threading.Event()
    watcher = None
    if stop_file is not None:
        watcher = threading.Thread(target=watch_stop_file, args=(stop_file, stop, done), daemon=True)
        watcher.start()
    try:
        yield
    finally:
        done.set()
        if watcher is not None:
            # joined, not left to die with the interpreter: a daemon thread still alive while rank 0
            # tears down torch and exits aborted it with "terminate called without an active exception"
            # in 5 of 12 resumed 2-rank runs (0 of 32 once joined); CI failed on it
            watcher.join()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
