"""Timbre benchmark: audio↔sheet retrieval when the test audio is played by other instruments.

For a dataset and a set of trained encoders (given directly, or a run's), the
test split is rendered again in each of these timbres, embedded with the
encoders' audio CNN and ranked against the split's sheets (embedded once):

* FluidSynth piano with TimGM6mb (the training SoundFont);
* the built-in synthesiser;
* held-out programs of Debian's FluidR3_GM (strings 48, flute 73, choir 52),
  never used in training or augmentation (skipped when the SoundFont is
  absent: ``apt-get install fluid-soundfont-gm``);
* FluidSynth piano with white noise at 20 dB SNR.

Prints one markdown table (audio→sheet and sheet→audio R@1, R@10, MedR per
rendering, and the cost of rendering and embedding).

Usage::

    nice -n 19 python benchmarks/timbre.py DATASET (--run RUN | --encoders DIR)
        [--split test] [--limit N] [--threads 2] [--json OUT.json] [--label "after"]

Rendering is in memory (``model.data.render_split.render_waves``); nothing is
written to the dataset.  ``ugaar dataset render-audio`` writes the same
renderings as dataset folders.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def renderings(seed: int = 0) -> list[tuple[str, object]]:
    """``[(label, Rendering or skip reason)]`` in table order."""
    from model.features.augmentation.config import GM_NAMES
    from model.render.audio import held_out_soundfont
    from model.data.render_split import Rendering

    held = held_out_soundfont()
    rows: list[tuple[str, object]] = [("FluidSynth piano (TimGM6mb, training font)", Rendering("fluidsynth")),
                                      ("built-in synth", Rendering("builtin"))]
    for program in (48, 73, 52):
        label = f"held-out {GM_NAMES[program]} (FluidR3_GM program {program})"
        rows.append((label, Rendering("fluidsynth", str(held), program) if held is not None
                     else "FluidR3_GM absent (apt-get install fluid-soundfont-gm)"))
    rows.append(("FluidSynth piano + noise 20 dB SNR", Rendering("fluidsynth", noise_snr_db=20.0, seed=seed)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="a built dataset folder")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--run", help="a run folder (its features' encoders are used)")
    who.add_argument("--encoders", help="a trained encoders folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="only the first N samples of the split")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--label", default="", help="a name for this table (e.g. before / after)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)

    import torch
    torch.set_num_threads(max(1, args.threads))
    from model.data.dataset import Dataset
    from model.features.extract import audio_input, load_encoders, sheet_input
    from model.features.learned.metrics import audio_sheet_figures
    from model.features.learned.pretrain import Ragged, embed_ragged

    encoders_dir = args.encoders
    if args.run:
        from model.ugaar import Run
        encoders_dir = Run.open(args.run).features_meta.get("encoders_dir")
        if not encoders_dir:
            parser.error(f"{args.run} does not record its encoders_dir")
    enc = load_encoders(encoders_dir)
    cfg = enc.config
    ds = Dataset.open(args.dataset)
    samples = [s for s in ds.samples if s.split == args.split][: args.limit]
    if len(samples) < 2:
        parser.error(f"split {args.split!r} has {len(samples)} samples; need 2")
    model = enc.model.eval()
    sheet = Ragged.from_list([sheet_input(ds.sheet_path(s.sample_id), cfg) for s in samples])
    sheet_vec = embed_ragged(model.sheet, sheet, max_items=cfg.extract_batch)

    from model.data.render_split import render_waves
    rows = []
    for label, rendering in renderings():
        if isinstance(rendering, str):
            rows.append({"rendering": label, "skipped": rendering})
            print(f"{label}: skipped ({rendering})", file=sys.stderr)
            continue
        t0 = time.perf_counter()
        items = [audio_input(wave, cfg.sample_rate, cfg) for _sid, wave in render_waves(samples, rendering)]
        audio_vec = embed_ragged(model.audio.forward_pooled, Ragged.from_list(items), max_items=cfg.extract_batch)
        ms = 1000 * (time.perf_counter() - t0) / len(samples)
        figs = audio_sheet_figures(audio_vec, sheet_vec)
        rows.append({"rendering": label, "ms_per_sample": ms, **figs})
        print(f"{label}: a→s R@1 {figs['audio→sheet']['R@1']:.1f} %, s→a R@1 {figs['sheet→audio']['R@1']:.1f} % "
              f"({ms:.1f} ms/sample)", file=sys.stderr)

    timbres = enc.report.get("timbres") or [f"{(enc.report.get('audio_renderer') or {}).get('version', '?')}"]
    title = f"Timbre benchmark{' — ' + args.label if args.label else ''}: {ds.root.name}, {args.split} split, " \
            f"N = {len(samples)}, encoders {Path(encoders_dir).name}"
    print(f"\n**{title}**  \naudio encoder trained on: {'; '.join(timbres)}\n")
    print("| test rendering | audio→sheet R@1 / R@10 / MedR | sheet→audio R@1 / R@10 / MedR | ms/sample |")
    print("|---|---|---|---|")
    for row in rows:
        if "skipped" in row:
            print(f"| {row['rendering']} | – | – | skipped: {row['skipped']} |")
            continue
        a, s = row["audio→sheet"], row["sheet→audio"]
        print(f"| {row['rendering']} | {a['R@1']:.1f} / {a['R@10']:.1f} / {a['MedR']:g} | "
              f"{s['R@1']:.1f} / {s['R@10']:.1f} / {s['MedR']:g} | {row['ms_per_sample']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"title": title, "timbres": timbres, "rows": rows}, indent=1,
                                              ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
