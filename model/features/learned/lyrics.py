"""Skip-gram lyrics features: syllable model ⊕ word model, mean over syllables.

Two gensim ``Word2Vec(sg=1)`` models are trained on the lyrics of the
training songs, one over syllable sequences and one over word sequences.
A syllable's vector is the concatenation of its syllable vector and the
vector of the word it belongs to; a sample's feature is the mean over its
syllables (method.md §2).

Lookup tries the token as written, then lower-cased, then capitalised (the
published models are case-sensitive); an out-of-vocabulary syllable or word
contributes a zero half, and the mean is taken over the syllables that have at
least one known half (all-zero when none does — never an error).

Trained vectors are saved in word2vec binary format (plain data, no pickle).
The published 10-d encoders of Yu et al. are gensim *pickles*: loading one
can execute code, so ``load_published`` accepts only files inside a folder the
caller names explicitly (``FeatureConfig.use_published_skipgram``), meant to
be the project's read-only ``../shared/data/skipgram-yu2019``.
"""
from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..config import FeatureConfig

SYLLABLE_FILE = "skipgram_syll.model"
WORD_FILE = "skipgram_word.model"
PUBLISHED_SYLLABLE_GLOB = "syllEncoding_skipgram_*.bin"
PUBLISHED_WORD_GLOB = "wordLevelEncoder_skipgram_*.bin"

_STRIP = re.compile(r"^[^\w']+|[^\w']+$", re.UNICODE)


def stable_hash(text: str) -> int:
    """Process-independent hash for gensim's vector seeding (``hash()`` is salted)."""
    return zlib.crc32(str(text).encode("utf-8"))


def token(text: str) -> str:
    """Normalise a syllable or word for training: strip punctuation at the ends, lower-case."""
    stripped = _STRIP.sub("", text.strip())
    return re.sub(r"\s+", "_", (stripped or text.strip()).lower())


def syllables_and_words(syllables: Sequence[str], word_starts: Sequence[bool]) -> list[tuple[str, str]]:
    """Pair each syllable with the word it belongs to (word = joined syllables)."""
    words: list[list[str]] = []
    for syl, start in zip(syllables, word_starts):
        if start or not words:
            words.append([syl])
        else:
            words[-1].append(syl)
    pairs = []
    for word in words:
        joined = "".join(word)
        pairs.extend((syl, joined) for syl in word)
    return pairs


def train_skipgram(sentences: Iterable[Sequence[str]], config: FeatureConfig):
    """One gensim ``Word2Vec(sg=1)`` on ``sentences`` (lists of tokens), deterministic.

    ``workers=1`` and a stable hash function make it the same on every run.
    """
    from gensim.models import Word2Vec

    sentences = [list(s) for s in sentences if len(s)]
    if not sentences:
        raise ValueError("no lyrics to train the skip-gram models on")
    return Word2Vec(sentences=sentences, vector_size=config.skipgram_dim, window=config.skipgram_window,
                    min_count=config.skipgram_min_count, sg=1, epochs=config.skipgram_epochs,
                    seed=config.seed, workers=1, hashfxn=stable_hash)


