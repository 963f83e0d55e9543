"""Per-syllable phonetic columns (CMUdict vowel, onset and coda) that the lyrics re-ranker reads."""
from __future__ import annotations

import numpy as np

from model.features.tokens.phonetics import N_PHONETIC, PHONETIC_FEATURES, phone_syllables, syllable_phonetics

COL = {name: i for i, name in enumerate(PHONETIC_FEATURES)}


def _vowel(row: np.ndarray) -> str | None:
    hot = [name[len("vowel_"):] for name in PHONETIC_FEATURES[:15] if row[COL[name]]]
    assert len(hot) <= 1
    return hot[0] if hot else None


def test_a_words_phones_split_at_its_vowels_the_last_consonant_opening_the_next_syllable():
    # extra: EH1 K S T R AH0 → ex-tra with K S T closing the first syllable, R opening the second
    assert phone_syllables(("EH1", "K", "S", "T", "R", "AH0")) == [("EH", (), ("K", "S", "T")), ("AH", ("R",), ())]
    # two vowels side by side (be-ing): nothing between them to share
    assert phone_syllables(("B", "IY1", "IH0", "NG")) == [("IY", ("B",), ()), ("IH", (), ("NG",))]
    assert phone_syllables(("HH", "M")) == []  # no vowel, no syllable


def test_known_english_words_get_their_vowel_onset_and_coda():
    f = syllable_phonetics(["Sing", "ing", "stop", "day"], [True, False, True, True])
    assert f.shape == (4, N_PHONETIC) and f.dtype == np.float32
    assert [_vowel(r) for r in f] == ["IH", "IH", "AA", "EY"]
    assert f[:, COL["vowel_long"]].tolist() == [0, 0, 1, 1]
    # sing-ing: S IH1 | NG IH0 NG; stop: S T AA1 P; day: D EY1
    assert np.allclose(f[:, COL["onset"]], np.log1p([1, 1, 2, 1]))
    assert np.allclose(f[:, COL["coda"]], np.log1p([0, 1, 1, 0]))
    assert f[:, COL["open"]].tolist() == [1, 0, 0, 1]
    assert f[:, COL["coda_sonorant"]].tolist() == [0, 1, 0, 0]
    assert f[:, COL["coda_obstruent"]].tolist() == [0, 0, 1, 0]


def test_unknown_and_non_english_words_fall_back_to_their_spelling_and_never_raise():
    # herzlich (German) and xqzt are not in CMUdict: no vowel or counts, closed or open from the last letter
    f = syllable_phonetics(["Herz", "lich", "xqzt", "a", "", ",", "Ah"], [True, False, True, True, True, True, True])
    assert f.shape == (7, N_PHONETIC)
    assert [_vowel(r) for r in f[:3]] == [None, None, None]
    assert f[:3, [COL["onset"], COL["coda"], COL["vowel_long"]]].sum() == 0
    assert f[0, COL["coda_obstruent"]] == 1 and f[1, COL["coda_obstruent"]] == 1 and f[2, COL["coda_obstruent"]] == 1
    assert f[3, COL["open"]] == 1  # "a" is in the dictionary: AH, open
    assert not f[4].any() and not f[5].any()  # no letters: nothing to say
    assert _vowel(f[6]) == "AA"
    assert syllable_phonetics([], []).shape == (0, N_PHONETIC)
