"""Per-syllable prosodic features of lyrics, and a syllabifier for typed text.

What a sung syllable shares with its note is structural, not semantic: a
word's first syllable, a stressed syllable, the start of a line or a function
word tend to fall on longer notes, on beats, after rests (docs/training.md,
"Syllable-level alignment").  :func:`syllable_features` turns a sample's
syllables (with word starts) into one fixed-length vector per syllable:

==================  ==========================================================
``word_start``      1 when the syllable begins a word
``word_end``        1 when it ends a word
``word_len``        log(1 + syllables in the word)
``word_pos``        position in the word, 0 (first) … 1 (last)
``stress_1``        primary stress (CMU Pronouncing Dictionary)
``stress_2``        secondary stress
``stress_0``        unstressed
``stress_unknown``  the word is not in the dictionary (or not English)
``line_start``      word starts with a capital letter (lines do in the
                    sources); the pronoun "I" excepted
``punct_end``       the syllable ends with , . ; : ! ?
``function_word``   an English function word (article, pronoun, preposition…)
``vowel_front``     the syllable's vowel: front (IY IH EY EH AE)
``vowel_back``      back (UW UH OW AO AA)
``vowel_central``   central (AH ER)
``vowel_diph``      diphthong (AY AW OY)
``letters``         log(1 + letters in the syllable)
==================  ==========================================================

Words that are not in the dictionary (misspellings, names, German, Latin,
Italian lyrics of the music21 corpus) get ``stress_unknown = 1``, no stress
flag, and a vowel class guessed from their first vowel letter; they never
raise.  The dictionary is ``pronouncing``'s copy of CMUdict, which ships
inside the package (nothing is downloaded).
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

import numpy as np

PROSODY_FEATURES = ("word_start", "word_end", "word_len", "word_pos", "stress_1", "stress_2", "stress_0",
                    "stress_unknown", "line_start", "punct_end", "function_word", "vowel_front",
                    "vowel_back", "vowel_central", "vowel_diph", "letters")
N_PROSODY = len(PROSODY_FEATURES)

_VOWEL_CLASS = {"IY": 0, "IH": 0, "EY": 0, "EH": 0, "AE": 0, "UW": 1, "UH": 1, "OW": 1, "AO": 1, "AA": 1,
                "AH": 2, "ER": 2, "AY": 3, "AW": 3, "OY": 3}
# First vowel letter → class, for words the dictionary lacks (a rough guess, flagged unknown).
_LETTER_CLASS = {"i": 0, "e": 0, "y": 0, "é": 0, "è": 0, "u": 1, "o": 1, "a": 1, "ü": 0, "ö": 0, "ä": 0}
_PUNCT_END = re.compile(r"[,.;:!?]['\")\]]*$")
_LETTERS = re.compile(r"[^\W\d_]+", re.UNICODE)
_VOWEL_GROUP = re.compile(r"[aeiouyäöüáéíóúàèìòùâêîôû]+", re.IGNORECASE)

FUNCTION_WORDS = frozenset("""
a an the and or but nor so yet if then than as at by for from in into of off on onto out over to up upon
with within without about above after against along among around before behind below beneath beside
between beyond down during except like near past since through till toward towards under until via
i me my mine myself you your yours yourself we us our ours ourselves he him his himself she her hers
herself it its itself they them their theirs themselves this that these those who whom whose which what
am is are was were be been being have has had do does did will would shall should can could may might
must not no oh ooh ah yeah la da na o all some any each every there here when where why how too very
just 'cause cause i'm you're it's don't can't won't i'll i've we're they're that's gonna wanna
""".split())


@lru_cache(maxsize=1)
def _cmu() -> dict[str, list[str]]:
    import pronouncing
    pronouncing.init_cmu()
    return pronouncing.lookup


def word_key(word: str) -> str:
    """A word as the dictionary spells it: lower case, letters and apostrophes only."""
    return re.sub(r"[^a-z']", "", word.lower()).strip("'")


@lru_cache(maxsize=65536)
def pronunciation_phones(word: str) -> tuple[str, ...] | None:
    """The word's first CMUdict pronunciation as ARPAbet phones (vowels carry a stress digit), or None."""
    key = word_key(word)
    phones = _cmu().get(key) if key else None
    return tuple(phones[0].split()) if phones else None


@lru_cache(maxsize=65536)
def pronunciation(word: str) -> tuple[tuple[int, str], ...] | None:
    """Per dictionary syllable: ``(stress 0/1/2, vowel phone)``; None when the word is unknown."""
    key = word_key(word)
    phones = _cmu().get(key) if key else None
    if not phones:
        return None
    out = []
    for phone in phones[0].split():
        if phone[-1].isdigit():
            out.append((int(phone[-1]), phone[:-1]))
    return tuple(out) or None


def dictionary_syllables(word: str) -> int | None:
    """Syllables of ``word`` in CMUdict, or None when the word is not in it."""
    pron = pronunciation(word)
    return len(pron) if pron else None


def _map_position(i: int, n: int, m: int) -> int:
    """Syllable ``i`` of ``n`` sung syllables → the nearest of ``m`` dictionary syllables."""
    if m == n or n <= 1:
        return min(i, m - 1)
    return int(round(i * (m - 1) / (n - 1)))


def words_of(syllables: Sequence[str], word_starts: Sequence[bool]) -> list[list[int]]:
    """Indices of the syllables of each word (a word starts at every ``word_start``)."""
    words: list[list[int]] = []
    for i, start in enumerate(word_starts):
        if start or not words:
            words.append([i])
        else:
            words[-1].append(i)
    return words