@dataclass
class LyricsEncoder:
    """Syllable and word skip-gram vectors (gensim ``KeyedVectors``)."""

    syllables: object  # gensim KeyedVectors
    words: object

    @property
    def dim(self) -> int:
        return int(self.syllables.vector_size + self.words.vector_size)

    @staticmethod
    def _lookup(kv, text: str) -> np.ndarray | None:
        for candidate in (text, text.strip(), token(text), token(text).capitalize()):
            if candidate and candidate in kv.key_to_index:
                return np.asarray(kv[candidate], dtype=np.float32)
        return None

    def syllable_vectors(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """``(len(pairs), dim)`` concat(syllable, word) vectors; rows of unknown pairs are NaN."""
        ds, dw = self.syllables.vector_size, self.words.vector_size
        out = np.full((len(pairs), ds + dw), np.nan, dtype=np.float32)
        for i, (syl, word) in enumerate(pairs):
            vs, vw = self._lookup(self.syllables, syl), self._lookup(self.words, word)
            if vs is None and vw is None:
                continue
            out[i, :ds] = vs if vs is not None else 0.0
            out[i, ds:] = vw if vw is not None else 0.0
        return out

    def encode_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Mean over known syllables of concat(syllable, word); zeros when none is known."""
        vecs = self.syllable_vectors(pairs)
        known = ~np.isnan(vecs[:, 0]) if len(vecs) else np.zeros(0, bool)
        if not known.any():
            return np.zeros(self.dim, dtype=np.float32)
        return vecs[known].mean(axis=0).astype(np.float32)

    def encode_sample(self, syllables: Sequence[str], word_starts: Sequence[bool]) -> np.ndarray:
        return self.encode_pairs(syllables_and_words(syllables, word_starts))

    def segment(self, word: str) -> list[str]:
        """Split a typed word into syllables of the vocabulary (greedy longest match).

        ``"lo-ve"`` splits at the hyphens; a word the syllable model knows is
        one syllable; otherwise the longest known prefix is taken repeatedly
        and an unmatched rest stays one (unknown) syllable.
        """
        if "-" in word.strip("-"):
            return [p for p in word.split("-") if p]
        word = word.strip("-")
        if not word or self._lookup(self.syllables, word) is not None:
            return [word] if word else []
        out, rest = [], word
        while rest:
            for end in range(len(rest), 0, -1):
                if self._lookup(self.syllables, rest[:end]) is not None:
                    out.append(rest[:end])
                    rest = rest[end:]
                    break
            else:
                out.append(rest)
                break
        return out

    def encode_text(self, text: str) -> np.ndarray:
        """A typed lyrics line: words by whitespace, syllables by ``segment``."""
        pairs: list[tuple[str, str]] = []
        for raw in str(text).split():
            word = _STRIP.sub("", raw) or raw
            syls = self.segment(word)
            joined = "".join(syls)
            pairs.extend((s, joined) for s in syls)
        return self.encode_pairs(pairs)

    # -- persistence -----------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """Save both models' vectors atomically in word2vec binary format.

        That format is plain data (a header, then token and float32 vector per
        line), so loading an encoders folder never unpickles anything.
        """
        from model.atomic import atomic_path
        folder = Path(folder)
        for name, kv in ((SYLLABLE_FILE, self.syllables), (WORD_FILE, self.words)):
            with atomic_path(folder / name, suffix=".model") as tmp:
                kv.save_word2vec_format(str(tmp), binary=True)

    @classmethod
    def load(cls, folder: str | Path) -> "LyricsEncoder":
        """Load vectors this project saved (word2vec binary format; no pickle)."""
        from gensim.models import KeyedVectors
        folder = Path(folder)
        return cls(*(KeyedVectors.load_word2vec_format(str(folder / name), binary=True)
                     for name in (SYLLABLE_FILE, WORD_FILE)))

    @classmethod
    def load_published(cls, folder: str | Path) -> "LyricsEncoder":
        """Yu et al.'s published 10-d encoders (gensim 3 pickles; trusted folder only)."""
        from gensim.models import Word2Vec
        folder = Path(folder)
        found = []
        for pattern in (PUBLISHED_SYLLABLE_GLOB, PUBLISHED_WORD_GLOB):
            files = sorted(folder.glob(pattern))
            if not files:
                raise FileNotFoundError(f"no {pattern} in {folder}")
            found.append(Word2Vec.load(str(files[0])).wv)
        return cls(found[0], found[1])

    def digest(self) -> str:
        """SHA-256 of both vocabularies and vectors (identifies the trained models)."""
        h = hashlib.sha256()
        for kv in (self.syllables, self.words):
            h.update("\x00".join(kv.index_to_key).encode("utf-8"))
            h.update(np.ascontiguousarray(kv.vectors, dtype=np.float32).tobytes())
        return h.hexdigest()


def train_lyrics_encoder(songs: Sequence[Sequence[tuple[str, bool]]], config: FeatureConfig) -> LyricsEncoder:
    """Train the syllable and word models on songs given as (syllable, word_start) lists."""
    syllable_sentences, word_sentences = [], []
    for song in songs:
        pairs = syllables_and_words([s for s, _ in song], [w for _, w in song])
        syllable_sentences.append([token(s) for s, _ in pairs])
        words, last = [], None
        for (syl, word), (_, start) in zip(pairs, song):
            if start or last is None:
                words.append(token(word))
            last = word
        word_sentences.append(words)
    syl_model = train_skipgram(syllable_sentences, config)
    word_model = train_skipgram(word_sentences, config)
    return LyricsEncoder(syl_model.wv, word_model.wv)
