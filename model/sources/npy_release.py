"""The lyrics–melody ``.npy`` release of Yu et al. (LMD-full part).

Each ``Syllable_Parsing/<md5>.npy`` is a numpy object array of shape (1, 3)
stored as a *pickle*: [continuous, discrete, syllables], one entry per note
(see ``docs/sources.md``).  Pickles can run code when loaded, so this module
never calls ``numpy.load(allow_pickle=True)``: it reads the ``.npy`` header
with ``numpy.lib.format`` and unpickles the payload with
:class:`RestrictedUnpickler`, which admits only the few globals a numpy
object array of lists, floats, ints and strs needs.

Units (measured, ``docs/sources.md``): the discrete durations and rests are
in eighth notes (half a beat), so ``Note.beats = duration / 2``.
"""
from __future__ import annotations

import hashlib
import io
import lzma
import math
import os
import pickle
import re
import struct
import tarfile
import tokenize
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from model.data.song import Note, Song
from model.sources import SourceError, os_errors_as_source_errors
from model.sources.lmd_archive import ARCHIVE_NAME, cache_root, find_lmd_archive, unpack_lmd_archive

SOURCE = "lmd-npy"
# The discrete durations count eighth notes; Song/Note use quarter-note beats.
UNITS_PER_BEAT = 2.0
# A pickle bigger than this is not a song (the largest release file is < 1 MB).
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024


def _latin1_encode(text: Any, encoding: str = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode``: numpy pickles (protocol 2) store the
    array's raw bytes as a latin-1 string; nothing else is allowed through."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode used for something other than array bytes")
    return text.encode("latin1")


_DTYPE_NAME = re.compile(r"[<>|=]?[a-zA-Z]\d{0,4}")


class _DtypeStub:
    """Stand-in for ``numpy.dtype`` while unpickling.

    numpy's own ``dtype.__setstate__`` trusts its argument: a damaged state
    tuple (wrong flags, wrong item size) crashes the interpreter (found by
    tests/test_fuzz_loaders.py).  The stub builds the dtype from its name
    with the Python API and takes only the byte order from the state.
    """

    def __init__(self, spec: Any, align: Any = False, copy: Any = True) -> None:
        if not isinstance(spec, str):
            raise pickle.UnpicklingError(f"dtype spec is a {type(spec).__name__}, not a name")
        if not _DTYPE_NAME.fullmatch(spec):  # numpy would parse "f8,i4" and friends as Python literals
            raise pickle.UnpicklingError(f"unsupported dtype {spec[:20]!r}")
        try:
            self.dtype = np.dtype(spec)
        except TypeError:
            raise pickle.UnpicklingError(f"unknown dtype {spec!r}") from None
        if self.dtype.fields is not None or self.dtype.subdtype is not None:
            raise pickle.UnpicklingError(f"structured dtype {spec!r}")

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 4 or state[1] not in ("<", ">", "|", "=") \
                or state[3] is not None:
            raise pickle.UnpicklingError("malformed dtype state")
        if state[1] in ("<", ">") and self.dtype.itemsize > 1 and not self.dtype.hasobject:
            self.dtype = self.dtype.newbyteorder(state[1])


class _ArrayStub:
    """Stand-in for an ``ndarray`` being unpickled; :func:`_materialise` checks and builds it."""

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _ArrayStub:
    if cls is not np.ndarray:
        raise pickle.UnpicklingError("_reconstruct of something other than an ndarray")
    return _ArrayStub()


def _scalar(dtype: Any, data: Any = None) -> Any:
    """A numpy scalar from its raw bytes (what ``numpy.core.multiarray.scalar`` pickles)."""
    if not isinstance(dtype, _DtypeStub) or dtype.dtype.hasobject:
        raise pickle.UnpicklingError("scalar of an unsupported dtype")
    if not isinstance(data, bytes) or len(data) != dtype.dtype.itemsize:
        raise pickle.UnpicklingError("scalar bytes do not match its dtype")
    return np.frombuffer(data, dtype=dtype.dtype)[0]


def _array_from(state: Any, depth: int) -> np.ndarray:
    """An ndarray from a checked ``__setstate__`` tuple ``(version, shape, dtype, fortran, data)``."""
    if not isinstance(state, tuple) or len(state) != 5:
        raise pickle.UnpicklingError("malformed array state")
    _version, shape, dtype, fortran, data = state
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and 0 <= d < 2**31 for d in shape) \
            or not isinstance(dtype, _DtypeStub) or not isinstance(fortran, bool):
        raise pickle.UnpicklingError("malformed array state")
    n = math.prod(shape)
    order = "F" if fortran else "C"
    if dtype.dtype.hasobject:
        if not isinstance(data, list) or len(data) != n:
            raise pickle.UnpicklingError("object array data does not match its shape")
        flat = np.empty(n, dtype=object)
        for i, item in enumerate(data):  # one by one: numpy would broadcast nested lists
            flat[i] = _materialise(item, depth + 1)
        return flat.reshape(shape, order=order)
    if not isinstance(data, bytes) or len(data) != n * dtype.dtype.itemsize:
        raise pickle.UnpicklingError("array bytes do not match its shape and dtype")
    return np.frombuffer(data, dtype=dtype.dtype).reshape(shape, order=order).copy()


