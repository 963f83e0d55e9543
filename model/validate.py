"""Checks at the boundaries: files and arguments a user hands to UGAAR.

Each function either returns what it checked (a parsed config, a loaded
checkpoint) or raises a :class:`model.errors.UgaarError` whose one line names
the file or argument, the problem and the fix.  The library's own exceptions
(numpy's ``BadZipFile``, libsndfile's errors, torch's zip reader) say what
failed inside the library; these say what is wrong with the user's file.

Nothing here imports torch at module level, so the CLI can check a query
before paying for torch.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import pickle
import struct
import typing
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from model.errors import BadInputError, CorruptFileError, MissingError, UgaarError

# Leading bytes of the files users mix up, to say what a file *is* when it is
# not what a command expects ("is a MIDI file, not a FeatureSet").
_MAGIC = (
    (b"MThd", "a MIDI file"),
    (b"RIFF", "a WAV file"),
    (b"fLaC", "a FLAC file"),
    (b"OggS", "an Ogg file"),
    (b"\x89PNG", "a PNG image"),
    (b"%PDF", "a PDF file"),
    (b"\x93NUMPY", "a single numpy array (.npy)"),
    (b"\xfd7zXZ", "an .xz archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"PK\x03\x04", "a zip archive"),
)

# A query waveform whose peak is below -60 dBFS is silence for the audio CNN:
# its log-mel input is the floor everywhere, and every "result" is noise.
SILENCE_PEAK = 10.0 ** (-60.0 / 20.0)

# The files a run folder's readers need, with the keys each must hold.
CHECKPOINT_KEYS = ("config", "method", "epoch", "step_in_epoch", "global_step", "best_score",
                   "best_epoch", "history", "n_events")
FEATURE_SET_KEYS = ("sample_ids", "song_ids", "splits", "audio", "sheet", "lyrics", "meta")


# ------------------------------------------------------------------ files
def file_kind(path: str | Path) -> str | None:
    """What a file looks like from its first bytes (``"a MIDI file"``), or None."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return None
    if not head:
        return "an empty file"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def check_file(path: str | Path, subject: str, what: str) -> Path:
    """``path`` as a readable regular file, else a :class:`UgaarError` naming ``subject``.

    Parameters
    ----------
    path : str or Path
    subject : str
        How the message names it (``"--audio notes.wav"``, ``"runs/x/best.pt"``).
    what : str
        The kind of file expected (``"an audio file"``), for the folder case.
    """
    p = Path(path)
    if not p.exists():
        raise MissingError(subject, "no such file")
    if p.is_dir():
        raise BadInputError(subject, f"is a folder, not {what}")
    if not os.access(p, os.R_OK):
        raise BadInputError(subject, "permission denied", "make the file readable")
    return p


def read_json_object(path: str | Path, subject: str | None = None) -> dict[str, Any]:
    """A JSON file that must hold an object, else a :class:`CorruptFileError` naming it."""
    subject = subject or str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CorruptFileError(subject, "is not a text (UTF-8 JSON) file") from None
    except json.JSONDecodeError as exc:
        raise CorruptFileError(subject, f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                               "restore it, or train the run again") from None
    except OSError as exc:
        raise CorruptFileError(subject, f"cannot be read ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise CorruptFileError(subject, f"holds a JSON {type(data).__name__}, not an object")
    return data


def load_checkpoint(path: str | Path, keys: Sequence[str] = ("method",)) -> dict[str, Any]:
    """A ``torch.save``\\ d dict read with ``weights_only=True``, checked for ``keys``.

    A truncated or overwritten file raises :class:`CorruptFileError` naming it,
    instead of torch's "PytorchStreamReader failed reading zip archive".
    """
    import torch

    p = check_file(path, str(path), "a checkpoint")
    fix = "copy it again, or train the run again (an interrupted copy leaves such files)"
    if os.path.getsize(p) == 0:
        raise CorruptFileError(str(p), "is empty", fix)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CorruptFileError(str(p), "holds objects other than tensors and plain values, which UGAAR "
                               "never writes; it is not a UGAAR checkpoint") from None
    # torch's legacy (non-zip) reader unpickles what it finds: damaged bytes raise
    # whatever the pickle machine trips on, not only RuntimeError
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, IndexError, KeyError, TypeError,
            AttributeError, struct.error, UnicodeDecodeError, MemoryError, RecursionError) as exc:
        kind = file_kind(p)
        what = f"is {kind}, not a checkpoint" if kind and kind != "a zip archive" else \
            f"is truncated or not a checkpoint ({type(exc).__name__})"
        raise CorruptFileError(str(p), what, fix) from None
    if not isinstance(state, dict):
        raise CorruptFileError(str(p), f"holds a {type(state).__name__}, not a UGAAR checkpoint")
    missing = [k for k in keys if k not in state]
    if missing:
        raise CorruptFileError(str(p), f"is not a UGAAR checkpoint (no {', '.join(missing)})")
    return state


