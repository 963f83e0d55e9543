"""The dataset folder: build configuration, and reading a built dataset.

A dataset is a folder (see ``docs/dataset.md``)::

    DIR/manifest.json            songs, samples (notes, split), build config,
                                 cleaning report, skipped files, renderers, content hash
    DIR/audio/<sample_id>.flac   16 kHz mono
    DIR/sheet/<sample_id>.png    engraved snippet without lyrics (feature input)
    DIR/sheet/<sample_id>.json   note x-positions in the PNG (null when unknown)
    DIR/sheet_lyrics/<id>.png    display version with syllables under the notes

The builder lives in ``model/data/build.py``; ``build_dataset`` here is
its public entry point.  The manifest is written last, so a folder without
one is an unfinished build (run the build again to resume it).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

import numpy as np

from model.errors import UgaarError
from model.progress import CancelToken, ProgressCallback
from model.data.song import Sample

MANIFEST_NAME = "manifest.json"
FORMAT_NAME = "ugaar-dataset"
FORMAT_VERSION = 1


def _default_cleaning() -> Any:
    # Imported lazily: reading a dataset never needs the cleaning rules.
    from model.data.cleaning import CleaningConfig
    return CleaningConfig()


def _cleaning_to_json(cleaning: Any) -> Any:
    data = cleaning.to_json() if hasattr(cleaning, "to_json") else cleaning
    return json.loads(data) if isinstance(data, str) else data


@dataclass
class BuildConfig:
    """Everything that decides what ``build_dataset`` produces.

    Parameters
    ----------
    source : str
        One of ``model.sources.SOURCE_KINDS`` (``lmd-npy``, ``midi``,
        ``musicxml``, ``music21-corpus``).
    path : str or None
        Folder or file to read; None for the embedded music21 corpus.
    out : str
        Dataset folder to write (created; an unfinished build there resumes).
    limit : int or None
        Read only the first ``limit`` items of the source (sorted order).
    workers : int
        Processes for parsing and rendering (1 = everything in this process).
    all_windows : bool
        Every non-overlapping window instead of the paper's first two.
    window, max_silence : int, float
        Notes per sample; a window with a longer silence (s) is dropped.
    split_seed, split_fractions : int, tuple
        Split by song: pure function of (seed, canonical song id).
    cleaning : model.data.cleaning.CleaningConfig
        Cleaning rules.
    audio_renderer : str
        ``auto``, ``fluidsynth`` or ``builtin``.
    soundfont : str or None
        FluidSynth only: a General MIDI SoundFont (.sf2); None = pretty_midi's
        TimGM6mb.  Left out of the JSON when None.
    program : int
        FluidSynth only: General MIDI program 0–127 (0 = piano).  Left out of
        the JSON when 0.
    sample_rate : int
        Audio sample rate (Hz).
    display_sheets : bool
        Also engrave a display image with the syllables under the notes.
    sheet_resolution : int or None
        PNG resolution (dpi) for LilyPond; None = the renderer's default.
    sheet_batch_size : int
        Snippets per LilyPond run.
    shard : (int, int) or None
        ``(K, N)``: build only shard K of N (``model.data.shards``); None
        builds every song.  Left out of the JSON when None, so a whole
        build's manifest is what it was before shards existed.
    """

    source: str
    path: Optional[str]
    out: str
    limit: Optional[int] = None
    workers: int = 1
    all_windows: bool = False
    window: int = 20
    max_silence: float = 4.0
    split_seed: int = 0
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    cleaning: Any = field(default_factory=_default_cleaning)
    audio_renderer: str = "auto"
    sample_rate: int = 16000
    display_sheets: bool = True
    sheet_resolution: Optional[int] = None
    sheet_batch_size: int = 32
    shard: Optional[tuple[int, int]] = None
    soundfont: Optional[str] = None
    program: int = 0

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["split_fractions"] = list(self.split_fractions)
        data["cleaning"] = _cleaning_to_json(self.cleaning)
        # neutral renderer choices stay out: an existing dataset's settings are unchanged
        if self.soundfont is None:
            data.pop("soundfont")
        if not self.program:
            data.pop("program")
        if self.shard is None:
            data.pop("shard")
        else:
            data["shard"] = [int(x) for x in self.shard]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "BuildConfig":
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "split_fractions" in kwargs:
            kwargs["split_fractions"] = tuple(float(x) for x in kwargs["split_fractions"])
        if kwargs.get("shard") is not None:
            kwargs["shard"] = tuple(int(x) for x in kwargs["shard"])
        if "cleaning" in kwargs:
            from model.data.cleaning import CleaningConfig
            raw = kwargs["cleaning"]
            kwargs["cleaning"] = CleaningConfig.from_json(raw)
        return cls(**kwargs)

    def output_settings(self) -> dict[str, Any]:
        """The settings that change the built samples (not where or how fast)."""
        data = self.to_json()
        for key in ("out", "workers", "sheet_batch_size"):
            data.pop(key, None)
        return data


def build_dataset(config: BuildConfig, progress: Optional[ProgressCallback] = None,
                  cancel: Optional[CancelToken] = None) -> "Dataset":
    """Build (or resume) the dataset described by ``config``; see ``model.data.build``."""
    from model.data.build import build_dataset as _build
    return _build(config, progress=progress, cancel=cancel)


class DatasetError(UgaarError, ValueError):
    """A folder is not a (finished, readable) dataset (an expected failure: one line in the CLI)."""


class Dataset:
    """A built dataset folder, read-only.

    Attributes
    ----------
    root : Path
        The folder.
    manifest : dict
        The parsed ``manifest.json``.
    samples : list of Sample
        In manifest order (sorted by song id, then start).
    content_hash : str
        Hash of sample ids, notes, splits and renderer versions; feature
        caches key on it.
    renderers : dict
        ``{"audio": {...}, "sheet": {...}}`` with names and versions.
    report : dict
        Build report: cleaning counts, windows, duplicates, skipped files.
    """

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest
        self.samples = [Sample.from_json(s) for s in manifest["samples"]]
        self._by_id = {s.sample_id: s for s in self.samples}
        self.content_hash: str = manifest["content_hash"]
        self.renderers: dict[str, Any] = manifest.get("renderers", {})
        self.report: dict[str, Any] = manifest.get("report", {})

    @classmethod
    def open(cls, root: str | Path) -> "Dataset":
        """Open a built dataset; raise ``DatasetError`` naming the folder if it is not one."""
        root = Path(root)
        path = root / MANIFEST_NAME
        if not root.is_dir():
            raise DatasetError(f"{root}: no such dataset folder")
        if not path.is_file():
            raise DatasetError(f"{root}: not a finished dataset (no {MANIFEST_NAME}; "
                               "run `ugaar dataset build` again to finish it)")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{root}: unreadable {MANIFEST_NAME}: {exc}") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
            raise DatasetError(f"{root}: {MANIFEST_NAME} is not a UGAAR dataset manifest")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise DatasetError(f"{root}: dataset format version {manifest.get('format_version')} "
                               f"is not supported (expected {FORMAT_VERSION})")
        try:
            return cls(root, manifest)
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{root}: invalid {MANIFEST_NAME}: {exc!r}") from exc

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest.get("config", {})

    @property
    def songs(self) -> list[dict[str, Any]]:
        return self.manifest.get("songs", [])

    def sample(self, sample_id: str) -> Sample:
        try:
            return self._by_id[sample_id]
        except KeyError:
            raise KeyError(f"no sample {sample_id!r} in dataset {self.root}") from None

    def split_ids(self, split: str) -> list[str]:
        """Sample ids of ``split`` (``train``, ``val``, ``test``) in manifest order."""
        return [s.sample_id for s in self.samples if s.split == split]

    def audio_path(self, sample_id: str) -> Path:
        return self.root / "audio" / f"{sample_id}.flac"

    def load_audio(self, sample_id: str) -> tuple[np.ndarray, int]:
        from model.render.audio import read_audio
        return read_audio(self.audio_path(sample_id))

    def sheet_path(self, sample_id: str) -> Path:
        return self.root / "sheet" / f"{sample_id}.png"

    def display_sheet_path(self, sample_id: str) -> Optional[Path]:
        path = self.root / "sheet_lyrics" / f"{sample_id}.png"
        return path if path.is_file() else None

    def note_x(self, sample_id: str) -> Optional[list[float]]:
        path = self.root / "sheet" / f"{sample_id}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        xs = data.get("note_x") if isinstance(data, dict) else None
        return [float(x) for x in xs] if xs else None

    def summary(self) -> dict[str, Any]:
        """Counts per split and source, skipped files with reasons, renderers."""
        per_split = {name: 0 for name in ("train", "val", "test")}
        per_source: dict[str, int] = {}
        songs_per_split = {name: set() for name in per_split}
        for s in self.samples:
            per_split[s.split] = per_split.get(s.split, 0) + 1
            per_source[s.source] = per_source.get(s.source, 0) + 1
            songs_per_split.setdefault(s.split, set()).add(s.song_id)
        return {
            "root": str(self.root),
            "samples": len(self.samples),
            "songs": len({s.song_id for s in self.samples}),
            "samples_per_split": per_split,
            "songs_per_split": {k: len(v) for k, v in songs_per_split.items()},
            "samples_per_source": per_source,
            "renderers": self.renderers,
            "skipped": self.report.get("skipped", []),
            "windows": self.report.get("windows", {}),
            "duplicates": self.report.get("duplicates", {}),
            "render_failures": self.report.get("render_failures", []),
            "cleaning": self.report.get("cleaning", {}),
            "content_hash": self.content_hash,
        }