def _materialise(obj: Any, depth: int = 0) -> Any:
    """``obj`` with every stand-in replaced by the real (checked) numpy object."""
    if depth > 64:
        raise pickle.UnpicklingError("nesting too deep")
    if isinstance(obj, _ArrayStub):
        return _array_from(obj.state, depth)
    if isinstance(obj, _DtypeStub):
        return obj.dtype
    if isinstance(obj, list):
        return [_materialise(x, depth + 1) for x in obj]
    if isinstance(obj, tuple):
        return tuple(_materialise(x, depth + 1) for x in obj)
    if isinstance(obj, dict):
        return {k: _materialise(v, depth + 1) for k, v in obj.items()}
    return obj


def _allowed_globals() -> dict[tuple[str, str], Any]:
    return {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy.core.multiarray", "scalar"): _scalar,
        ("numpy._core.multiarray", "scalar"): _scalar,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _DtypeStub,
        ("_codecs", "encode"): _latin1_encode,
    }


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickler that refuses every global but numpy's array reconstruction.

    Lists, floats, ints and strs need no globals at all, so any other
    ``module.name`` in the stream (``os.system``, ``builtins.eval``, ...) means
    the file is not a plain data array and is rejected before it can run.
    numpy's arrays and dtypes are unpickled into stand-ins and built from
    checked parts afterwards (:func:`_materialise`), never by numpy's own
    ``__setstate__``, which crashes on damaged input.

    It is pickle's pure-Python unpickler: the C one sizes its memo table from
    the stream, so one damaged ``LONG_BINPUT`` index asks for gigabytes and
    the process is killed; here the memo is a dict.  Payloads are small
    (``MAX_PAYLOAD_BYTES``), so the slower reader costs milliseconds.
    """

    def find_class(self, module: str, name: str) -> Any:
        allowed = _allowed_globals()
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"pickle references {module}.{name}")
        return allowed[(module, name)]

    def load(self) -> Any:
        return _materialise(super().load())


def load_object_array(path: str | os.PathLike[str]) -> np.ndarray:
    """Load an object ``.npy`` without executing code.

    Raises
    ------
    SourceError
        Empty, truncated, not an ``.npy``, not an object array, or a pickle
        that references anything beyond numpy's array reconstruction.
    """
    path = str(path)
    with os_errors_as_source_errors(path, "a .npy file"):
        with open(path, "rb") as handle:
            try:
                version = npy_format.read_magic(handle)
                if version == (1, 0):
                    shape, _fortran, dtype = npy_format.read_array_header_1_0(handle)
                else:
                    shape, _fortran, dtype = npy_format.read_array_header_2_0(handle)
            # numpy parses the header as a Python literal: a damaged one raises
            # tokenize's and ast's errors as well as ValueError
            except (ValueError, SyntaxError, tokenize.TokenError, TypeError, KeyError, struct.error,
                    RecursionError, MemoryError, UnicodeDecodeError) as exc:
                detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                reason = "empty file" if os.path.getsize(path) == 0 else f"not a .npy file ({detail})"
                raise SourceError(path, reason) from None
            if dtype != np.dtype(object):
                raise SourceError(path, f"expected an object array, found dtype {dtype}")
            payload = handle.read(MAX_PAYLOAD_BYTES + 1)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise SourceError(path, "payload too large for a song")
    try:
        array = RestrictedUnpickler(io.BytesIO(payload)).load()
    except pickle.UnpicklingError as exc:
        message = str(exc)
        if message.startswith("pickle references"):
            raise SourceError(path, f"rejected: {message}") from None
        raise SourceError(path, f"corrupt or truncated pickle ({message})") from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            MemoryError, UnicodeDecodeError, struct.error, OverflowError, RecursionError) as exc:
        raise SourceError(path, f"corrupt or truncated pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(array, np.ndarray):
        raise SourceError(path, f"pickle holds a {type(array).__name__}, not an array")
    if tuple(array.shape) != tuple(shape):
        raise SourceError(path, f"array shape {array.shape} differs from header {shape}")
    return array


def _number_rows(rows: Any, width: int, what: str, path: str) -> list[list[float]]:
    if not isinstance(rows, list):
        raise SourceError(path, f"{what} is a {type(rows).__name__}, not a list")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) != width:
            raise SourceError(path, f"{what} entry {i} is not a list of {width} numbers")
        values = []
        for v in row:
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise SourceError(path, f"{what} entry {i} holds a {type(v).__name__}")
            v = float(v)
            if not math.isfinite(v):
                raise SourceError(path, f"{what} entry {i} holds a non-finite value ({v})")
            values.append(v)
        out.append(values)
    return out


def read_parsing(path: str) -> tuple[list[list[float]], list[list[float]], list[str]]:
    """Validated (continuous, discrete, syllables) lists of a Syllable_Parsing file."""
    array = load_object_array(path)
    if array.shape != (1, 3):
        raise SourceError(path, f"expected shape (1, 3), found {array.shape}")
    continuous, discrete, syllables = array[0]
    continuous = _number_rows(continuous, 4, "continuous attributes", path)
    discrete = _number_rows(discrete, 3, "discrete attributes", path)
    if not isinstance(syllables, list) or not all(isinstance(s, str) for s in syllables):
        raise SourceError(path, "syllables are not a list of strings")
    if not (len(continuous) == len(discrete) == len(syllables)):
        raise SourceError(path, f"lists differ in length ({len(continuous)}, {len(discrete)}, "
                                f"{len(syllables)} notes)")
    if not syllables:
        raise SourceError(path, "no notes")
    return continuous, discrete, syllables


def word_parsing_path(item: str) -> Path:
    """``.../Syllable_Parsing/x.npy`` → ``.../Word_Parsing/x.npy``."""
    p = Path(item)
    return p.parent.parent / "Word_Parsing" / p.name


def read_word_syllables(path: str) -> list[list[str]] | None:
    """Per word, its syllables, from a Word_Parsing file; None when unusable.

    Word information is optional: a missing or bad word file (even a
    rejected pickle) only loses word boundaries, never the song.
    """
    if not os.path.isfile(path):
        return None
    try:
        array = load_object_array(path)
    except SourceError:
        return None
    if array.shape != (1, 4) or not isinstance(array[0][3], list):
        return None
    words = array[0][3]
    if not all(isinstance(w, list) and w and all(isinstance(s, str) for s in w) for w in words):
        return None
    return words


def align_word_starts(syllables: list[str], words: list[list[str]] | None,
                      lookahead: int = 64) -> list[bool]:
    """Word-start flags for ``syllables`` from the word file's syllable lists.

    Word_Parsing leaves out words with apostrophes and other non-letters, so
    its words are a subsequence of the song.  Greedy alignment: for each word
    in order, find the next position (within ``lookahead`` syllables) where
    its syllables appear consecutively; mark the first as a word start and
    the rest as continuations.  Syllables no word covers (the left-out words)
    are word starts, as is everything when there is no word file.
    """
    flags = [True] * len(syllables)
    if not words:
        return flags
    pos = 0
    n = len(syllables)
    for word in words:
        k = len(word)
        end = min(n - k, pos + lookahead)
        for start in range(pos, end + 1):
            if syllables[start:start + k] == word:
                for j in range(start + 1, start + k):
                    flags[j] = False
                pos = start + k
                break
    return flags


def estimate_tempo(continuous: list[list[float]], discrete: list[list[float]]) -> float:
    """Tempo in quarter-note BPM from seconds per eighth-note unit.

    Each inter-onset interval spans the previous note's duration plus this
    note's rest, in units; the median of seconds/units is robust to the
    quantisation of single notes (measured spread ±5 % per song).
    """
    ratios = []
    for i in range(1, len(continuous)):
        units = discrete[i - 1][1] + discrete[i][2]
        gap = continuous[i][0]
        if units > 0 and gap > 0:
            ratios.append(gap / units)
    if not ratios:
        return 120.0
    seconds_per_unit = float(np.median(ratios))
    bpm = 60.0 / (UNITS_PER_BEAT * seconds_per_unit)
    return round(min(max(bpm, 20.0), 400.0), 2)


def read_song(item: str) -> Song:
    """Read one Syllable_Parsing ``.npy`` (word boundaries from Word_Parsing).

    Raises
    ------
    SourceError
        With the file path and the reason (empty, truncated, wrong shape,
        non-finite values, rejected pickle, unreadable).
    """
    item = str(item)
    continuous, discrete, syllables = read_parsing(item)
    word_starts = align_word_starts(syllables, read_word_syllables(str(word_parsing_path(item))))
    notes = []
    onset = 0.0
    for i, (cont, disc, syllable) in enumerate(zip(continuous, discrete, syllables)):
        onset += cont[0]  # seconds since the previous onset (0 for the first)
        notes.append(Note(
            pitch=int(round(disc[0])), onset=onset, duration=cont[1], syllable=syllable,
            word_start=word_starts[i], beats=disc[1] / UNITS_PER_BEAT,
            rest_beats=disc[2] / UNITS_PER_BEAT,
        ))
    stem = Path(item).stem
    return Song(song_id=stem, title=stem, source=SOURCE, path=item, notes=notes,
                tempo_bpm=estimate_tempo(continuous, discrete))


def _syllable_folder(path: Path) -> Path | None:
    if path.name == "Syllable_Parsing" and path.is_dir():
        return path
    for candidate in (path / "Syllable_Parsing", path / "lmd-full_MIDI_dataset" / "Syllable_Parsing"):
        if candidate.is_dir():
            return candidate
    return None


def _unpack(archive: Path) -> Path:
    """Unpack a release archive once into the cache; return where it landed.

    The shared archive goes to the usual place (already unpacked there for
    tests); any other archive gets its own folder keyed by path, size and
    time, so two archives never overwrite each other.
    """
    if archive.name == ARCHIVE_NAME:
        return unpack_lmd_archive(archive)
    stat = archive.stat()
    key = hashlib.sha1(f"{archive.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    dest = cache_root() / "npy-archives" / key[:16]
    try:
        unpack_lmd_archive(archive, dest)
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError) as exc:
        raise SourceError(str(archive), f"cannot unpack archive ({exc})") from None
    found = sorted(dest.rglob("Syllable_Parsing"))
    return found[0] if found else dest


def list_items(path: str | None) -> list[str]:
    """Sorted ``.npy`` paths of a release.

    ``path`` may be the release folder (holding ``Syllable_Parsing/``), the
    ``Syllable_Parsing`` folder itself, any folder of ``.npy`` files, a single
    ``.npy``, or a ``.tar.xz`` archive of the release (unpacked once into the
    cache).  None means the shared LMD-full archive when it is present.
    """
    if path is None:
        archive = find_lmd_archive()
        if archive is None:
            raise SourceError("lmd-npy", "no path given and the shared LMD-full archive is absent")
        path = str(archive)
    p = Path(path)
    if p.is_file() and p.name.endswith((".tar.xz", ".txz")):
        p = _unpack(p)
    if p.is_file():
        return [str(p)]
    if not p.is_dir():
        raise SourceError(str(path), "no such file or folder")
    folder = _syllable_folder(p) or p
    return sorted(str(f) for f in folder.glob("*.npy"))
