"""``ugaar train``: train UGAAR or a baseline on a FeatureSet or a dataset folder.

With ``--nproc N`` the command starts ``torchrun`` with N copies of itself
(torch DDP, docs/scaling.md); each copy finds torchrun's environment and
joins the process group.  The same command under ``torchrun`` or ``srun …
torchrun`` on a cluster runs one rank.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from model.cli.torchrun import STOP_FILE
from model.events import EpochEvent, RunEvent, StepEvent, TrainingEvent
from model.feature_set import cached_feature_files
from model.sources.lmd_archive import cache_root

DEFAULT_RUNS = cache_root() / "runs"


def resolve_features(path: str | Path, device: str = "cpu"):
    """A FeatureSet from an ``.npz`` path, or the newest cached one in ``DATASET/features/``.

    A dataset folder without cached features gets them extracted (encoders
    trained first when the dataset has none: minutes to hours).
    """
    from model.validate import check_dataset_folder, load_feature_set

    path = Path(path)
    if not path.is_dir():  # a file: checked to be a FeatureSet (a MIDI file gets told what to do)
        fs = load_feature_set(path)
        fs.meta.setdefault("cache_path", str(path))
        return fs, path
    cached = cached_feature_files(path)
    if cached:
        fs = load_feature_set(cached[-1])
        fs.meta.setdefault("cache_path", str(cached[-1]))
        return fs, cached[-1]
    from model.features import extract_features

    check_dataset_folder(path)
    print(f"{path}: no cached features; extracting them (this trains the encoders if needed)", file=sys.stderr)
    fs = extract_features(path, device=device)
    return fs, Path(fs.meta.get("cache_path", ""))


def _recorded_features(config, run_dir: str):
    """The FeatureSet a run to resume was trained on (``config.features_path``), checked.

    ``Trainer.resume`` would read it too; reading it here turns a moved or
    damaged FeatureSet into one message.
    """
    from model.errors import MissingError
    from model.validate import load_feature_set

    fix = f"pass the FeatureSet or dataset folder: `ugaar train FEATURES --resume {run_dir}`"
    if not config.features_path:
        raise MissingError(str(run_dir), "the run records no features_path", fix)
    if not Path(config.features_path).exists():
        raise MissingError(config.features_path, f"the FeatureSet run {run_dir} was trained on is gone", fix)
    return load_feature_set(config.features_path)


def parse_overrides(items: list[str]) -> dict:
    """``key=value`` pairs → RunConfig overrides (values parsed as JSON, else strings)."""
    import json

    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def format_event(event: TrainingEvent, every: int = 50) -> str | None:
    """One console line for an event (None: not worth printing)."""
    if isinstance(event, StepEvent):
        if event.step % every:
            return None
        g = " ".join(f"{k}={v:.3f}" for k, v in event.g_losses.items())
        d = " ".join(f"{k}={v:.3f}" for k, v in event.d_losses.items())
        return f"  step {event.step}/{event.total_steps}  G[{g}]  D[{d}]"
    if isinstance(event, EpochEvent):
        m = event.metrics
        parts = [f"{k} R@1={v['R@1']:.1f} MedR={v['MedR']:g}" for k, v in m.items()]
        return (f"epoch {event.epoch}/{event.epochs} ({event.seconds:.1f}s, eta {event.eta_seconds:.0f}s)  val: "
                + "; ".join(parts))
    if isinstance(event, RunEvent):
        return f"[{event.status}] {event.run_dir} {event.message}".rstrip()
    return None


def default_out(method: str, seed: int) -> Path:
    """The run folder of a run without ``--out``."""
    return DEFAULT_RUNS / f"{method}-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def worker_argv(args: argparse.Namespace, out: str) -> list[str]:
    """``ugaar train`` arguments of one rank: ``args`` without ``--nproc``, with the run folder fixed."""
    argv = ["train"] + ([args.features] if args.features else [])
    for flag, name in (("--method", "method"), ("--inputs", "inputs"), ("--seed", "seed"), ("--epochs", "epochs"),
                       ("--batch-size", "batch_size"), ("--device", "device"), ("--resume", "resume"),
                       ("--threads", "threads"), ("--print-every", "print_every")):
        value = getattr(args, name)
        if value is not None and not (name == "threads" and value == 0):
            argv += [flag, str(value)]
    if not args.resume:
        argv += ["--out", out]
    for item in args.set or []:
        argv += ["--set", item]
    return argv


def launch(args: argparse.Namespace) -> int:
    """Start ``torchrun --standalone --nproc-per-node N`` on this command and wait for it.

    Ctrl-C asks for a clean stop: it writes ``RUN/stop.request``, which rank
    0 turns into :meth:`Trainer.stop` (every rank then ends after the same
    step, with a checkpoint).  A second Ctrl-C ends the job at once
    (``model.cli.torchrun``).
    """
    from model.cli.torchrun import check_nproc, run_torchrun

    check_nproc(args.nproc, args.device)
    if args.resume:
        run_dir = Path(args.resume)
    elif args.out:
        run_dir = Path(args.out)
    else:
        from model.ugaar.config import RunConfig

        seed = args.seed if args.seed is not None else RunConfig().seed
        run_dir = default_out(args.method, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_torchrun(args.nproc, worker_argv(args, str(run_dir)), run_dir / STOP_FILE, args.threads).returncode


def run(args: argparse.Namespace) -> int:
    from model import distributed as dist_
    from model.validate import load_resume_state

    if getattr(args, "nproc", 1) > 1 and dist_.env_world_size() == 1:
        return launch(args)
    world = dist_.World()
    # config.json and checkpoint.pt checked first: a damaged one is named with its field
    resume_config = load_resume_state(args.resume)[0] if args.resume else None
    if dist_.env_world_size() > 1:  # a rank of a torchrun job: join the group (gloo or NCCL by device)
        if resume_config is not None:
            device = resume_config.device
        else:
            device = args.device or str(parse_overrides(args.set).get("device", "cpu"))
        world = dist_.init_from_env(device)
    try:
        return _run(args, world, resume_config)
    finally:
        dist_.shutdown()


def _run(args: argparse.Namespace, world, resume_config=None) -> int:
    import torch

    from model import distributed as dist_
    from model.errors import BadInputError
    from model.ugaar import RunConfig, Trainer
    from model.validate import check_fields, load_resume_state

    if args.threads:
        torch.set_num_threads(args.threads)

    def features_first_on_rank_0(path, device):
        # a dataset folder without cached features gets them extracted: once, by rank 0
        if not world.is_main:
            dist_.barrier()
        result = resolve_features(path, device)
        if world.is_main:
            dist_.barrier()
        return result

    def printer(event: TrainingEvent) -> None:
        line = format_event(event, args.print_every)
        if line:
            print(line, flush=True)

    if args.resume:
        config = resume_config
        if args.features:
            features, _ = features_first_on_rank_0(args.features, args.device or "cpu")
        else:
            features = _recorded_features(config, args.resume)
        trainer = Trainer.resume(args.resume, features, on_event=printer)
    else:
        if not args.features:
            raise ValueError("give a FeatureSet (.npz) or dataset folder, or --resume RUN")
        overrides = parse_overrides(args.set)
        check_fields(overrides, RunConfig, "--set", BadInputError)  # before features: extraction can take hours
        features, fpath = features_first_on_rank_0(args.features, args.device or "cpu")
        for name in ("seed", "epochs", "device", "batch_size"):
            value = getattr(args, name)
            if value is not None:
                overrides[name] = value
        overrides["features_path"] = str(Path(fpath).resolve()) if str(fpath) else ""
        overrides["inputs"] = args.inputs or ("aligned" if features.has_sequences else "paper")
        if args.inputs is None and not features.has_sequences and world.is_main:
            # stdout: a note, not an error (stderr carries the one-line error contract)
            print("note: these features have no per-position sequences, so this run trains on the paper's "
                  "mean-pooled inputs (re-extract with `ugaar features extract DATASET --force` for aligned "
                  "inputs)")
        config = RunConfig.for_method(args.method, **overrides)
        # every rank must write into one folder: rank 0's default name (its clock) is everyone's
        out = Path(args.out) if args.out else Path(dist_.broadcast_object(str(default_out(config.method, config.seed))))
        trainer = Trainer(config, features, out, on_event=printer)

    if world.distributed:
        return _run_rank(trainer, world)
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):  # first Ctrl-C: clean stop with a checkpoint; second: abort
        print("stopping after this step (Ctrl-C again to abort)…", file=sys.stderr, flush=True)
        trainer.stop()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, on_sigint)
    try:
        result = trainer.run()
    finally:
        signal.signal(signal.SIGINT, previous)
    return _report(result)


def _run_rank(trainer, world) -> int:
    """Run one rank of a distributed job: clean stops on signals and on ``RUN/stop.request``.

    SIGINT and SIGTERM (torchrun forwards the terminal's Ctrl-C; SLURM sends
    SIGTERM before a time limit) ask for :meth:`Trainer.stop` on whichever
    rank gets them; the trainer's per-step vote stops every rank after the
    same step.  A repeated signal is the same request, not an abort: torchrun
    sends its own after the terminal's, and kills the workers itself if they
    take longer than its grace period.
    """
    from model.cli.torchrun import rank_stop_signals

    with rank_stop_signals(trainer.stop, trainer.run_dir / STOP_FILE if world.is_main else None):
        result = trainer.run()
    return _report(result) if world.is_main else (0 if result.status in ("finished", "stopped") else 1)


def _report(result) -> int:
    test = result.metrics.get("test")
    if test:
        print("test:", "; ".join(f"{k} R@1={v['R@1']:.2f} MedR={v['MedR']:g} MedR/N={v['MedR/N']:.4f}"
                                 for k, v in test.items()))
    print(f"run folder: {result.run_dir} ({result.status})")
    return 0 if result.status in ("finished", "stopped") else 1


def add_parser(subparsers, name: str = "train", help_text: str = "train UGAAR or a baseline") -> argparse.ArgumentParser:
    from model.ugaar.config import METHODS

    p = subparsers.add_parser(name, help=help_text, description=help_text + ". Every RunConfig field can be set "
                              "with --set key=value (see docs/training.md).")
    p.add_argument("features", nargs="?", help="FeatureSet .npz, or a dataset folder (its newest cached features)")
    p.add_argument("--method", choices=METHODS, default="ugaar")
    p.add_argument("--inputs", choices=["aligned", "paper"], default=None,
                   help="aligned: per-syllable/onset/note sequences into sequence encoders (default when the "
                        "features have them); paper: the paper's mean-pooled features")
    p.add_argument("--seed", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--device", choices=["cpu", "cuda"])
    p.add_argument("--resume", metavar="RUN", help="continue a stopped run folder")
    p.add_argument("--out", metavar="DIR", help=f"run folder (default {DEFAULT_RUNS}/METHOD-sSEED-TIME)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a RunConfig field (repeatable)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--print-every", type=int, default=100, help="print every N-th step")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="train with N processes under torchrun (torch DDP: gloo on CPU, NCCL with --device "
                        "cuda, one GPU each); the batch size stays the global batch (docs/scaling.md)")
    p.set_defaults(func=run)
    return p
