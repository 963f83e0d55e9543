"""Sheet rendering with the real LilyPond from the wheel."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy import ndimage

from model.progress import CancelToken, Cancelled
from model.render import sheet as sheet_module
from model.render.lilypond_source import (choose_clef, escape_string, lilypond_source,
                                          music_source, note_values, pitch_name, split_beats)
from model.render.sheet import SheetJob, SheetRenderer
from model.data.song import Note

TRICKY = ['say "hi"', "back\\slash", "{brace}", "}", "ü-ñ", "日本", "#(system \"x\")",
          "$x", "%comment", "\\book", "", "--", "a\nb", '"', "\\"]


def melody(low: int, high: int, n: int = 20, syllables=None) -> tuple[Note, ...]:
    span = high - low + 1
    syl = syllables or ["la", "li"]
    return tuple(Note(low + (i * 5) % span, 30.0 + 0.5 * i, 0.4 if i % 4 else 0.9,
                      syl[i % len(syl)], i % 3 == 0) for i in range(n))


def grey(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def staff_rows(img: np.ndarray) -> list[int]:
    """Rows of the five staff lines: rows that are dark across most of the width."""
    rows = np.nonzero((img < 128).mean(axis=1) > 0.6)[0]
    groups: list[list[int]] = []
    for r in rows:  # anti-aliasing can make one line two rows thick
        if groups and r - groups[-1][-1] <= 1:
            groups[-1].append(int(r))
        else:
            groups.append([int(r)])
    return [int(round(np.mean(g))) for g in groups]


@pytest.fixture(scope="module")
def renderer():
    return SheetRenderer()


@pytest.fixture(scope="module")
def rendered(renderer, tmp_path_factory):
    """One batch (one LilyPond process): treble, bass, tenor, lyrics and tricky syllables."""
    out = tmp_path_factory.mktemp("sheet")
    treble = melody(64, 79)
    jobs = {
        "treble": SheetJob(out / "treble.png", treble),
        "bass": SheetJob(out / "bass.png", melody(40, 55)),
        "tenor": SheetJob(out / "tenor.png", melody(52, 64)),
        "lyrics": SheetJob(out / "lyrics.png", treble, with_lyrics=True),
        "tricky": SheetJob(out / "tricky.png", melody(60, 72, len(TRICKY), TRICKY),
                           with_lyrics=True),
    }
    results = renderer.render_batch(list(jobs.values()))
    return out, dict(zip(jobs, results))


def test_version_is_lilypond(renderer):
    assert renderer.version.startswith("GNU LilyPond")


def test_every_snippet_renders(rendered):
    out, results = rendered
    for key, res in results.items():
        assert res.ok, (key, res.error)
        assert res.job.out_png.is_file()
    # atomic writes: nothing but the PNGs in the folder
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{k}.png" for k in results)


def test_png_size_and_ink(rendered, renderer):
    _, results = rendered
    for key, res in results.items():
        img = grey(res.job.out_png)
        h, w = img.shape
        assert 4 * renderer.staff_space_px < h < 300 and 200 < w < 4000, (key, img.shape)
        ink = float((img < 128).mean())
        assert 0.02 < ink < 0.5, (key, ink)


def test_staff_height_is_the_same_for_every_snippet(rendered, renderer):
    _, results = rendered
    heights = set()
    for key, res in results.items():
        rows = staff_rows(grey(res.job.out_png))
        assert len(rows) == 5, (key, rows)
        heights.add(rows[-1] - rows[0])
    assert len(heights) <= 2 and max(heights) - min(heights) <= 1, heights
    assert abs(min(heights) - 4 * renderer.staff_space_px) <= 1.5


def test_lyrics_version_adds_text_below_the_staff(rendered):
    _, results = rendered
    plain, lyrics = grey(results["treble"].job.out_png), grey(results["lyrics"].job.out_png)
    assert plain.shape != lyrics.shape or np.any(plain != lyrics)
    below = lambda img: (img[staff_rows(img)[-1] + 25:] < 128).sum()  # noqa: E731
    assert below(lyrics) > 5 * max(1, below(plain))


def test_clefs_by_range():
    assert choose_clef([64, 72, 79]) == "treble"
    assert choose_clef([40, 45, 55]) == "bass"
    assert choose_clef([52, 57, 64]) == "treble_8"
    assert '\\clef "bass"' in lilypond_source(melody(40, 55))


def head_centres(img: np.ndarray) -> list[float]:
    """x-centres of head-sized ink blobs once the staff lines are blanked out."""
    img = img.copy()
    for r in staff_rows(img):
        img[r - 1:r + 2] = 255
    labels, _ = ndimage.label(img < 128)
    return [(sl[1].start + sl[1].stop - 1) / 2 for sl in ndimage.find_objects(labels)
            if 6 <= sl[1].stop - sl[1].start <= 20]


def test_note_x_is_on_the_note_heads(rendered):
    """Each note_x lies within 2 px of an engraved head (a scale error drifts ~9 px)."""
    _, results = rendered
    for key, res in results.items():
        xs = res.note_x
        assert xs is not None and len(xs) == len(res.job.notes), key
        assert all(b > a for a, b in zip(xs, xs[1:])), key
        heads = np.array(head_centres(grey(res.job.out_png)))
        misses = [x for x in xs if np.min(np.abs(heads - x)) > 2.0]
        assert not misses, (key, misses)


def test_tricky_syllables_are_escaped():
    src = lilypond_source(melody(60, 72, len(TRICKY), TRICKY), with_lyrics=True)
    lyrics = src[src.index("\\lyricsto"):]
    for token in re.findall(r'"(?:[^"\\]|\\.)*"', lyrics)[1:]:  # [0] is the voice name
        assert "\n" not in token
    assert "\\book" not in lyrics.replace('"\\\\book"', "")


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_escape_string_is_one_closed_literal(text):
    literal = escape_string(text)
    assert re.fullmatch(r'"(?:[^"\\\x00-\x1f]|\\[\\"])*"', literal), literal


def test_durations_and_rests():
    assert split_beats(1.75) == ["4.."] and split_beats(0.375) == ["16."]
    assert split_beats(4.5) == ["1", "8"] and split_beats(1.125) == ["4", "32"]
    notes = (Note(60, 0.0, 0.5, "a", beats=1.0), Note(62, 1.0, 0.5, "b", beats=0.5, rest_beats=0.5),
             Note(64, 2.0, 0.75, "c"), Note(65, 3.0, 0.5, "d"))
    # the last two come from seconds at 120 bpm: gap 0.5 s = 1 beat, 0.75 s = 1.5 beats;
    # gap 0.25 s = 0.5 beats, 0.5 s = 1 beat
    assert note_values(notes, 120.0) == [(0.0, 1.0), (0.5, 0.5), (1.0, 1.5), (0.5, 1.0)]
    music, heads = music_source(notes)
    assert music == "c'4 r8 d'8 r4 e'4. r8 f'4" and heads == [1, 1, 1, 1]
    assert pitch_name(48) == "c" and pitch_name(36) == "c," and pitch_name(61) == "cis'"


def test_bad_snippet_is_reported_and_the_batch_goes_on(renderer, tmp_path, monkeypatch):
    real = sheet_module.score_source

    def broken_for_d(notes, with_lyrics=False, tempo_bpm=120.0, log_id=None):
        src = real(notes, with_lyrics, tempo_bpm, log_id)
        # A genuine LilyPond syntax error (an unknown command) in one snippet.
        return src.replace("\\clef", "\\noSuchCommand \\clef") if notes[0].syllable == "d" else src

    monkeypatch.setattr(sheet_module, "score_source", broken_for_d)
    jobs = [SheetJob(tmp_path / f"{s}.png", melody(60, 72, 6, [s])) for s in "abcde"]
    results = renderer.render_batch(jobs)
    assert [r.ok for r in results] == [True, True, True, False, True]
    assert "noSuchCommand" in results[3].error or "error" in results[3].error.lower()
    assert not (tmp_path / "d.png").exists()
    assert all((tmp_path / f"{s}.png").is_file() for s in "abce")


def test_empty_snippet_is_an_error_not_a_crash(renderer, tmp_path):
    results = renderer.render_batch([SheetJob(tmp_path / "e.png", ())])
    assert not results[0].ok and results[0].error


def test_cancel_before_a_run_stops(renderer, tmp_path):
    token = CancelToken()
    token.set()
    with pytest.raises(Cancelled):
        renderer.render_batch([SheetJob(tmp_path / "x.png", melody(60, 72))], cancel=token)
    assert not (tmp_path / "x.png").exists()


def test_very_long_syllable_is_cut():
    src = lilypond_source(melody(60, 72, 3, ["x" * 1000]), with_lyrics=True)
    assert "x" * 40 in src and "x" * 41 not in src


def test_random_snippets_all_render(renderer, tmp_path):
    """16 random snippets (any piano pitch, odd values, hostile syllables) in one batch."""
    rng = np.random.default_rng(7)
    alphabet = list("aé'\"\\{}#$%~-_ ()[]<>|!日") + ["\\book", "\\\\", "--", "__"]
    jobs = []
    for i in range(16):
        n = int(rng.integers(1, 25))
        notes, onset = [], 0.0
        for _ in range(n):
            beats = None if rng.random() < 0.3 else float(rng.choice([0.125, 0.375, 1.25, 2.25, 3.25, 16.0]))
            dur = float(rng.uniform(0.0, 3.0))
            syl = "".join(rng.choice(alphabet, size=int(rng.integers(0, 6))))
            notes.append(Note(int(rng.integers(21, 109)), onset, dur, syl, bool(rng.random() < 0.5),
                              beats, None if rng.random() < 0.5 else float(rng.choice([0, 0.5, 8.0]))))
            onset += dur + float(rng.uniform(0.0, 2.0))
        jobs.append(SheetJob(tmp_path / f"r{i}.png", tuple(notes), with_lyrics=bool(i % 2)))
    results = renderer.render_batch(jobs)
    assert [r.error for r in results if not r.ok] == []
    assert all(r.note_x is not None and len(r.note_x) == len(r.job.notes) for r in results)
