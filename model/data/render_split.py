"""Render one split of a built dataset again in another timbre (evaluation sets).

``render_split(DIR, "test", OUT, renderer="fluidsynth", soundfont=FluidR3, program=48)``
writes ``OUT`` as a dataset of its own: the split's samples, audio rendered
anew (optionally with noise at a given SNR), the feature sheets hard-linked
to the original ones (copied across file systems), and a manifest whose audio
renderer says what was done (so its content hash, and every feature cache
keyed by it, differs from the original's).  ``ugaar features extract OUT
--encoders ENC`` then embeds it with trained encoders; ``benchmarks/timbre.py``
does the same in memory with :func:`render_waves`.

Resumable: audio files are written atomically and kept when the state file
names the same rendering; the manifest is written last.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

import dataclasses

from model.atomic import link_or_copy, write_json
from model.progress import CancelToken, ProgressCallback, report

STATE_NAME = ".render_state.json"


@dataclass
class Rendering:
    """How to render a split: synthesiser, SoundFont, program, noise.

    Parameters
    ----------
    renderer : str
        ``fluidsynth`` or ``builtin``.
    soundfont : str or None
        FluidSynth SoundFont (None: TimGM6mb).
    program : int
        General MIDI program (FluidSynth).
    noise_snr_db : float or None
        White noise added at this SNR (dB), seeded per sample.
    seed : int
        Seed of the noise.
    sample_rate : int
    transpose : int
        Semitones added to every note before rendering (a recording in
        another key; the sheets and notes of the folder stay as they were).
    """

    renderer: str = "fluidsynth"
    soundfont: Optional[str] = None
    program: int = 0
    noise_snr_db: Optional[float] = None
    seed: int = 0
    sample_rate: int = 16000
    transpose: int = 0

    def make_renderer(self) -> Any:
        from model.render.audio import make_audio_renderer
        return make_audio_renderer(self.renderer, self.sample_rate, soundfont=self.soundfont, program=self.program)

    def identity(self, renderer: Any) -> dict[str, Any]:
        """The manifest's ``renderers["audio"]`` for audio made this way."""
        ident: dict[str, Any] = {"name": renderer.name, "version": renderer.version,
                                 "sample_rate": int(renderer.sample_rate)}
        if self.soundfont:
            ident["soundfont"] = str(self.soundfont)
        if self.program:
            ident["program"] = int(self.program)
        if self.noise_snr_db is not None:
            ident["noise_snr_db"] = float(self.noise_snr_db)
            ident["noise_seed"] = int(self.seed)
        if self.transpose:
            ident["transpose"] = int(self.transpose)
        return ident


def render_waves(samples: Sequence[Any], rendering: Rendering, renderer: Any = None
                 ) -> Iterator[tuple[str, np.ndarray]]:
    """``(sample_id, wave)`` for each sample, rendered (and noised) as ``rendering`` says."""
    from model.features.augmentation.augment import add_noise, item_rng
    renderer = renderer or rendering.make_renderer()
    for sample in samples:
        notes = sample.notes
        if rendering.transpose:
            notes = tuple(dataclasses.replace(n, pitch=int(np.clip(n.pitch + rendering.transpose, 0, 127)))
                          for n in notes)
        wave = renderer.render(notes)
        if rendering.noise_snr_db is not None:
            wave = np.clip(add_noise(wave, rendering.noise_snr_db, item_rng(rendering.seed, sample.sample_id, 0)),
                           -1.0, 1.0)
        yield sample.sample_id, wave


def render_split(dataset: Any, split: str, out: str | os.PathLike[str], rendering: Rendering,
                 progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None) -> Any:
    """Write ``out``: the ``split`` samples of ``dataset`` with audio rendered as ``rendering`` says.

    Parameters
    ----------
    dataset : Dataset or path
    split : str
        ``train``, ``val``, ``test`` or ``all``.
    out : path
        The new dataset folder (an unfinished one resumes).
    rendering : Rendering

    Returns
    -------
    Dataset
        ``out`` opened.
    """
    from model.data.dataset import MANIFEST_NAME, Dataset
    from model.data.build import content_hash
    from model.render.audio import write_audio

    if isinstance(dataset, (str, os.PathLike)):
        dataset = Dataset.open(dataset)
    samples = [s for s in dataset.samples if split == "all" or s.split == split]
    if not samples:
        raise ValueError(f"{dataset.root}: no samples in split {split!r}")
    root = Path(out)
    if root.resolve() == Path(dataset.root).resolve():
        raise ValueError("the output folder must differ from the dataset's")
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST_NAME).unlink(missing_ok=True)  # unfinished until the new manifest is written
    renderer = rendering.make_renderer()
    try:
        identity = rendering.identity(renderer)
        state_path = root / STATE_NAME
        try:
            old = json.loads(state_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            old = None
        if old != identity and (root / "audio").is_dir():
            shutil.rmtree(root / "audio")  # made another way: render again
        write_json(state_path, identity)
        (root / "audio").mkdir(parents=True, exist_ok=True)
        todo = [s for s in samples if not (root / "audio" / f"{s.sample_id}.flac").is_file()]
        report(progress, "audio", len(samples) - len(todo), len(samples), "rendering")
        for i, (sid, wave) in enumerate(render_waves(todo, rendering, renderer)):
            write_audio(root / "audio" / f"{sid}.flac", wave, renderer.sample_rate)
            report(progress, "audio", len(samples) - len(todo) + i + 1, len(samples), "rendering")
            if cancel is not None:
                cancel.raise_if_set()
    finally:
        if hasattr(renderer, "close"):
            renderer.close()
    for folder in ("sheet", "sheet_lyrics"):
        src = Path(dataset.root) / folder
        if src.is_dir():
            (root / folder).mkdir(exist_ok=True)
            for s in samples:
                for suffix in (".png", ".json"):
                    # a hard link (a copy across file systems): the new dataset stays whole when the
                    # original is moved or deleted, which a symlink would not; a symlink left by an
                    # older run is replaced, files already there are kept (resume)
                    src_file, dst_file = src / f"{s.sample_id}{suffix}", root / folder / f"{s.sample_id}{suffix}"
                    if src_file.is_file() and (dst_file.is_symlink() or not dst_file.exists()):
                        link_or_copy(src_file, dst_file)
    manifest = dict(dataset.manifest)  # the opened dataset's manifest.json; top-level keys are replaced below
    keep = {s.sample_id for s in samples}
    songs = {s.song_id for s in samples}
    renderers = {**manifest.get("renderers", {}), "audio": identity}
    manifest["renderers"] = renderers
    manifest["samples"] = [row for row in manifest["samples"] if row["sample_id"] in keep]
    manifest["songs"] = [row for row in manifest.get("songs", []) if row["song_id"] in songs]
    manifest["content_hash"] = content_hash(samples, renderers)
    manifest["derived"] = {"from": str(dataset.root), "from_content_hash": dataset.content_hash, "split": split,
                           "rendering": asdict(rendering)}
    write_json(root / MANIFEST_NAME, manifest, indent=None)
    return Dataset.open(root)