def load_npz(path: str | Path, keys: Sequence[str] = (), what: str = "an .npz file") -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (no pickles), checked for ``keys``.

    Raises :class:`CorruptFileError` naming the file for a truncated archive,
    a file of another kind, a damaged member or a missing array.
    """
    p = check_file(path, str(path), what)
    fix = "copy it again, or recompute it (an interrupted copy leaves such files)"
    kind = file_kind(p)
    if kind != "a zip archive":  # every .npz is a zip; anything else would reach numpy's pickle path
        raise CorruptFileError(str(p), f"is {kind}, not {what}" if kind else f"is not {what} (not a zip archive)",
                               fix if kind == "an empty file" else "")
    try:
        with np.load(p, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise CorruptFileError(str(p), f"holds a single array, not {what}")
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise CorruptFileError(str(p), f"is not {what} (no {', '.join(missing)})")
            return {k: data[k] for k in data.files}
    except UgaarError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):  # an object array inside: UGAAR never writes one, so never unpickle it
            raise CorruptFileError(str(p), f"holds Python objects, so it is not {what} written by UGAAR") from None
        raise CorruptFileError(str(p), f"is damaged ({one_reason(exc)})", fix) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError) as exc:
        raise CorruptFileError(str(p), f"is truncated or damaged ({one_reason(exc)})", fix) from None


def one_reason(exc: BaseException) -> str:
    """``Type: message`` of an exception, for the parenthesis of a message."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ------------------------------------------------------- config dataclasses
def _type_problem(value: Any, tp: Any) -> str | None:
    """Why ``value`` (parsed JSON) cannot be a field of type ``tp``; None if it can."""
    origin = typing.get_origin(tp)
    if tp is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if tp is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be a whole number"
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        return None if math.isfinite(value) else "must be a finite number"
    if tp is str:
        return None if isinstance(value, str) else "must be a string"
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return "must be a list"
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if args and args[0] is int and not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return "must be a list of whole numbers"
        return None
    if origin is dict or tp is dict:
        return None if isinstance(value, dict) else "must be an object"
    return None  # a type this checker does not know: the dataclass's own checks decide


