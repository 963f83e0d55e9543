"""Per-syllable prosodic features (CMUdict stress, word position, …) and the typed-text syllabifier."""
from __future__ import annotations

import numpy as np

from model.features.tokens.prosody import (N_PROSODY, PROSODY_FEATURES, dictionary_syllables, syllabify_text,
                                           syllable_features, words_of)

COL = {name: i for i, name in enumerate(PROSODY_FEATURES)}


def _stress(row: np.ndarray) -> str:
    for name in ("stress_1", "stress_2", "stress_0", "stress_unknown"):
        if row[COL[name]]:
            return name
    return "none"


def test_stress_of_known_english_words():
    # yes-ter-day: primary, unstressed, secondary (CMUdict Y EH1 S T ER0 D EY2)
    f = syllable_features(["Yes", "ter", "day,", "a", "way"], [True, False, False, True, False])
    assert f.shape == (5, N_PROSODY) and f.dtype == np.float32
    assert [_stress(r) for r in f] == ["stress_1", "stress_0", "stress_2", "stress_0", "stress_1"]
    assert f[:, COL["word_start"]].tolist() == [1, 0, 0, 1, 0]
    assert f[:, COL["word_end"]].tolist() == [0, 0, 1, 0, 1]
    assert f[:, COL["word_pos"]].tolist() == [0.0, 0.5, 1.0, 0.0, 1.0]
    assert f[0, COL["line_start"]] == 1 and f[3, COL["line_start"]] == 0
    assert f[2, COL["punct_end"]] == 1 and f[1, COL["punct_end"]] == 0
    assert f[:, COL["stress_unknown"]].sum() == 0


def test_function_words_and_vowel_classes():
    f = syllable_features(["the", "love", "of", "my", "life"], [True] * 5)
    assert f[:, COL["function_word"]].tolist() == [1, 0, 1, 1, 0]
    # "my" /M AY1/ is a diphthong, "love" /L AH1 V/ central
    assert f[3, COL["vowel_diph"]] == 1 and f[1, COL["vowel_central"]] == 1
    # exactly one vowel class per syllable of a dictionary word
    vowels = f[:, [COL[c] for c in ("vowel_front", "vowel_back", "vowel_central", "vowel_diph")]]
    assert vowels.sum(axis=1).tolist() == [1, 1, 1, 1, 1]


def test_pronoun_i_is_no_line_start():
    f = syllable_features(["I", "Love"], [True, True])
    assert f[0, COL["line_start"]] == 0 and f[1, COL["line_start"]] == 1


def test_unknown_and_non_english_words_get_the_unknown_flag_and_never_raise():
    # Latin (music21 masses), German (chorales), a made-up word, digits, empty strings
    syl = ["ex", "cel", "sis", "Herz", "lieb", "ster", "zqxv", "42", "", "–"]
    starts = [True, False, False, True, False, False, True, True, True, True]
    f = syllable_features(syl, starts)
    assert f.shape == (len(syl), N_PROSODY) and np.isfinite(f).all()
    for i in (0, 1, 2, 3, 4, 5, 6):
        assert f[i, COL["stress_unknown"]] == 1, syl[i]
        assert f[i, [COL["stress_0"], COL["stress_1"], COL["stress_2"]]].sum() == 0
    assert syllable_features([], []).shape == (0, N_PROSODY)


def test_syllabify_text_follows_the_dictionary_counts():
    syllables, starts = syllabify_text("Yesterday, all my troubles seemed so far away")
    assert len(syllables) == sum(dictionary_syllables(w.strip(",")) for w in
                                 "Yesterday, all my troubles seemed so far away".split())
    assert syllables[:3] == ["Yes", "ter", "day,"] and starts[:4] == [True, False, False, True]
    assert "".join(syllables) == "Yesterday,allmytroublesseemedsofaraway"
    assert syllabify_text("beautiful")[0] == ["beau", "ti", "ful"]
    assert syllabify_text("to-mor-row")[0] == ["to", "mor", "row"]


def test_syllabify_text_without_letters_is_empty():
    assert syllabify_text("") == ([], [])
    assert syllabify_text("  ... !!! 123 ") == ([], [])


def test_words_of_groups_by_word_start():
    assert words_of(list("abcde"), [True, False, True, True, False]) == [[0, 1], [2], [3, 4]]
    assert words_of(["x"], [False]) == [[0]]  # a first syllable always starts a word
