"""``ugaar dataset build|info|merge``: build a three-modality dataset (whole or one shard),
print what one holds, join shards."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from model.cli.progress_bar import StageBar

SOURCES = ("lmd-npy", "midi", "musicxml", "music21-corpus")


def add_parser(subparsers: Any, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    sub = parser.add_subparsers(dest="dataset_command", required=True)

    build = sub.add_parser("build", help="build (or resume) a dataset folder")
    build.add_argument("--source", required=True, choices=SOURCES,
                       help="kind of input (music21-corpus needs no PATH; lmd-npy without "
                            "PATH reads the shared LMD-full archive when present)")
    build.add_argument("path", nargs="?", default=None,
                       help="folder or file to read (for lmd-npy: the folder holding "
                            "Syllable_Parsing/)")
    build.add_argument("--out", required=True, help="dataset folder to write")
    build.add_argument("--limit", type=int, default=None, help="read only the first N items")
    build.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    build.add_argument("--all-windows", action="store_true",
                       help="every non-overlapping 20-note window, not the paper's first two")
    build.add_argument("--audio-renderer", default="auto",
                       choices=("auto", "fluidsynth", "builtin"))
    build.add_argument("--soundfont", metavar="PATH", default=None,
                       help="FluidSynth: a General MIDI SoundFont (.sf2) instead of the bundled TimGM6mb "
                            "(e.g. /usr/share/sounds/sf2/FluidR3_GM.sf2)")
    build.add_argument("--program", type=int, default=0, metavar="N",
                       help="FluidSynth: General MIDI program 0-127 (0 piano, 48 strings, 52 choir, 73 flute)")
    build.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    build.add_argument("--no-display-sheets", action="store_true",
                       help="skip the display images with lyrics under the notes")
    build.add_argument("--sheet-batch", type=int, default=32,
                       help="snippets per LilyPond run (default 32)")
    build.add_argument("--shard", default=None, metavar="K/N",
                       help="build only shard K of N (0 ≤ K < N, e.g. $SLURM_ARRAY_TASK_ID/N); "
                            "join the N folders with `ugaar dataset merge`")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=_build)

    info = sub.add_parser("info", help="print counts, renderers and skipped files of a dataset")
    info.add_argument("dir", help="dataset folder")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.set_defaults(func=_info)

    merge = sub.add_parser("merge", help="join the folders of `dataset build --shard K/N` "
                                         "into the dataset one whole build makes")
    merge.add_argument("shard_dirs", nargs="+", metavar="SHARD_DIR",
                       help="the folders of all N shards, in any order")
    merge.add_argument("--out", required=True, help="dataset folder to write")
    merge.add_argument("--quiet", action="store_true", help="no progress bar")
    merge.set_defaults(func=_merge)

    render = sub.add_parser("render-audio", help="render one split of a dataset again in another timbre "
                                                 "(a new dataset folder, for evaluation)")
    render.add_argument("dir", help="dataset folder")
    render.add_argument("--split", default="test", choices=("train", "val", "test", "all"))
    render.add_argument("--out", required=True, help="dataset folder to write (sheets are linked)")
    render.add_argument("--audio-renderer", default="fluidsynth", choices=("fluidsynth", "builtin"))
    render.add_argument("--soundfont", metavar="PATH", default=None, help="FluidSynth SoundFont (.sf2)")
    render.add_argument("--program", type=int, default=0, metavar="N", help="General MIDI program 0-127")
    render.add_argument("--noise-snr", type=float, default=None, metavar="DB",
                        help="add white noise at this signal-to-noise ratio (dB)")
    render.add_argument("--seed", type=int, default=0, help="seed of the noise")
    render.add_argument("--transpose", type=int, default=0, metavar="N",
                        help="play every note N semitones higher (negative: lower), as a recording in another key "
                             "would; the sheets keep their notes")
    render.add_argument("--quiet", action="store_true", help="no progress bar")
    render.set_defaults(func=_render_audio)


def _soundfont(path: str | None) -> str | None:
    from model.errors import BadInputError
    if path is None:
        return None
    if not Path(path).is_file():
        raise BadInputError(f"--soundfont {path}", "no such file",
                            "give a .sf2 file (Debian: apt-get install fluid-soundfont-gm)")
    return str(Path(path).resolve())


def _program(n: int) -> int:
    from model.errors import BadInputError
    if not 0 <= n <= 127:
        raise BadInputError(f"--program {n}", "a General MIDI program is 0-127", "e.g. 0 piano, 48 strings")
    return n


def _render_audio(args: argparse.Namespace) -> int:
    from model.data.render_split import Rendering, render_split
    from model.validate import check_dataset_folder
    check_dataset_folder(args.dir)
    if not -24 <= args.transpose <= 24:
        from model.errors import BadInputError
        raise BadInputError(f"--transpose {args.transpose}", "transpose by at most two octaves", "e.g. --transpose -3")
    rendering = Rendering(renderer=args.audio_renderer, soundfont=_soundfont(args.soundfont),
                          program=_program(args.program), noise_snr_db=args.noise_snr, seed=args.seed,
                          transpose=args.transpose)
    bar = None if args.quiet else StageBar()
    t0 = time.perf_counter()
    try:
        dataset = render_split(args.dir, args.split, args.out, rendering, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    audio = dataset.renderers.get("audio", {})
    print(f"rendered {len(dataset.samples)} {args.split} samples into {args.out} in "
          f"{time.perf_counter() - t0:.1f} s ({audio.get('version')}"
          + (f", noise {args.noise_snr:g} dB SNR" if args.noise_snr is not None else "") + ")")
    print(f"embed it with trained encoders: ugaar features extract {args.out} --encoders ENCODERS_DIR")
    return 0


def _build(args: argparse.Namespace) -> int:
    from model.data.dataset import BuildConfig, build_dataset
    from model.data.shards import parse_shard
    if args.source in ("midi", "musicxml") and not args.path:
        raise ValueError(f"--source {args.source} needs a PATH")
    config = BuildConfig(source=args.source, path=args.path, out=args.out, limit=args.limit,
                         workers=max(1, args.workers), all_windows=args.all_windows,
                         audio_renderer=args.audio_renderer, split_seed=args.seed,
                         display_sheets=not args.no_display_sheets,
                         sheet_batch_size=max(1, args.sheet_batch),
                         shard=parse_shard(args.shard) if args.shard else None,
                         soundfont=_soundfont(args.soundfont), program=_program(args.program))
    bar = None if args.quiet else StageBar()
    t0 = time.perf_counter()
    try:
        dataset = build_dataset(config, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    print(f"built {args.out} in {time.perf_counter() - t0:.1f} s")
    _print_summary(dataset.summary())
    return 0


def _merge(args: argparse.Namespace) -> int:
    from model.data.merge import MERGE_REPORT_NAME, merge_shards
    bar = None if args.quiet else StageBar()
    t0 = time.perf_counter()
    try:
        dataset, merged = merge_shards(args.shard_dirs, args.out, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    print(f"merged {len(merged['shards'])} shards into {args.out} in "
          f"{time.perf_counter() - t0:.1f} s ({merged['files']['linked']} files linked, "
          f"{merged['files']['copied']} copied, {merged['files']['present']} already there)")
    dropped = merged["dropped_duplicates"]
    print(f"  songs left out as duplicates of a song in another shard: {len(dropped)}"
          + (f" (see {MERGE_REPORT_NAME})" if dropped else ""))
    for d in dropped[:20]:
        print(f"    {d['song_id']} ({d['dir']}) -> {d['canonical']} ({d['canonical_dir']})")
    _print_summary(dataset.summary())
    return 0


def _info(args: argparse.Namespace) -> int:
    from model.data.dataset import Dataset
    from model.validate import check_dataset_folder
    check_dataset_folder(args.dir)  # a file or a missing folder: says which, and how to build one
    summary = Dataset.open(args.dir).summary()
    if args.json:
        print(json.dumps(summary, indent=1, ensure_ascii=False))
    else:
        _print_summary(summary)
    return 0


def _print_summary(s: dict[str, Any]) -> None:
    print(f"dataset {s['root']}  ({s['samples']} samples from {s['songs']} songs; "
          f"content hash {s['content_hash'][:12]})")
    print("  samples per split: " + ", ".join(
        f"{k} {v} ({s['songs_per_split'].get(k, 0)} songs)"
        for k, v in s["samples_per_split"].items()))
    print("  samples per source: " + ", ".join(f"{k} {v}" for k, v in
                                              sorted(s["samples_per_source"].items())))
    for kind, r in sorted(s["renderers"].items()):
        print(f"  {kind} renderer: {r.get('name')} ({r.get('version')})")
    w = s.get("windows", {})
    d = s.get("duplicates", {})
    print(f"  windows dropped for silence: {w.get('dropped_silence', 0)}; songs too short: "
          f"{w.get('songs_too_short', 0)}; duplicate songs merged: {d.get('merged_songs', 0)}")
    cleaning = s.get("cleaning") or {}
    counts = cleaning.get("counts", cleaning) if isinstance(cleaning, dict) else {}
    if counts:
        print("  cleaning: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    failures = s.get("render_failures", [])
    if failures:
        print(f"  render failures ({len(failures)}):")
        for f in failures[:20]:
            print(f"    {f['sample_id']}: {f['reason']}")
    skipped = s.get("skipped", [])
    print(f"  skipped files: {len(skipped)}")
    for item in skipped[:50]:
        print(f"    {item['path']}: {item['reason']}")
    if len(skipped) > 50:
        print(f"    ... and {len(skipped) - 50} more (ugaar dataset info --json)")
