"""``ugaar train``: train UGAAR or a baseline on a FeatureSet or a dataset folder."""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

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


def run(args: argparse.Namespace) -> int:
    import torch

    from model.errors import BadInputError
    from model.ugaar import RunConfig, Trainer
    from model.validate import check_fields, load_resume_state

    if args.threads:
        torch.set_num_threads(args.threads)

    def printer(event: TrainingEvent) -> None:
        line = format_event(event, args.print_every)
        if line:
            print(line, flush=True)

    if args.resume:
        # config.json and checkpoint.pt checked first: a damaged one is named with its field
        config, _ = load_resume_state(args.resume)
        if args.features:
            features, _ = resolve_features(args.features, args.device or "cpu")
        else:
            features = _recorded_features(config, args.resume)
        trainer = Trainer.resume(args.resume, features, on_event=printer)
    else:
        if not args.features:
            raise ValueError("give a FeatureSet (.npz) or dataset folder, or --resume RUN")
        overrides = parse_overrides(args.set)
        check_fields(overrides, RunConfig, "--set", BadInputError)  # before features: extraction can take hours
        features, fpath = resolve_features(args.features, args.device or "cpu")
        for name in ("seed", "epochs", "device", "batch_size"):
            value = getattr(args, name)
            if value is not None:
                overrides[name] = value
        overrides["features_path"] = str(Path(fpath).resolve()) if str(fpath) else ""
        overrides["inputs"] = args.inputs or ("aligned" if features.has_sequences else "paper")
        if args.inputs is None and not features.has_sequences:
            # stdout: a note, not an error (stderr carries the one-line error contract)
            print("note: these features have no per-position sequences, so this run trains on the paper's "
                  "mean-pooled inputs (re-extract with `ugaar features extract DATASET --force` for aligned "
                  "inputs)")
        config = RunConfig.for_method(args.method, **overrides)
        out = Path(args.out) if args.out else DEFAULT_RUNS / f"{config.method}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
        trainer = Trainer(config, features, out, on_event=printer)

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
    p.set_defaults(func=run)
    return p
