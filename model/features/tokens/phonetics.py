"""Per-syllable phonetic columns of lyrics: which vowel, and how the syllable is closed.

The prosody columns (:mod:`model.features.tokens.prosody`) class a syllable's
vowel into four groups and count its letters.  Taking those away from the
lyrics re-ranker's pair scorer costs it 0.004 N of validation MedR (LMD-full,
seed 0, sheet: 0.027 → 0.031 N), so what a syllable *sounds* like carries
part of the note it is sung on: long vowels and open syllables are held, a
stop consonant cuts a note short.  :func:`syllable_phonetics` spells that out
from the CMU Pronouncing Dictionary's phones:

====================  ========================================================
``vowel_<ARPAbet>``   the syllable's vowel, one of 15 (IY IH EY EH AE UW UH
                      OW AO AA AH ER AY AW OY)
``vowel_long``        a tense vowel or a diphthong (IY EY UW OW AO AA ER AY
                      AW OY), against a lax one
``onset``             log(1 + consonants before the vowel)
``coda``              log(1 + consonants after it)
``open``              no consonant after the vowel
``coda_sonorant``     the syllable ends in M N NG L R W Y
``coda_obstruent``    it ends in a stop, fricative or affricate
====================  ========================================================

A word's phones are split into syllables at its vowels; of the consonants
between two vowels the last begins the next syllable and the others close the
one before (a simple maximal-onset rule).  A word the dictionary lacks
(misspellings, names, the German, Latin and Italian lyrics of the music21
corpus) gets no vowel or onset/coda counts, and ``open`` / ``coda_*`` from
its spelling (the syllable's last letter); its prosody row already says it is
unknown (``stress_unknown``).  Nothing raises.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .prosody import _LETTERS, _map_position, pronunciation_phones, words_of

VOWELS = ("IY", "IH", "EY", "EH", "AE", "UW", "UH", "OW", "AO", "AA", "AH", "ER", "AY", "AW", "OY")
LONG_VOWELS = frozenset(("IY", "EY", "UW", "OW", "AO", "AA", "ER", "AY", "AW", "OY"))
SONORANTS = frozenset(("M", "N", "NG", "L", "R", "W", "Y"))
PHONETIC_FEATURES = (*(f"vowel_{v}" for v in VOWELS), "vowel_long", "onset", "coda", "open",
                     "coda_sonorant", "coda_obstruent")
N_PHONETIC = len(PHONETIC_FEATURES)
_COL = {name: i for i, name in enumerate(PHONETIC_FEATURES)}
_LETTER_VOWELS = frozenset("aeiouyäöüáéíóúàèìòùâêîôû")
_LETTER_SONORANTS = frozenset("mnlrwy")


def phone_syllables(phones: Sequence[str]) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """A word's phones (ARPAbet with stress digits) → ``(vowel, onset, coda)`` per syllable."""
    vowels = [i for i, p in enumerate(phones) if p[-1:].isdigit()]
    out = []
    for k, v in enumerate(vowels):
        # the consonants between two vowels: the last one opens the next syllable
        start = 0 if k == 0 else max(vowels[k - 1] + 1, v - 1)
        end = len(phones) if k == len(vowels) - 1 else max(v + 1, vowels[k + 1] - 1)
        out.append((phones[v][:-1], tuple(phones[start:v]), tuple(phones[v + 1:end])))
    return out


def syllable_phonetics(syllables: Sequence[str], word_starts: Sequence[bool] | None = None) -> np.ndarray:
    """``(len(syllables), N_PHONETIC)`` float32 phonetic columns (see the module docstring).

    Parameters
    ----------
    syllables : sequence of str
        The sung syllables, as in a dataset sample.
    word_starts : sequence of bool, optional
        True where a syllable begins a word; default: every syllable is a word.
    """
    syllables = [str(s) for s in syllables]
    starts = [True] * len(syllables) if word_starts is None else [bool(w) for w in word_starts]
    out = np.zeros((len(syllables), N_PHONETIC), dtype=np.float32)
    for idx in words_of(syllables, starts):
        letters = "".join(_LETTERS.findall("".join(syllables[i] for i in idx)))
        phones = pronunciation_phones(letters) if letters else None
        parts = phone_syllables(phones) if phones else []
        for k, i in enumerate(idx):
            row = out[i]
            if parts:
                vowel, onset, coda = parts[_map_position(k, len(idx), len(parts))]
                if vowel in VOWELS:
                    row[_COL[f"vowel_{vowel}"]] = 1.0
                row[_COL["vowel_long"]] = vowel in LONG_VOWELS
                row[_COL["onset"]] = np.log1p(len(onset))
                row[_COL["coda"]] = np.log1p(len(coda))
                last = coda[-1] if coda else None
                row[_COL["open"]] = last is None
                row[_COL["coda_sonorant"]] = last in SONORANTS
                row[_COL["coda_obstruent"]] = last is not None and last not in SONORANTS
            else:
                spelled = "".join(_LETTERS.findall(syllables[i])).lower()
                if spelled:
                    closed = spelled[-1] not in _LETTER_VOWELS
                    row[_COL["open"]] = not closed
                    row[_COL["coda_sonorant"]] = closed and spelled[-1] in _LETTER_SONORANTS
                    row[_COL["coda_obstruent"]] = closed and spelled[-1] not in _LETTER_SONORANTS
    return out
