"""Sheet-music rendering: batches of snippets engraved by one LilyPond process each.

LilyPond (from the ``lilypond`` wheel) runs with the cairo backend and
``-dcrop``, so each snippet becomes a PNG cropped to its one-line system at
a fixed resolution: the staff height in pixels is the same for every
snippet (the sheet features rely on that).  Many snippets go into one
LilyPond run as separate ``\\book`` blocks, which saves the interpreter's
start-up per snippet.

A snippet LilyPond rejects is isolated by bisecting the batch (only
batches that fail pay for it) and reported in its ``SheetResult``; the
others still render.  Every PNG is written atomically into place.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from model.atomic import atomic_path
from model.progress import CancelToken
from model.render.lilypond_source import (PREAMBLE, book_source, lilypond_source,  # noqa: F401
                                          music_source, score_source)
from model.data.song import Note

#: LilyPond's default staff size: 20 pt staff height, so one staff space is 5 pt.
STAFF_SPACE_PT = 5.0
#: LilyPond's points are TeX points (72.27 per inch), not PostScript points
#: (72 per inch); with 72 the cursor drifts 0.4 % (9 px over a long snippet).
POINTS_PER_INCH = 72.27
#: Default resolution: 144 dpi gives a staff space of 9.96 px (staff height 39.9 px).
DEFAULT_RESOLUTION = 144
_LOG_LINE = re.compile(r"^UGAARX (\S+) (-?[0-9.eE+-]+) (-?[0-9.eE+-]+)\s*$", re.M)


@dataclass(frozen=True)
class SheetJob:
    """One snippet to engrave.

    Parameters
    ----------
    out_png : Path
        Where the PNG goes (written atomically).
    notes : tuple of Note
        The sample's notes.
    with_lyrics : bool
        Add the syllables under the notes (display only, never a feature input).
    tempo_bpm : float
        Tempo for notes without ``beats``.
    """

    out_png: Path
    notes: tuple[Note, ...]
    with_lyrics: bool = False
    tempo_bpm: float = 120.0


@dataclass
class SheetResult:
    """Outcome of one ``SheetJob``.

    Attributes
    ----------
    job : SheetJob
    ok : bool
        True when the PNG was written.
    error : str
        LilyPond's error text (or another reason) when ``ok`` is False.
    note_x : list of float or None
        Each note's head centre in PNG pixels (first head of tied notes), for
        a play cursor; None when it could not be determined.
    """

    job: SheetJob
    ok: bool
    error: str = ""
    note_x: list[float] | None = None


def lilypond_executable() -> Path:
    """Path of the LilyPond binary shipped by the ``lilypond`` wheel."""
    try:
        import lilypond
    except ImportError as exc:
        raise RuntimeError("the 'lilypond' package is not installed (pip install lilypond)") from exc
    exe = Path(lilypond.executable())
    if not exe.is_file():
        raise RuntimeError(f"LilyPond binary not found at {exe}")
    return exe


class SheetRenderer:
    """Engrave snippets to cropped PNGs with LilyPond, many per process.

    Parameters
    ----------
    resolution : int
        PNG resolution in dpi; fixes the staff height in pixels
        (``4 * 5 pt * resolution / 72.27``: 39.9 px at the default 144 dpi).
    batch_size : int
        Snippets per LilyPond process.
    tmp_dir : path or None
        Where the per-run work folders go (default: the system temp dir).
    timeout_s : float
        Base time limit of one LilyPond run; 1 s per snippet is added.
    """

    name = "lilypond"

    def __init__(self, resolution: int = DEFAULT_RESOLUTION, batch_size: int = 32,
                 tmp_dir: str | os.PathLike[str] | None = None, timeout_s: float = 30.0) -> None:
        self.exe = lilypond_executable()
        self.resolution = int(resolution)
        self.batch_size = max(1, int(batch_size))
        self.tmp_dir = None if tmp_dir is None else str(tmp_dir)
        self.timeout_s = float(timeout_s)
        run = subprocess.run([str(self.exe), "--version"], capture_output=True, text=True,
                             timeout=60)
        first = (run.stdout or run.stderr).strip().splitlines()
        self.version = first[0] if first else "GNU LilyPond (unknown version)"

    @property
    def staff_space_px(self) -> float:
        """One staff space in PNG pixels."""
        return STAFF_SPACE_PT * self.resolution / POINTS_PER_INCH

    def render_batch(self, jobs: Sequence[SheetJob],
                     cancel: CancelToken | None = None) -> list[SheetResult]:
        """Engrave ``jobs``; one result per job, in order.

        Parameters
        ----------
        jobs : sequence of SheetJob
        cancel : CancelToken or None
            Checked between LilyPond runs; ``Cancelled`` is raised there (PNGs
            already written stay, each complete).
        """
        results: list[SheetResult | None] = [None] * len(jobs)
        for start in range(0, len(jobs), self.batch_size):
            if cancel is not None:
                cancel.raise_if_set()
            chunk = list(range(start, min(len(jobs), start + self.batch_size)))
            self._render_isolating(jobs, chunk, results)
        return [r for r in results if r is not None]

    def _render_isolating(self, jobs: Sequence[SheetJob], idx: list[int],
                          results: list[SheetResult | None]) -> None:
        """Render ``idx``; on failure bisect until each bad job stands alone."""
        failed, error = self._run(jobs, idx, results)
        if not failed:
            return
        if len(idx) == 1:
            results[idx[0]] = SheetResult(jobs[idx[0]], False, error or "LilyPond failed")
            return
        # Outputs of a failed run are not trusted (a broken book can swallow
        # its neighbours), so every job of the run is redone in halves.
        half = len(idx) // 2
        self._render_isolating(jobs, idx[:half], results)
        self._render_isolating(jobs, idx[half:], results)

    def _run(self, jobs: Sequence[SheetJob], idx: list[int],
             results: list[SheetResult | None]) -> tuple[bool, str]:
        """One LilyPond process for ``idx``; returns (failed, error text)."""
        work = Path(tempfile.mkdtemp(prefix="ugaar-ly-", dir=self.tmp_dir))
        try:
            books = []
            heads: dict[str, list[int]] = {}
            for k in idx:
                job = jobs[k]
                if not job.notes:
                    return True, "snippet has no notes"
                key = f"s{k:05d}"
                heads[key] = music_source(job.notes, job.tempo_bpm)[1]
                books.append(book_source(key, score_source(job.notes, job.with_lyrics,
                                                           job.tempo_bpm, log_id=key)))
            (work / "batch.ly").write_text(PREAMBLE + "".join(books), encoding="utf-8")
            cmd = [str(self.exe), "-dbackend=cairo", "--png", "-dcrop", "-dno-print-pages",
                   f"-dresolution={self.resolution}", "batch.ly"]
            try:
                run = subprocess.run(cmd, cwd=work, capture_output=True, text=True,
                                     errors="replace", timeout=self.timeout_s + len(idx))
            except subprocess.TimeoutExpired:
                return True, f"LilyPond timed out after {self.timeout_s + len(idx):.0f} s"
            if run.returncode != 0:
                return True, _error_text(run.stderr)
            pngs = {key: _find_png(work, key) for key in heads}
            missing = [key for key, png in pngs.items() if png is None]
            if missing:
                return True, f"LilyPond produced no valid PNG ({_error_text(run.stderr)})"
            xs = _note_x(run.stderr, heads, self.staff_space_px)
            for k in idx:
                key = f"s{k:05d}"
                with atomic_path(jobs[k].out_png, suffix=".png") as tmp:
                    shutil.copyfile(pngs[key], tmp)
                results[k] = SheetResult(jobs[k], True, "", xs.get(key))
            return False, ""
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _find_png(work: Path, key: str) -> Path | None:
    """The cropped PNG of book ``key`` if it exists and is a plausible image."""
    for name in (f"{key}.cropped.png", f"{key}.png"):
        path = work / name
        if path.is_file() and path.stat().st_size > 100:
            try:
                from PIL import Image

                with Image.open(path) as im:
                    w, h = im.size
            except OSError:
                return None
            return path if w >= 10 and h >= 10 else None
    return None


def _error_text(stderr: str, limit: int = 2000) -> str:
    """LilyPond's error lines (with the line after each), or the tail of stderr."""
    lines = stderr.splitlines()
    picked: list[str] = []
    for i, line in enumerate(lines):
        if "error" in line.lower():
            picked.extend(lines[i:i + 2])
    text = "\n".join(picked) if picked else "\n".join(lines[-8:])
    return text[:limit] or "LilyPond failed without a message"


def _note_x(stderr: str, heads: dict[str, list[int]], staff_space_px: float
            ) -> dict[str, list[float]]:
    """Map each book's logged note-head extents to one x-centre per note, in pixels.

    Extents are in staff spaces relative to the system, whose left edge
    (the start of the staff lines) is the cropped image's left edge.
    Heads are sorted by x (a melody has one head at a time) and the first
    head of every tied group is kept.  Books whose head count does not
    match are left out (their ``note_x`` stays None).
    """
    found: dict[str, list[tuple[float, float]]] = {}
    for key, left, right in _LOG_LINE.findall(stderr):
        found.setdefault(key, []).append((float(left), float(right)))
    out: dict[str, list[float]] = {}
    for key, counts in heads.items():
        extents = sorted(set(found.get(key, [])))
        if len(extents) != sum(counts):
            continue
        xs, pos = [], 0
        for count in counts:
            left, right = extents[pos]
            xs.append(round((left + right) / 2 * staff_space_px, 2))
            pos += count
        out[key] = xs
    return out