def syllable_features(syllables: Sequence[str], word_starts: Sequence[bool] | None = None) -> np.ndarray:
    """``(len(syllables), N_PROSODY)`` float32 prosodic features (see the module docstring).

    Parameters
    ----------
    syllables : sequence of str
        The sung syllables, as in a dataset sample (punctuation and capitals kept).
    word_starts : sequence of bool, optional
        True where a syllable begins a word; default: every syllable is a word.
    """
    syllables = [str(s) for s in syllables]
    starts = [True] * len(syllables) if word_starts is None else [bool(w) for w in word_starts]
    out = np.zeros((len(syllables), N_PROSODY), dtype=np.float32)
    col = {name: i for i, name in enumerate(PROSODY_FEATURES)}
    for idx in words_of(syllables, starts):
        word = "".join(syllables[i] for i in idx)
        letters = "".join(_LETTERS.findall(word))
        pron = pronunciation(letters) if letters else None
        first = syllables[idx[0]].lstrip("\"'(¿¡[")
        is_line_start = bool(first[:1].isupper()) and word_key(word) != "i"
        is_function = word_key(word) in FUNCTION_WORDS
        for k, i in enumerate(idx):
            row = out[i]
            row[col["word_start"]] = k == 0
            row[col["word_end"]] = k == len(idx) - 1
            row[col["word_len"]] = np.log1p(len(idx))
            row[col["word_pos"]] = k / (len(idx) - 1) if len(idx) > 1 else 0.0
            row[col["line_start"]] = is_line_start and k == 0
            row[col["punct_end"]] = bool(_PUNCT_END.search(syllables[i].strip()))
            row[col["function_word"]] = is_function
            row[col["letters"]] = np.log1p(len("".join(_LETTERS.findall(syllables[i]))))
            vowel_class = None
            if pron:
                stress, vowel = pron[_map_position(k, len(idx), len(pron))]
                row[col[f"stress_{stress}"]] = 1.0
                vowel_class = _VOWEL_CLASS.get(vowel)
            else:
                row[col["stress_unknown"]] = 1.0
                group = _VOWEL_GROUP.search(syllables[i])
                if group:
                    vowel_class = 3 if len(group.group()) > 1 else _LETTER_CLASS.get(group.group()[0].lower())
            if vowel_class is not None:
                row[col[("vowel_front", "vowel_back", "vowel_central", "vowel_diph")[vowel_class]]] = 1.0
    return out


# -- typed text → syllables ----------------------------------------------------

def _orthographic_split(word: str) -> list[str]:
    """Split a word between vowel groups (V-CV, VC-CV), keeping every letter."""
    groups = list(_VOWEL_GROUP.finditer(word))
    if len(groups) <= 1:
        return [word]
    cuts = []
    for left, right in zip(groups, groups[1:]):
        gap = right.start() - left.end()  # consonants between the two vowel groups
        cuts.append(left.end() + (0 if gap <= 1 else 1))
    # a final silent "e" ("love", "came") is no syllable of its own
    if word.lower().endswith("e") and len(groups) >= 2 and groups[-1].group().lower() == "e" \
            and groups[-1].end() == len(word) and not word.lower().endswith(("le", "ee")):
        cuts = cuts[:-1]
    parts, start = [], 0
    for c in cuts:
        if c > start:
            parts.append(word[start:c])
            start = c
    parts.append(word[start:])
    return [p for p in parts if p]


def syllabify_word(word: str) -> list[str]:
    """Orthographic syllables of one word, as many as CMUdict says when it knows the word.

    Hyphens the user typed ("to-mor-row") are taken as they are.
    """
    if "-" in word.strip("-"):
        return [p for p in word.split("-") if p]
    word = word.strip("-")
    if not word:
        return []
    parts = _orthographic_split(word)
    target = dictionary_syllables(word)
    if target is None or target < 1:
        return parts
    while len(parts) > target:  # merge the shortest neighbouring pair
        j = min(range(len(parts) - 1), key=lambda k: len(parts[k]) + len(parts[k + 1]))
        parts[j:j + 2] = [parts[j] + parts[j + 1]]
    while len(parts) < target:  # split a vowel pair ("ri-a", "De-o"), else the longest part
        pairs = [(k, m) for k, p in enumerate(parts) for m in _VOWEL_GROUP.finditer(p) if len(m.group()) > 1]
        if pairs:
            j, m = pairs[0]
            mid = m.start() + 1
        else:
            j = max(range(len(parts)), key=lambda k: len(parts[k]))
            mid = len(parts[j]) // 2
        if len(parts[j]) < 2:
            break
        parts[j:j + 1] = [parts[j][:mid], parts[j][mid:]]
    return parts


def syllabify_text(text: str) -> tuple[list[str], list[bool]]:
    """A typed lyrics line → (syllables, word_starts), ready for :func:`syllable_features`.

    Words are split by whitespace; punctuation stays on the word (it marks
    phrase ends).  A line without letters gives empty lists.
    """
    syllables: list[str] = []
    starts: list[bool] = []
    for raw in str(text).split():
        core = raw.strip(",.;:!?\"'()[]")
        if not _LETTERS.search(core):
            continue
        parts = syllabify_word(core)
        if not parts:
            continue
        # keep leading/trailing punctuation attached, as the datasets' syllables have it
        lead = raw[:raw.find(core)] if core and raw.find(core) > 0 else ""
        trail = raw[raw.find(core) + len(core):] if core else ""
        parts[0] = lead + parts[0]
        parts[-1] = parts[-1] + trail
        syllables.extend(parts)
        starts.extend([True] + [False] * (len(parts) - 1))
    return syllables, starts
