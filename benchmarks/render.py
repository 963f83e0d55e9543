"""Rendering speed per sample on LMD samples: audio (both renderers) and sheet.

Usage::

    python benchmarks/render.py [--samples 200] [--single 24] [--batch-size 32]

Takes the first 20 notes of the first ``--samples`` readable songs of the
shared LMD-full release (``model.sources.lmd_archive``), renders each sample
with FluidSynth and with the built-in synthesiser (renderer reused, as in a
build), engraves them with LilyPond batched (``--batch-size`` snippets per
process) and, on the first ``--single`` samples, one process per snippet.
Prints wall-clock ms per sample and, for LilyPond, the CPU time of its
processes (less sensitive to other load on the machine).  Writes go to a
temporary folder that is removed afterwards.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.render.audio import fluidsynth_available, make_audio_renderer, write_audio  # noqa: E402
from model.render.sheet import SheetJob, SheetRenderer  # noqa: E402
from model.data.song import Note  # noqa: E402
from model.sources.lmd_archive import find_lmd_archive, unpack_lmd_archive  # noqa: E402

WINDOW = 20


def lmd_samples(count: int) -> list[tuple[tuple[Note, ...], float]]:
    """(notes, tempo) of the first 20 notes of the first ``count`` usable songs."""
    from model.sources.npy_release import read_song
    from model.sources import SourceError

    archive = find_lmd_archive()
    if archive is None:
        sys.exit("shared LMD-full archive not found (../shared/data); nothing to measure")
    release = unpack_lmd_archive(archive)
    samples = []
    for path in sorted((release / "Syllable_Parsing").glob("*.npy")):
        try:
            song = read_song(str(path))
        except SourceError:
            continue
        if len(song.notes) >= WINDOW:
            samples.append((tuple(song.notes[:WINDOW]), song.tempo_bpm))
        if len(samples) == count:
            break
    return samples


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_audio(kind: str, samples, out: Path) -> None:
    renderer = make_audio_renderer(kind)
    renderer.render(samples[0][0])  # warm-up (first call allocates voices)
    seconds = 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    for notes, _ in samples:
        audio = renderer.render(notes)
        seconds += audio.size / renderer.sample_rate
    render_ms = (time.perf_counter() - t0) / len(samples) * 1000
    render_cpu = (time.process_time() - c0) / len(samples) * 1000
    t0 = time.perf_counter()
    for i, (notes, _) in enumerate(samples[:50]):
        write_audio(out / f"{kind}-{i}.flac", renderer.render(notes), renderer.sample_rate)
    with_write_ms = (time.perf_counter() - t0) / min(50, len(samples)) * 1000
    print(f"audio {kind:10s} {render_ms:6.1f} ms/sample render ({render_cpu:5.1f} ms CPU), "
          f"{with_write_ms:6.1f} ms/sample "
          f"render+FLAC  (mean length {seconds / len(samples):.1f} s; {renderer.version})")


def bench_sheet(samples, out: Path, batch_size: int, single: int) -> None:
    renderer = SheetRenderer(batch_size=batch_size)
    jobs = [SheetJob(out / f"s{i}.png", notes, tempo_bpm=tempo)
            for i, (notes, tempo) in enumerate(samples)]
    for label, size, subset in (("batched", batch_size, jobs), ("one/process", 1, jobs[:single])):
        if not subset:
            continue
        renderer.batch_size = size
        cpu0, t0 = children_cpu_s(), time.perf_counter()
        results = renderer.render_batch(subset)
        wall = (time.perf_counter() - t0) / len(subset) * 1000
        cpu = (children_cpu_s() - cpu0) / len(subset) * 1000
        ok = sum(r.ok for r in results)
        cursors = sum(r.note_x is not None for r in results)
        print(f"sheet {label:11s} {wall:6.1f} ms/snippet wall, {cpu:6.1f} ms/snippet LilyPond CPU "
              f"({len(subset)} snippets, batch {size}, {ok} ok, {cursors} with note_x)")
    widths = []
    from PIL import Image

    for job in jobs:
        if job.out_png.is_file():
            with Image.open(job.out_png) as im:
                widths.append(im.size)
    if widths:
        w, h = np.array(widths).T
        print(f"sheet PNG size: width median {int(np.median(w))} px, height median "
              f"{int(np.median(h))} px (staff space {renderer.staff_space_px:.2f} px)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--single", type=int, default=24, help="snippets for one-process-each")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    samples = lmd_samples(args.samples)
    print(f"{len(samples)} LMD samples of {WINDOW} notes; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="ugaar-bench-render-") as tmp:
        out = Path(tmp)
        kinds = ["builtin"] + (["fluidsynth"] if fluidsynth_available()[0] else [])
        for kind in kinds:
            bench_audio(kind, samples, out)
        bench_sheet(samples, out, args.batch_size, args.single)


if __name__ == "__main__":
    main()
