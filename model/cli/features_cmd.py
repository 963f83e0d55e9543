"""``ugaar features extract|info``: pre-train the encoders and cache a dataset's features."""
from __future__ import annotations

import argparse
import sys
import time
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
    ext.add_argument("--cca", action="store_true",
                     help="also print plain CCA six-direction figures on the test split")
    ext.add_argument("--quiet", action="store_true", help="no progress bar")
    ext.set_defaults(func=_extract)


def _fmt(figs: dict[str, Any]) -> str:
    return (f"R@1 {figs['R@1']:5.1f} %  R@5 {figs['R@5']:5.1f} %  R@10 {figs['R@10']:5.1f} %  "
            f"MedR {figs['MedR']:g}  MeanR {figs['MeanR']:.1f}  N {figs['N']}")


def _extract(args: argparse.Namespace) -> int:
    from model.features import FeatureConfig, extract_features
    from model.features.metrics import cca_six_directions
    from model.validate import check_dataset_folder

    check_dataset_folder(args.dataset)  # before torch threads and the progress bar start
    if args.threads:
        import torch
        torch.set_num_threads(max(1, args.threads))
    config = FeatureConfig.from_json(args.config) if args.config else FeatureConfig()
    if args.published_skipgram:
        config.use_published_skipgram = args.published_skipgram
    if args.augment is not None:
        from model.features.augment_config import augment_preset
        config.augment = augment_preset(args.augment, seed=config.seed)
    bar = None if args.quiet else StageBar()

    def log(line: str) -> None:
        if bar is not None and bar.bar is not None:
            bar.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    t0 = time.perf_counter()
    try:
        fs = extract_features(args.dataset, config, encoders_dir=args.encoders, device=args.device,
                              progress=bar, force=args.force, log=log)
    finally:
        if bar is not None:
            bar.close()
    meta = fs.meta
    print(f"features: {meta.get('cache_path')}  ({len(fs)} samples, audio {fs.audio.shape[1]}-d, "
          f"sheet {fs.sheet.shape[1]}-d, lyrics {fs.lyrics.shape[1]}-d; {time.perf_counter() - t0:.1f} s)")
    print(f"encoders: {meta.get('encoders_dir')}  (checkpoint {meta.get('checkpoint_hash')})")
    if meta.get("timbres"):
        print("audio encoder trained on: " + "; ".join(meta["timbres"]))
    pre = meta.get("pretrain") or {}
    if pre.get("best_epoch"):
        print(f"pre-training: best epoch {pre['best_epoch']}, {pre.get('pretrain_seconds') or 0:.0f} s")
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

