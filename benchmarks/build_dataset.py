"""Benchmark the dataset build: audio and sheet rendering rates, whole-release time.

Usage::

    python benchmarks/build_dataset.py --songs 500 --workers 1 2
    python benchmarks/build_dataset.py --full --workers 2            # whole LMD-full release
    python benchmarks/build_dataset.py --from-manifest ~/.cache/ugaar/bench/lmd-full
    python benchmarks/build_dataset.py --no-subset --renderers ~/.cache/ugaar/bench/lmd-full

Rendering rates come from fresh builds of the first ``--songs`` songs of the
shared LMD-full release (paper rules) into temporary folders; the builder
times its own stages (``report.timings_s`` in the manifest).  ms/sample is
wall time divided by samples, so with 2 workers it is the throughput of both
together.  Goals (issue 2): sheet <= 30 ms/snippet, audio <= 25 ms/sample,
whole LMD-full release <= 15 min on a 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from model.data.dataset import BuildConfig, Dataset, build_dataset
from model.sources.lmd_archive import find_lmd_archive, unpack_lmd_archive


def _release() -> Path:
    archive = find_lmd_archive()
    if archive is None:
        sys.exit("shared LMD-full archive not found (../shared/data); nothing to benchmark")
    return unpack_lmd_archive(archive)


def _rates(ds: Dataset, display: bool) -> dict:
    t = ds.report["timings_s"]
    n = len(ds)
    snippets = n * (2 if display else 1)
    return {
        "samples": n, "songs": ds.report["songs"], "items": ds.report["items"],
        "parse_s": t["parse_s"], "audio_s": t["audio_s"], "sheet_s": t["sheet_s"],
        "total_s": t["total_s"],
        "audio_ms_per_sample": 1000 * t["audio_s"] / n,
        "audio_samples_per_s": n / t["audio_s"],
        "sheet_ms_per_snippet": 1000 * t["sheet_s"] / snippets,
        "sheet_snippets_per_s": snippets / t["sheet_s"],
        "audio_renderer": ds.renderers["audio"]["name"],
    }


def bench_subset(songs: int, workers: int, display: bool, audio_renderer: str) -> dict:
    out = Path(tempfile.mkdtemp(prefix="ugaar-bench-"))
    try:
        ds = build_dataset(BuildConfig(source="lmd-npy", path=str(_release()), out=str(out),
                                       limit=songs, workers=workers, display_sheets=display,
                                       audio_renderer=audio_renderer))
        return {"what": f"{songs} songs", "workers": workers, "display_sheets": display,
                **_rates(ds, display)}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def bench_full(workers: int, display: bool, out: str | None) -> dict:
    target = Path(out) if out else Path(tempfile.mkdtemp(prefix="ugaar-bench-full-"))
    t0 = time.perf_counter()
    ds = build_dataset(BuildConfig(source="lmd-npy", path=str(_release()), out=str(target),
                                   workers=workers, display_sheets=display))
    wall = time.perf_counter() - t0
    result = {"what": "LMD-full", "workers": workers, "display_sheets": display,
              "wall_s": wall, **_rates(ds, display)}
    if not out:
        shutil.rmtree(target, ignore_errors=True)
    return result


def from_manifest(folder: str) -> dict:
    ds = Dataset.open(folder)
    display = bool(ds.config.get("display_sheets", True))
    return {"what": f"manifest {folder}", "workers": ds.config.get("workers"),
            "display_sheets": display, **_rates(ds, display)}


def _cpu_s() -> float:
    """CPU seconds of this process and its waited-for children (LilyPond)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bench_renderers(folder: str, n: int) -> list[dict]:
    """Wall and CPU time per unit of each renderer alone, one process, on ``n`` samples.

    CPU time is what a dedicated core would need; on a shared machine wall
    time is larger by the contention.
    """
    from model.render.audio import make_audio_renderer, write_audio
    from model.render.sheet import SheetJob, SheetRenderer
    samples = Dataset.open(folder).samples[:n]
    work = Path(tempfile.mkdtemp(prefix="ugaar-bench-r-"))
    rows = []
    try:
        for kind in ("fluidsynth", "builtin"):
            try:
                renderer = make_audio_renderer(kind)
            except Exception as exc:  # noqa: BLE001 - FluidSynth may be absent
                print(f"  {kind}: not available ({exc})")
                continue
            c0, t0 = _cpu_s(), time.perf_counter()
            for s in samples:
                write_audio(work / f"{s.sample_id}.flac", renderer.render(s.notes), 16000)
            rows.append({"renderer": f"audio {kind} (+FLAC write)", "n": len(samples),
                         "wall_ms": 1000 * (time.perf_counter() - t0) / len(samples),
                         "cpu_ms": 1000 * (_cpu_s() - c0) / len(samples)})
        for with_lyrics in (False, True):
            sheet = SheetRenderer(batch_size=32)
            jobs = [SheetJob(work / f"{s.sample_id}-{with_lyrics}.png", s.notes,
                             with_lyrics=with_lyrics, tempo_bpm=120) for s in samples]
            c0, t0 = _cpu_s(), time.perf_counter()
            ok = sum(r.ok for r in sheet.render_batch(jobs))
            rows.append({"renderer": f"sheet lilypond lyrics={with_lyrics} (batch 32)",
                         "n": ok, "wall_ms": 1000 * (time.perf_counter() - t0) / len(jobs),
                         "cpu_ms": 1000 * (_cpu_s() - c0) / len(jobs)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        print(f"{row['renderer']:>40} | {row['n']:5d} | wall {row['wall_ms']:6.1f} ms | "
              f"cpu {row['cpu_ms']:6.1f} ms per unit", flush=True)
    return rows


def _print(row: dict) -> None:
    print(f"{row['what']:>28} | workers {row['workers']} | display {str(row['display_sheets']):5} | "
          f"{row['samples']:6d} samples | parse {row['parse_s']:7.1f} s | "
          f"audio {row['audio_ms_per_sample']:6.1f} ms/sample ({row['audio_renderer']}) | "
          f"sheet {row['sheet_ms_per_snippet']:6.1f} ms/snippet | total {row['total_s']:7.1f} s",
          flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=500, help="songs for the rendering rates")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-subset", action="store_true", help="skip the rendering rates")
    parser.add_argument("--display-sheets", action="store_true",
                        help="also engrave the display sheets (2 snippets per sample)")
    parser.add_argument("--audio-renderer", default="auto")
    parser.add_argument("--full", action="store_true", help="build the whole LMD-full release")
    parser.add_argument("--full-out", default=None, help="keep the full build in this folder")
    parser.add_argument("--from-manifest", nargs="*", default=[],
                        help="report the stage timings recorded in built datasets")
    parser.add_argument("--renderers", default=None, metavar="DIR",
                        help="time each renderer alone (wall and CPU) on samples of DIR")
    parser.add_argument("--renderer-samples", type=int, default=128)
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)

    print(f"# {platform.node()} · {os.cpu_count()} CPUs · load {os.getloadavg()[0]:.1f}",
          flush=True)
    rows = []
    if args.renderers:
        rows += bench_renderers(args.renderers, args.renderer_samples)
    for folder in args.from_manifest:
        rows.append(from_manifest(folder))
        _print(rows[-1])
    if not args.no_subset:
        for w in args.workers:
            rows.append(bench_subset(args.songs, w, args.display_sheets, args.audio_renderer))
            _print(rows[-1])
    if args.full:
        for w in args.workers:
            rows.append(bench_full(w, args.display_sheets, args.full_out))
            _print(rows[-1])
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