def _field_types(cls: type) -> dict[str, Any]:
    """Field name → type of a dataclass, tolerant of annotations it cannot resolve.

    An annotation naming a type imported only for type checkers makes
    ``get_type_hints`` fail; opening a run folder must not, so such fields
    fall back to their plain names and go unchecked here.
    """
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError, AttributeError):
        simple = {"int": int, "float": float, "bool": bool, "str": str}
        return {f.name: simple.get(f.type, f.type) if isinstance(f.type, str) else f.type
                for f in dataclasses.fields(cls)}


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def from_known_fields(cls: type, data: dict[str, Any]) -> Any:
    """``cls(**data)`` for a config dataclass, refusing fields it does not have (a typo, a newer file)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    return cls(**data)


def check_fields(data: dict[str, Any], cls: type, subject: str,
                 error: type[UgaarError] = CorruptFileError) -> None:
    """Check a dict of fields against dataclass ``cls``'s field types.

    Raises ``error`` (:class:`CorruptFileError` for a file, :class:`BadInputError`
    for ``--set``) naming ``subject`` and the first unknown or ill-typed field
    (``field 'epochs' must be a whole number, got "ten"``).
    """
    hints = _field_types(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        close = difflib.get_close_matches(unknown[0], names, n=1)
        raise error(subject, f"unknown field {unknown[0]!r}",
                               f"did you mean {close[0]!r}?" if close else f"{cls.__name__} has no such field")
    for name in names:
        if name in data:
            problem = _type_problem(data[name], hints.get(name))
            if problem:
                raise error(subject, f"field {name!r} {problem}, got {_shown(data[name])}")


def run_config_from_dict(data: dict[str, Any], subject: str):
    """A :class:`RunConfig` from a dict, or a :class:`CorruptFileError` naming ``subject`` and the field."""
    from model.ugaar.config import RunConfig

    check_fields(data, RunConfig, subject)
    try:
        return RunConfig.from_dict(data)
    except (ValueError, TypeError) as exc:  # RunConfig.validate names the field and the allowed values
        raise CorruptFileError(subject, str(exc)) from None


# --------------------------------------------------------------- run folders
def check_run_folder(run_dir: str | Path) -> Path:
    """``run_dir`` as a folder with a ``config.json``, else a message saying what it is."""
    p = Path(run_dir)
    fix = "train one with `ugaar train DATA --out DIR`"
    if not p.exists():
        raise MissingError(str(p), "not a training run (no such folder)", fix)
    if not p.is_dir():
        kind = file_kind(p)
        raise BadInputError(str(p), f"is {kind or 'a file'}, not a training run folder", fix)
    if not (p / "config.json").is_file():
        raise MissingError(str(p), "not a training run (no config.json)", fix)
    return p


def load_run_config(run_dir: str | Path):
    """The :class:`RunConfig` of a run folder, its ``config.json`` checked field by field."""
    p = check_run_folder(run_dir)
    path = p / "config.json"
    return run_config_from_dict(read_json_object(path), str(path))


def load_resume_state(run_dir: str | Path) -> tuple[Any, dict[str, Any]]:
    """``(config, state)`` of a run to resume: config.json and checkpoint.pt both checked.

    The trainer resumes from the checkpoint's own copy of the config; a
    config.json that disagrees in type is still a damaged run folder, so both
    are checked.
    """
    p = check_run_folder(run_dir)
    load_run_config(p)
    ckpt = p / "checkpoint.pt"
    if not ckpt.is_file():
        raise MissingError(str(p), "has no checkpoint.pt, so there is nothing to resume",
                           "train it again without --resume")
    state = load_checkpoint(ckpt, CHECKPOINT_KEYS)
    if not isinstance(state["config"], dict):
        raise CorruptFileError(str(ckpt), "holds no config object; it is not a UGAAR checkpoint")
    config = run_config_from_dict(state["config"], f"{ckpt} (its config)")
    return config, state


# ------------------------------------------------------- features, datasets
def check_dataset_folder(path: str | Path, subject: str | None = None) -> Path:
    """A dataset folder (one with ``manifest.json``), else a message saying what ``path`` is."""
    p = Path(path)
    subject = subject or str(p)
    fix = "build one with `ugaar dataset build --source KIND PATH --out DIR`"
    if not p.exists():
        raise MissingError(subject, "no such dataset folder", fix)
    if not p.is_dir():
        kind = file_kind(p)
        if kind == "a MIDI file":
            fix = f"build a dataset from it first: `ugaar dataset build --source midi {p} --out DIR`"
        raise BadInputError(subject, f"is {kind or 'a file'}, not a dataset folder", fix)
    if not (p / "manifest.json").is_file():
        raise MissingError(subject, "is not a dataset folder (no manifest.json)", fix)
    return p


def load_feature_set(path: str | Path, subject: str | None = None):
    """A :class:`FeatureSet` from an ``.npz``, with a clear message when the file is not one."""
    from model.feature_set import FeatureSet

    subject = subject or str(path)
    p = Path(path)
    if not p.exists():
        raise MissingError(subject, "no such FeatureSet (.npz) file or dataset folder")
    if p.is_file():
        kind = file_kind(p)
        if kind == "a MIDI file":
            raise BadInputError(subject, "is a MIDI file, not a FeatureSet (.npz) or dataset folder",
                                f"build a dataset from it first: `ugaar dataset build --source midi {p} --out DIR`")
        if kind not in (None, "a zip archive", "an empty file"):
            raise BadInputError(subject, f"is {kind}, not a FeatureSet (.npz) or dataset folder")
    load_npz(p, FEATURE_SET_KEYS, what="a FeatureSet (.npz)")
    try:
        return FeatureSet.load(p)
    except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise CorruptFileError(subject, f"is not a valid FeatureSet ({one_reason(exc)})",
                               "recompute it with `ugaar features extract DATASET --force`") from None


# ------------------------------------------------------------------ queries
def check_lyrics_query(text: str | None, subject: str = "--lyrics") -> str:
    """A typed lyrics line with at least one letter."""
    fix = 'type a few words of the lyrics, e.g. --lyrics "all my troubles seemed so far away"'
    if text is None or not text.strip():
        raise BadInputError(subject, "the lyrics line is empty", fix)
    if not any(ch.isalpha() for ch in text):
        raise BadInputError(subject, f"{_shown(text)} has no letters, so no word to look up", fix)
    return text


def check_audio_query(path: str | Path, subject: str = "--audio") -> Path:
    """An audio file libsndfile reads, with samples and a signal above -60 dBFS."""
    import soundfile

    subject = f"{subject} {path}"
    p = check_file(path, subject, "an audio file")
    fix = "give a WAV, FLAC, OGG or MP3 recording"
    try:
        info = soundfile.info(str(p))
        if info.frames == 0:
            raise BadInputError(subject, "holds no audio samples", fix)
        peak, finite = 0.0, True
        for block in soundfile.blocks(str(p), blocksize=1 << 16, dtype="float32", always_2d=True):
            if block.size:
                finite = finite and bool(np.isfinite(block).all())
                peak = max(peak, float(np.nanmax(np.abs(block))))
    except (soundfile.SoundFileError, RuntimeError, EOFError) as exc:
        kind = file_kind(p)
        what = f"is {kind}, not audio" if kind and kind not in ("a WAV file", "a FLAC file", "an Ogg file") \
            else "is not an audio file libsndfile can read"
        # libsndfile's own words without the path it repeats ("Format not recognised.")
        detail = str(getattr(exc, "error_string", "") or type(exc).__name__).strip().rstrip(".")
        raise BadInputError(subject, f"{what} ({detail})", fix) from None
    if not finite:
        raise BadInputError(subject, "holds NaN or infinite samples", fix)
    if peak < SILENCE_PEAK:
        level = "digital silence" if peak == 0 else f"peak {20 * math.log10(peak):.0f} dBFS"
        raise BadInputError(subject, f"has no signal ({level})", fix)
    return p


def check_midi_query(path: str | Path, subject: str = "--midi") -> Path:
    """A MIDI/KAR file whose melody carries lyrics and keeps notes after cleaning."""
    from model.data.cleaning import CleaningConfig, CleaningReport, clean_song
    from model.sources import SourceError
    from model.sources.midi_file import read_song

    subject = f"{subject} {path}"
    p = check_file(path, subject, "a MIDI file")
    fix = "give a MIDI or KAR file whose melody carries lyric events"
    try:
        song = read_song(str(p))
    except SourceError as exc:
        kind = file_kind(p)
        reason = f"is {kind}, not MIDI" if kind and kind not in ("a MIDI file", "an empty file") else exc.reason
        raise BadInputError(subject, reason, fix) from None
    if not clean_song(song, CleaningConfig(), CleaningReport()).notes:
        raise BadInputError(subject, "has no notes left after cleaning (none with lyrics in a singable range)",
                            fix)
    return p


def check_sample_id(sample_id: str, known: Iterable[str], run_dir: str | Path) -> str:
    """A sample id of the run, else a message with the nearest ids."""
    ids = [str(s) for s in known]
    if str(sample_id) in set(ids):
        return str(sample_id)
    close = difflib.get_close_matches(str(sample_id), ids, n=3, cutoff=0.6)
    fix = ("did you mean " + ", ".join(close) + "?") if close else \
        f"the run's dataset has {len(ids)} samples" + (f", e.g. {ids[0]}" if ids else "")
    raise BadInputError(f"--sample {sample_id}", f"no such sample in run {run_dir}", fix)


def check_count(value: int, subject: str, minimum: int = 1) -> int:
    """An integer argument of at least ``minimum`` (``--k 0`` would print nothing)."""
    if value < minimum:
        raise BadInputError(subject, f"must be at least {minimum}, got {value}")
    return value
