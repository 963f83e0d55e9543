"""``ugaar features extract|info``: pre-train the encoders and cache a dataset's features.

With ``--nproc N`` the command starts ``torchrun`` with N copies of itself
(``model.cli.torchrun``); rank 0 runs the whole pipeline and the other ranks
join only the encoders' pre-training (``model.features.extract_ddp``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from model.cli.progress_bar import StageBar


def add_parser(subparsers: Any, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    sub = parser.add_subparsers(dest="features_command", required=True)

    ext = sub.add_parser("extract", help="pre-train the encoders if needed, extract and cache features")
    ext.add_argument("dataset", help="dataset folder (built by `ugaar dataset build`)")
    ext.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ext.add_argument("--encoders", metavar="DIR", default=None,
                     help="trained encoders to use (or where to train them); default "
                          "DATASET/encoders/<config>-<dataset>")
    ext.add_argument("--config", metavar="JSON", default=None,
                     help="a FeatureConfig config.json to train with (default: the built-in defaults)")
    ext.add_argument("--force", action="store_true", help="recompute the features even when cached")
    ext.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ext.add_argument("--published-skipgram", metavar="DIR", default=None,
                     help="use Yu et al.'s published 10-d skip-gram encoders from this trusted folder")
    ext.add_argument("--augment", metavar="PRESET", default=None, choices=("none", "timbre", "timbre-lite"),
                     help="timbre augmentation of the audio encoder's pre-training: none (default), "
                          "timbre (4 extra renderings per training sample in other instruments, rooms, "
                          "noise) or timbre-lite (2); see docs/features.md")
    ext.add_argument("--onset-delta", type=float, default=None, metavar="X",
                     help="peak threshold of the audio onset detector that cuts the per-onset tokens "
                          "(default: chosen on the dataset's notes, --onset-picking; with --encoders, that folder's "
                          "config.json, where 0.05 was the first default). Only the sequences change; the encoders "
                          "are kept")
    ext.add_argument("--onset-picking", default=None, choices=("auto", "fixed"),
                     help="auto (default): choose the flux threshold and window among a few (docs/features.md, "
                          "\"Onset picking\") as those that give most of the dataset's training and validation items "
                          "exactly their notes' onsets; fixed: use --onset-delta and --onset-window (giving "
                          "either means fixed). Only the sequences change")
    ext.add_argument("--onset-window", type=int, default=None, metavar="ROWS",
                     help="40 ms rows on each side of a candidate onset over which the mean flux it must "
                          "exceed is taken (default: chosen with the threshold; with --encoders, that folder's "
                          "config.json, where 3 was the first default). Only the sequences change")
    ext.add_argument("--onset-method", default=None, choices=("flux", "superflux", "learned"),
                     help="how audio onsets are found (default: the encoders' config, flux): learned trains "
                          "a small onset network on the dataset's notes in training timbres (about 2 min on "
                          "LMD-full, kept in the encoders folder) and finds the soft onsets of strings, flute "
                          "and voice (docs/features.md). Only the sequences change; the encoders are kept")
    ext.add_argument("--cca", action="store_true",
                     help="also print plain CCA six-direction figures on the test split")
    ext.add_argument("--quiet", action="store_true", help="no progress bar")
    ext.add_argument("--nproc", type=int, default=1, metavar="N",
                     help="pre-train the encoders with N processes under torchrun (torch DDP: gloo on CPU, "
                          "NCCL with --device cuda); the front end, skip-gram models and extraction run in "
                          "the first process (docs/scaling.md)")
    ext.set_defaults(func=_extract)


def _fmt(figs: dict[str, Any]) -> str:
    return (f"R@1 {figs['R@1']:5.1f} %  R@5 {figs['R@5']:5.1f} %  R@10 {figs['R@10']:5.1f} %  "
            f"MedR {figs['MedR']:g}  MeanR {figs['MeanR']:.1f}  N {figs['N']}")


def _config(args: argparse.Namespace) -> Any:
    """The FeatureConfig of ``--config``, ``--published-skipgram`` and ``--augment``."""
    from model.features import FeatureConfig

    config = FeatureConfig.from_json(args.config) if args.config else FeatureConfig()
    if args.published_skipgram:
        config.use_published_skipgram = args.published_skipgram
    if args.augment is not None:
        from model.features.augmentation.config import augment_preset
        config.augment = augment_preset(args.augment, seed=config.seed)
    return config


def _logger(bar: Any) -> Any:
    def log(line: str) -> None:
        if bar is not None and bar.bar is not None:
            bar.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)
    return log


def _extract(args: argparse.Namespace) -> int:
    from model import distributed as dist_
    from model.features import extract_features
    from model.validate import check_dataset_folder

    settings = _sequence_settings(args)  # a bad flag, then a bad folder, before anything starts
    check_dataset_folder(args.dataset)  # before torch threads and the progress bar start
    if getattr(args, "nproc", 1) > 1 and dist_.env_world_size() == 1:
        return _launch(args)
    if args.threads:
        import torch
        torch.set_num_threads(max(1, args.threads))
    if dist_.env_world_size() > 1:  # a rank of a torchrun job
        return _extract_rank(args)
    config = _config(args)
    bar = None if args.quiet else StageBar()
    t0 = time.perf_counter()
    try:
        fs = extract_features(args.dataset, config, encoders_dir=args.encoders, device=args.device,
                              progress=bar, force=args.force, log=_logger(bar), sequence_settings=settings)
    finally:
        if bar is not None:
            bar.close()
    return _summary(fs, args, t0)


def _sequence_settings(args: argparse.Namespace) -> dict[str, Any] | None:
    """The sequence-stage settings given on the command line (None: the encoders' own)."""
    settings = {name: getattr(args, name) for name in ("onset_picking", "onset_delta", "onset_window",
                                                       "onset_method")
                if getattr(args, name, None) is not None}
    if not settings:
        return None
    from model.features.config import FeatureConfig
    for name, value in settings.items():
        try:  # FeatureConfig's own check, named by the flag
            FeatureConfig().with_sequence_settings({name: value})
        except ValueError as exc:
            raise ValueError(f"--{name.replace('_', '-')}: {exc}") from None
    return settings


def worker_argv(args: argparse.Namespace) -> list[str]:
    """``ugaar features extract`` arguments of one rank: ``args`` without ``--nproc``."""
    argv = ["features", "extract", str(args.dataset), "--device", args.device]
    for flag, name in (("--encoders", "encoders"), ("--config", "config"), ("--threads", "threads"),
                       ("--published-skipgram", "published_skipgram"), ("--augment", "augment"),
                       ("--onset-picking", "onset_picking"), ("--onset-delta", "onset_delta"),
                       ("--onset-window", "onset_window"), ("--onset-method", "onset_method")):
        value = getattr(args, name)
        if value is not None:
            argv += [flag, str(value)]
    argv += [flag for flag, name in (("--force", "force"), ("--cca", "cca"), ("--quiet", "quiet"))
             if getattr(args, name)]
    return argv


def _launch(args: argparse.Namespace) -> int:
    """Start torchrun on this command; Ctrl-C stops every rank after the same pre-training step.

    The stop request is ``DATASET/features/stop.request`` (on a cluster,
    ``touch`` it).  A stopped extraction keeps its caches and the resume
    checkpoint, and running the command again continues it.
    """
    from model.cli.failures import EXIT_INTERRUPTED
    from model.cli.torchrun import STOP_FILE, check_nproc, run_torchrun

    check_nproc(args.nproc, args.device)
    launched = run_torchrun(args.nproc, worker_argv(args), Path(args.dataset) / "features" / STOP_FILE,
                            args.threads or 0, stop_message="stopping every process")
    if launched.returncode == 0 and launched.stop_requested:
        return EXIT_INTERRUPTED  # as a single process's Ctrl-C: the command did not finish
    return launched.returncode


def _extract_rank(args: argparse.Namespace) -> int:
    """One rank under torchrun: rank 0 extracts (and prints), the others join the pre-training.

    SIGINT and SIGTERM on any rank, and ``DATASET/features/stop.request``
    on rank 0, cancel the extraction; during the pre-training the per-step
    stop vote ends every rank after the same step.  A stopped rank exits 0
    (torchrun would report any other status as a crash).
    """
    from model import distributed as dist_
    from model.cli.torchrun import STOP_FILE, rank_stop_signals
    from model.features.extract_ddp import extract_on_rank, init_world
    from model.progress import Cancelled, CancelToken

    config = _config(args)
    world = init_world(args.device)
    cancel = CancelToken()
    bar = StageBar() if world.is_main and not args.quiet else None
    t0 = time.perf_counter()
    ended = False  # every rank ends here alike (done or stopped): leave the group together
    try:
        with rank_stop_signals(cancel.set, Path(args.dataset) / "features" / STOP_FILE if world.is_main else None):
            fs = extract_on_rank(args.dataset, config, world, encoders_dir=args.encoders, device=args.device,
                                 progress=bar, cancel=cancel, force=args.force,
                                 log=_logger(bar) if world.is_main else None,
                                 sequence_settings=_sequence_settings(args))
        ended = True
    except Cancelled:
        ended = True
        if world.is_main:
            print("stopped on every process; the caches and the pre-training checkpoint are kept and the same "
                  "command resumes", file=sys.stderr)
        return 0
    finally:
        if bar is not None:
            bar.close()
        dist_.shutdown(together=ended)
    return 0 if fs is None else _summary(fs, args, t0)


def _summary(fs: Any, args: argparse.Namespace, t0: float) -> int:
    """Print where the features are, the encoders, pre-training and the audio↔sheet figures."""
    from model.features.learned.metrics import cca_six_directions

    meta = fs.meta
    print(f"features: {meta.get('cache_path')}  ({len(fs)} samples, audio {fs.audio.shape[1]}-d, "
          f"sheet {fs.sheet.shape[1]}-d, lyrics {fs.lyrics.shape[1]}-d; {time.perf_counter() - t0:.1f} s)")
    print(f"encoders: {meta.get('encoders_dir')}  (checkpoint {meta.get('checkpoint_hash')})")
    if meta.get("timbres"):
        print("audio encoder trained on: " + "; ".join(meta["timbres"]))
    pre = meta.get("pretrain") or {}
    if pre.get("best_epoch"):
        procs = (pre.get("processes") or {}).get("count") or 1
        print(f"pre-training: best epoch {pre['best_epoch']}, {pre.get('pretrain_seconds') or 0:.0f} s"
              + (f", {procs} processes (the same encoders on every one)" if procs > 1 else ""))
    for split in ("val", "test"):
        figs = (meta.get("audio_sheet_figures") or {}).get(split)
        if figs:
            for direction, values in figs.items():
                print(f"  {split:4s} {direction}: {_fmt(values)}")
    if args.cca:
        print("plain CCA (fitted on train, test split, cosine):")
        for direction, values in cca_six_directions(fs).items():
            print(f"  {direction}: {_fmt(values)}")
    return 0
