"""Score a lyrics line against a melody syllable by note: a position-wise pair scorer for re-ranking.

Every common-space model of this project maps an item to one vector, so a
lyrics query and a melody meet through one dot product.  Issue 9's probes put
the shared signal in the *pairing* of syllable *i* with note *i*: a stressed
syllable on a long note, a word end before a rest, a line start after one.
:class:`PairScorer` reads those pairs directly.  For every position it mixes
the syllable's prosody columns (the lyrics tokens' structure block: stress,
word position, line start, function word, …) and the note's or onset's
structure columns (written length, rest, pitch step; or onset interval,
loudness) with their neighbours at *i* ± 1, passes them through a small MLP
and sums the result over the line's positions: one score per (lyrics, melody)
pair.  It cannot be an index (each pair is scored jointly), so it re-ranks:
every item of a library of tens of thousands, or the top k of the learned
space.

With ``repetition`` (the default of ``ugaar lyrics-scorer``) it also reads
what no single position shows: *where* each side repeats itself.  A line's
repeated syllables ("baby, baby", a refrain's words) tend to sit on repeated
notes, so the agreement of the line's and the melody's self-similarity
matrices (:func:`self_similarity`) is added, one learned weight for repeats a
few positions apart and one for those further away.

With ``context`` (3 layers by default) each side's positions first pass
through residual dilated convolutions, so a syllable–note pair is scored
knowing its phrase (where the last rest or line start was, how long the
notes around it are), not only its two neighbours.

With ``phonetics`` (the default of ``ugaar lyrics-scorer``) the lyrics side
also reads each syllable's vowel, onset and coda
(:mod:`model.features.tokens.phonetics`), computed from the dataset's syllables
or a query's own.  With ``pitch`` (the default too) the audio side also reads
each onset's pitch, measured in the recording
(:mod:`model.features.tokens.onset_pitch`): the sheet side's notes carry their
written pitch, the audio tokens did not.

It is trained contrastively (InfoNCE both ways over a batch's pairs) on the
training split's structure columns, and the epoch kept is the best on the
validation split's lyrics→melody MedR.  With ``distill`` the audio scorer is
also pulled towards the trained sheet scorer's scores of the same lines
against the same samples' notes.  With ``ema_epochs`` the weights validated and
kept are a moving average of the training steps' weights.  Measured in
``benchmarks/lyrics_rerank.py`` (docs/benchmarks.md, "Lyrics re-ranking").
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from model.progress import CancelToken, ProgressCallback, report


@dataclass(frozen=True)
class PairScorerConfig:
    """One pair scorer's training run.

    Attributes
    ----------
    modality : str
        The melody side: ``sheet`` (engraved notes) or ``audio`` (onsets).
    positions : int
        Positions read (the dataset's 20 syllable–note pairs).
    hidden : int
        Width of the per-position MLP.
    epochs, batch, lr, weight_decay
        Training; the best validation epoch is kept.
    seed : int
    repetition : bool
        Also score whether the line's repeated syllables fall where the melody
        repeats itself (:func:`self_similarity`; docs/benchmarks.md, "Lyrics re-ranking").
    shifts : tuple of int
        More training pairs: windows that start this many positions into a
        training sample and run on into the song's next one
        (:func:`shifted_windows`); validation is never augmented.
    context : int
        Residual dilated convolutions (kernel 3, dilation 1, 2, 4, …) over each
        side's positions before the pairs are scored, so a position sees its
        phrase and not only its two neighbours; 0 (the first versions) reads
        positions i − 1 … i + 1 only.
    dropout : float
        Dropout on each side's per-position hidden rows while training (0: none).
    phonetics : bool
        Give the lyrics side the syllables' phonetic columns too (which vowel,
        onset and coda: :mod:`model.features.tokens.phonetics`), computed from
        the dataset's syllables (:func:`lyrics_phonetics`) or a query's.
    distill : float
        Weight of a second loss that pulls this scorer's in-batch scores towards
        a trained *teacher*'s on the same lines and the same training samples'
        other melody side (KL divergence of the two softmaxes, both ways): the
        audio scorer learns from the sheet scorer, whose notes are clean where
        detected onsets are not.  Training only; 0: none.
    ema_epochs : float
        Half-life, in epochs, of an exponential moving average of the weights,
        updated after every step; each epoch's validation, and the scorer
        kept, use the average instead of the last step's weights (0: none).
        In epochs, not steps, so that a small dataset's few steps are averaged
        over as much of its training as a large one's.
    pitch : bool
        Give the audio side each onset's pitch, interval and whether it is
        pitched (:mod:`model.features.tokens.onset_pitch`), measured in the
        dataset's audio or a query's own recording; the sheet side ignores it.
    """

    modality: str = "sheet"
    positions: int = 20
    hidden: int = 64
    epochs: int = 12
    batch: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    repetition: bool = False
    shifts: tuple[int, ...] = ()
    context: int = 0
    dropout: float = 0.0
    phonetics: bool = False
    distill: float = 0.0
    ema_epochs: float = 0.0
    pitch: bool = False

    def __post_init__(self) -> None:
        if self.modality not in ("sheet", "audio"):
            raise ValueError(f"the melody side is 'sheet' or 'audio', got {self.modality!r}")
        if not 0 <= int(self.context) <= 4:
            raise ValueError(f"context is 0 to 4 convolution layers, got {self.context}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout is in [0, 1), got {self.dropout}")
        if float(self.distill) < 0:
            raise ValueError(f"distill is a loss weight ≥ 0, got {self.distill}")
        if float(self.ema_epochs) < 0:
            raise ValueError(f"ema_epochs is a half-life in epochs ≥ 0, got {self.ema_epochs}")
        if int(self.batch) < 2:  # one pair a step has no other line to tell its melody from
            raise ValueError("a training step needs at least 2 pairs (each the others' negatives), "
                             f"got batch {self.batch}")
        if any(not 0 < int(k) < self.positions for k in self.shifts):
            raise ValueError(f"a shifted window starts 1 to {self.positions - 1} positions into a sample, "
                             f"got shifts {tuple(self.shifts)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PairScorerConfig":
        """The inverse of :meth:`to_dict` (lists back to tuples; fields an older file lacks take their defaults)."""
        data = dict(data)
        if "shifts" in data:
            data["shifts"] = tuple(int(x) for x in data["shifts"])
        return cls(**data)


#: Whether ``ugaar lyrics-scorer`` and the window train scorers with the repetition term.
REPETITION_DEFAULT = True
#: The shifted training windows ``ugaar lyrics-scorer`` and the window add (:attr:`PairScorerConfig.shifts`).
SHIFTS_DEFAULT: tuple[int, ...] = (10,)
#: The phrase-context layers ``ugaar lyrics-scorer`` and the window give a scorer (:attr:`PairScorerConfig.context`).
#: Chosen on validation (LMD-full, seed 0, sheet; scorer alone / mixed with the learned distance):
#: 0 layers 0.035 / 0.034 N, 2 layers 0.030 / 0.029, 3 layers 0.030 / 0.029 (R@10 36.0 against 34.2),
#: 4 layers 0.029 / 0.030 (docs/benchmarks.md, "Lyrics re-ranking").
CONTEXT_DEFAULT = 3
#: Dropout on the hidden rows that ``ugaar lyrics-scorer`` and the window train with (:attr:`PairScorerConfig.dropout`).
#: Chosen on validation (LMD-full, seed 0, sheet, 3 context layers; scorer alone / mixed): none 0.030 / 0.029 N
#: (best epoch 3 of 6: it over-fits), 0.2 0.026 / 0.025 (R@10 36.7 %), 0.3 0.025 / 0.025 (R@10 37.1 %),
#: both best at the 6th epoch; weight decay 0.05 instead was 0.029 / 0.030 (docs/training.md, "Fourth round").
DROPOUT_DEFAULT = 0.3
#: Epochs ``ugaar lyrics-scorer`` and the window train each side's scorer for (the best validation epoch is kept).
#: With dropout alone, epochs 7–10 did not beat the 6th on validation (0.025–0.029 N).  With the weights' moving
#: average and the onset pitch, over three seeds (scorer alone, validation lyrics→m MedR/N, R@10): sheet 6 epochs
#: 0.0204 ± 0.0000 (39.8 %), 8 epochs 0.0191 ± 0.0011 (41.0 %; best at the 5th, 7th and 8th, a 9th no better);
#: audio 0.0347 ± 0.0011 (35.1 %) and 0.0344 ± 0.0006 (35.1 %) (docs/training.md, "Seventh round").
EPOCHS_DEFAULT = 8
#: In-batch negatives per step that ``ugaar lyrics-scorer`` and the window train with (:attr:`PairScorerConfig.batch`).
#: Chosen on validation over three seeds (LMD-full, sheet, the defaults above; lyrics→sheet scorer alone / mixed,
#: R@10): 128 0.028 / 0.027 N (36.7 %), 324–351 s a scorer; **64** 0.027 / 0.025 N (36.8 %), 141–156 s; 32 0.027 /
#: 0.027 N (35.5 %), 108–121 s.  A step's pair tensor (batch² × positions × hidden) is a quarter as large at 64, and
#: an epoch costs half as much (docs/training.md, "Fourth round").
BATCH_DEFAULT = 64
#: Whether ``ugaar lyrics-scorer`` and the window give the lyrics side the syllables' phonetic columns
#: (:attr:`PairScorerConfig.phonetics`).  Chosen on validation over three seeds (LMD-full, sheet, the defaults
#: above; scorer alone / mixed with the learned distance, R@10): without 0.027 / 0.025 N (36.8 %), with 0.022 /
#: 0.023 N (38.2 %) (docs/training.md, "Fifth round").
PHONETICS_DEFAULT = True
#: Weight of the sheet scorer's scores in the audio scorer's training loss (:attr:`PairScorerConfig.distill`)
#: when ``ugaar lyrics-scorer`` and the window train the audio side.  One value tried, set before looking, on
#: validation over three seeds (LMD-full, audio, the defaults above; scorer alone / mixed, R@10): without
#: 0.035 / 0.037 N (33.3 %), with 1.0 0.032 / 0.034 N (35.3 %) (docs/training.md, "Fifth round").
DISTILL_DEFAULT = 1.0
#: Half-life in epochs of the weights' moving average ``ugaar lyrics-scorer`` and the window keep
#: (:attr:`PairScorerConfig.ema_epochs`): on LMD-full (195 steps an epoch) a decay of 0.9949 a step, chosen on
#: validation among decays 0.995 and 0.998 (three seeds; docs/training.md, "Sixth round").
EMA_EPOCHS_DEFAULT = 0.7
#: Whether ``ugaar lyrics-scorer`` and the window give the audio side each onset's pitch columns
#: (:attr:`PairScorerConfig.pitch`).  Chosen on validation over three seeds (LMD-full, audio, the defaults above;
#: scorer alone, R@10): without 0.0377 ± 0.0022 N (34.0 %), with 0.0347 ± 0.0011 N (35.1 %), better for each
#: seed.  In the probe that chose the columns, letting pitch and interval also decide which onsets repeat
#: (instead of the CNN's cosine) gave 0.0370 against 0.0360 N (docs/training.md, "Seventh round").
PITCH_DEFAULT = True
#: Repeats at most this many positions apart form the "near" band of :class:`PairScorer`'s repetition term.
REPEAT_NEAR = 4
#: Cosine above which two audio onsets' CNN vectors count as the same sound repeated.
AUDIO_REPEAT_COSINE = 0.95


def self_similarity(tokens: np.ndarray, mask: np.ndarray, modality: str, structure_dim: int) -> np.ndarray:
    """Which positions of an item repeat which others, ``(N, P, P)`` float32 (0 on the diagonal).

    * lyrics: the same syllable of the same word (the skip-gram syllable and
      word vectors at the token's head are equal and known);
    * sheet: the same written duration and pitch (the note columns of the
      structure block; nothing where the notes are unknown);
    * audio: onsets whose CNN vectors have a cosine above :data:`AUDIO_REPEAT_COSINE`.

    ``tokens`` are whole per-position tokens ``(N, P, D_total)``.
    """
    p = mask.shape[1]
    if modality == "lyrics":
        # the skip-gram head: before the unknown flag and the structure columns
        head = tokens[:, :, : tokens.shape[2] - 1 - structure_dim]
        known = np.abs(head).sum(-1) > 0
        # one id per distinct (syllable, word) vector, then (N, P, P) id comparisons instead of
        # (N, P, P, D) float ones: this runs over the whole library each time a run's scorer loads.
        # A vector's bytes name it (the same syllable and word give the same lookup, bit for bit).
        rows = np.ascontiguousarray(head.reshape(-1, head.shape[2]), dtype=np.float32)
        _, ids = np.unique(rows.view(np.dtype((np.void, rows.shape[1] * 4))).ravel(), return_inverse=True)
        ids = ids.reshape(head.shape[:2])
        same = (ids[:, :, None] == ids[:, None]) & known[:, :, None] & known[:, None]
    elif modality == "sheet":
        struct = tokens[:, :, -structure_dim:]
        beats, pitch, known = struct[:, :, 3], struct[:, :, 5], struct[:, :, 2] > 0
        same = ((np.abs(beats[:, :, None] - beats[:, None]) < 1e-4)
                & (np.abs(pitch[:, :, None] - pitch[:, None]) < 1e-4) & known[:, :, None] & known[:, None])
    else:
        head = tokens[:, :, : tokens.shape[2] - structure_dim]
        unit = head / np.maximum(np.linalg.norm(head, axis=-1, keepdims=True), 1e-9)
        same = np.einsum("npd,nqd->npq", unit, unit) > AUDIO_REPEAT_COSINE
    out = same.astype(np.float32) * mask[:, :, None] * mask[:, None] * (1.0 - np.eye(p, dtype=np.float32))
    return out


def consecutive_pairs(song_ids: Any, rows: np.ndarray) -> np.ndarray:
    """``(K, 2)`` pairs of ``rows`` that follow each other in the FeatureSet and share a song
    (a dataset lists a song's windows in order)."""
    rows = np.sort(np.asarray(rows))
    songs = np.asarray(song_ids)
    follows = (np.diff(rows) == 1) & (songs[rows[1:]] == songs[rows[:-1]])
    return np.stack([rows[:-1][follows], rows[1:][follows]], 1) if len(rows) > 1 else np.zeros((0, 2), np.int64)


def shifted_windows(full: np.ndarray, lengths: Any, pairs: np.ndarray, shift: int,
                    positions: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows of whole tokens that start ``shift`` positions into the first item of each pair and run
    on into the second: ``(K, positions, D)`` and their lengths.

    A syllable's prosody and a note's written length and rest do not depend on where a window
    starts, so these are real pairs of lines and melodies the dataset's windows cut apart; the
    few columns that are relative to the window (a note's pitch against the window's mean, the
    first interval) come from the window each position was extracted in.
    """
    lengths = np.asarray(lengths)
    out = np.zeros((len(pairs), positions, full.shape[2]), np.float32)
    out_len = np.zeros(len(pairs), np.int64)
    for k, (a, b) in enumerate(pairs):
        joined = np.concatenate([full[a, shift:lengths[a]], full[b, :lengths[b]]])[:positions]
        out[k, :len(joined)] = joined
        out_len[k] = len(joined)
    return out, out_len


def structure_tokens(features: Any, modality: str, positions: int = 20, repetition: bool = False,
                     phonetics: bool = False, pitch: bool = False, progress: Optional[ProgressCallback] = None,
                     cancel: Optional[CancelToken] = None) -> tuple[np.ndarray, np.ndarray]:
    """The structure columns of a FeatureSet's tokens for ``modality``, first ``positions`` positions.

    With ``repetition``, each position's row of :func:`self_similarity` follows
    its structure columns (``positions`` more columns).  With ``phonetics``, the
    lyrics' structure columns end with the syllables' phonetic ones, and with
    ``pitch`` the audio's with the onsets' pitch columns (:func:`scorer_inputs`).

    Returns
    -------
    tokens : (N, positions, D [+ positions]) float32, zero beyond each item's length
    mask : (N, positions) float32, 1 where a position exists
    """
    full, lengths, dim = scorer_inputs(features, modality, phonetics, pitch, progress, cancel)
    return tokens_of(full, lengths, modality, dim, positions, repetition)


def scorer_inputs(features: Any, modality: str, phonetics: bool = False, pitch: bool = False,
                  progress: Optional[ProgressCallback] = None,
                  cancel: Optional[CancelToken] = None) -> tuple[np.ndarray, np.ndarray, int]:
    """A FeatureSet's whole per-position tokens for ``modality`` as the scorer reads them, their lengths,
    and how many of the last columns are structure columns.

    With ``phonetics`` the lyrics tokens gain the syllables' phonetic columns at the end
    (:func:`lyrics_phonetics`), and with ``pitch`` the audio tokens their onsets' pitch columns
    (:func:`model.features.tokens.onset_pitch.dataset_onset_pitch`, computed once and cached in the
    dataset's folder; ``progress`` and ``cancel`` follow it); both count as structure columns.
    """
    from model.features.tokens.sequences import STRUCTURE_DIMS

    dims = features.meta.get("structure_dims") or STRUCTURE_DIMS
    seq = features.input_of(modality, "aligned")
    if modality == "lyrics" and phonetics:
        extra = lyrics_phonetics(features, seq.tokens.shape[1])
    elif modality == "audio" and pitch:
        from model.features.tokens.onset_pitch import dataset_onset_pitch
        extra = dataset_onset_pitch(features, seq.tokens.shape[1], progress, cancel)
    else:
        return seq.tokens, seq.lengths, int(dims[modality])
    full = np.concatenate([seq.tokens, extra.astype(seq.tokens.dtype)], -1)
    return full, seq.lengths, int(dims[modality]) + extra.shape[2]


def lyrics_phonetics(features: Any, positions: int) -> np.ndarray:
    """``(N, positions, N_PHONETIC)`` phonetic columns of a FeatureSet's lyrics, from its dataset's syllables.

    The FeatureSet names its dataset (``meta["dataset_root"]``); each item's
    syllables and word starts are read from there (a dataset sample's notes).

    Raises
    ------
    DatasetError
        When the dataset cannot be opened or lacks one of the items, naming it.
    """
    from pathlib import Path

    from model.data.dataset import Dataset, DatasetError
    from model.feature_set import pad_sequences
    from model.features.tokens.phonetics import N_PHONETIC, syllable_phonetics

    root = features.meta.get("dataset_root")
    if not root or not Path(root).is_dir():
        raise DatasetError(str(root or "the features' dataset"), "the lyrics scorer's phonetic columns come from "
                           "the dataset's syllables, and the dataset the features were extracted from is not there",
                           "put the dataset back where it was extracted from")
    samples = {s.sample_id: s for s in Dataset.open(root).samples}
    items = []
    for sid in features.sample_ids:
        sample = samples.get(str(sid))
        if sample is None:
            raise DatasetError(str(root), f"sample {sid} of the features is not in the dataset",
                               "extract the features again: ugaar features extract DATASET --force")
        items.append(syllable_phonetics(sample.syllables, [note.word_start for note in sample.notes]))
    return pad_sequences(items, positions, N_PHONETIC)[0]


def library_tokens(features: Any, sides: Any, repetition: bool, phonetics: bool = False, pitch: bool = False,
                   progress: Optional[ProgressCallback] = None,
                   cancel: Optional[CancelToken] = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """:func:`structure_tokens` of the lyrics and of each melody side in ``sides``, at the scorer's
    positions (:attr:`PairScorerConfig.positions`): what a :class:`LyricsReranker` scores against."""
    positions = PairScorerConfig.positions
    return {m: structure_tokens(features, m, positions, repetition, phonetics, pitch, progress, cancel)
            for m in ("lyrics", *sides)}


def tokens_of(full: np.ndarray, lengths: Any, modality: str, structure_dim: int, positions: int = 20,
              repetition: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """:func:`structure_tokens` of padded whole tokens ``(N, L, D_total)`` and their lengths."""
    n, d = len(lengths), structure_dim
    whole = np.zeros((n, positions, full.shape[2]), np.float32)
    width = min(positions, full.shape[1])
    whole[:, :width] = full[:, :width]
    mask = (np.arange(positions)[None, :] < np.asarray(lengths)[:, None]).astype(np.float32)
    whole *= mask[..., None]
    tokens = whole[:, :, -d:]
    if repetition:
        tokens = np.concatenate([tokens, self_similarity(whole, mask, modality, d)], -1)
    return np.ascontiguousarray(tokens, dtype=np.float32), mask


def _with_neighbours(x: torch.Tensor) -> torch.Tensor:
    """(B, P, D) → (B, P, 3D): each position beside its left and right neighbours (zeros at the ends)."""
    pad = torch.zeros_like(x[:, :1])
    return torch.cat([torch.cat([pad, x[:, :-1]], 1), x, torch.cat([x[:, 1:], pad], 1)], -1)


class _PhraseContext(nn.Module):
    """Residual dilated 1-D convolutions over positions: (B, P, H) → (B, P, H), padding masked out."""

    def __init__(self, hidden: int, layers: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(hidden, hidden, 3, padding=2 ** i, dilation=2 ** i)
                                   for i in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None, :]
        y = x.transpose(1, 2)
        for conv in self.convs:
            y = y + nn.functional.gelu(conv(y * m))
        return y.transpose(1, 2)


class PairScorer(nn.Module):
    """Score of every (lyrics line, melody) pair from their position-wise structure columns.

    Parameters
    ----------
    lyrics_dim, music_dim : int
        Structure columns per syllable and per note / onset.
    config : PairScorerConfig
    lyrics_stats, music_stats : (mean, std) arrays, optional
        Standardisation of the columns (from the training split).
    """

    def __init__(self, lyrics_dim: int, music_dim: int, config: PairScorerConfig = PairScorerConfig(),
                 lyrics_stats: Optional[tuple[np.ndarray, np.ndarray]] = None,
                 music_stats: Optional[tuple[np.ndarray, np.ndarray]] = None) -> None:
        super().__init__()
        h, p = config.hidden, config.positions
        self.config = config
        self.lyrics_in = nn.Linear(3 * lyrics_dim, h)
        self.music_in = nn.Linear(3 * music_dim, h)
        self.position = nn.Parameter(torch.zeros(p, h))
        self.mix = nn.Sequential(nn.GELU(), nn.Linear(h, h), nn.GELU(), nn.Linear(h, 1))
        # None without context: a scorer file of the first versions has no such weights
        self.lyrics_context = _PhraseContext(h, config.context) if config.context else None
        self.music_context = _PhraseContext(h, config.context) if config.context else None
        # no weights: a scorer file written before the field loads unchanged
        self.dropout = nn.Dropout(config.dropout)
        # One weight per band of distance between a repeated pair (near: within a few
        # syllables, "baby baby"; far: a phrase repeated later in the window).
        self.repeat_weight = nn.Parameter(torch.ones(2)) if config.repetition else None
        offset = torch.arange(p)[:, None] - torch.arange(p)[None, :]
        self.register_buffer("near", (offset.abs() <= REPEAT_NEAR).float(), persistent=False)
        for name, dim, stats in (("lyrics", lyrics_dim, lyrics_stats), ("music", music_dim, music_stats)):
            mean, std = stats if stats is not None else (np.zeros(dim), np.ones(dim))
            self.register_buffer(f"{name}_mean", torch.as_tensor(np.asarray(mean), dtype=torch.float32))
            self.register_buffer(f"{name}_std", torch.as_tensor(np.asarray(std), dtype=torch.float32))

    def _lyrics(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = (x - self.lyrics_mean) / self.lyrics_std * mask[..., None]
        z = self.lyrics_in(_with_neighbours(x)) + self.position
        return self.lyrics_context(z, mask) if self.lyrics_context is not None else z

    def _music(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = (x - self.music_mean) / self.music_std * mask[..., None]
        z = self.music_in(_with_neighbours(x))
        return self.music_context(z, mask) if self.music_context is not None else z

    def _repeats(self, lyrics: torch.Tensor, music: torch.Tensor) -> torch.Tensor:
        """(B, C): how well the line's repeats and the melody's coincide, per distance band, weighted.

        Each band's agreement is a cosine between the two self-similarity
        matrices (counts of shared repeated pairs over the root of each side's
        count, + 1 so an item without repeats scores 0, not a division by 0)."""
        out = 0.0
        for k, band in enumerate((self.near, 1.0 - self.near)):
            sl, sm = lyrics * band, music * band
            shared = torch.einsum("bij,cij->bc", sl, sm)
            norm = torch.sqrt(sl.sum((1, 2)) + 1.0)[:, None] * torch.sqrt(sm.sum((1, 2)) + 1.0)[None, :]
            out = out + self.repeat_weight[k] * shared / norm
        return out

    def forward(self, lyrics: torch.Tensor, lyrics_mask: torch.Tensor, music: torch.Tensor,
                music_mask: torch.Tensor) -> torch.Tensor:
        """(B, P, Dl), (B, P), (C, P, Dm), (C, P) → (B, C) scores (higher: a better pair).

        With ``config.repetition`` the last P columns of each side are its
        :func:`self_similarity` rows."""
        return self.score_encoded(self.encode("lyrics", lyrics, lyrics_mask), lyrics_mask,
                                  self.encode("music", music, music_mask))

    def encode(self, side: str, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """One side's per-position hidden rows (N, P, H), and its self-similarity rows (None without
        the repetition term): what :meth:`score_encoded` pairs.  Neither depends on the other side,
        so a library's can be computed once and kept (:class:`LyricsReranker`)."""
        rep = None
        if self.repeat_weight is not None:
            p = self.config.positions
            x, rep = x[..., :-p], x[..., -p:]
        hidden = self._lyrics(x, mask) if side == "lyrics" else self._music(x, mask)
        return self.dropout(hidden), rep

    def score_encoded(self, lyrics: tuple[torch.Tensor, Optional[torch.Tensor]], lyrics_mask: torch.Tensor,
                      music: tuple[torch.Tensor, Optional[torch.Tensor]]) -> torch.Tensor:
        """(B, C) scores of lyrics lines against melodies, both sides as :meth:`encode` returns them
        (one chunk of lines: :func:`score_encoded_matrix` chunks a library)."""
        (lh, lrep), (mh, mrep) = lyrics, music
        pair = lh[:, None] + mh[None, :]
        score = (self.mix(pair).squeeze(-1) * lyrics_mask[:, None, :]).sum(-1)
        if self.repeat_weight is not None:
            score = score + self._repeats(lrep, mrep)
        return score


#: Floats in one chunk's pair tensor (lines × melodies × positions × hidden) when scoring many pairs:
#: 16 MB.  Scoring LMD-full's validation split (1,027 × 1,027 pairs, 64 wide) took 10.6–12.9 s in chunks of
#: 4 to 64 lines (21–336 MB tensors) and 4.0–4.8 s in chunks of 2 or 3 (the same scores to the bit; 2 threads,
#: idle machine; a cache or allocator effect, measured rather than modelled).  The scorer's validation pass after
#: every training epoch is one such matrix.
PAIR_CHUNK_FLOATS = 1 << 22


def score_matrix(scorer: PairScorer, lyrics: np.ndarray, lyrics_mask: np.ndarray, music: np.ndarray,
                 music_mask: np.ndarray, chunk: Optional[int] = None) -> np.ndarray:
    """(N_lyrics, N_music) scores, ``chunk`` lyrics lines at a time (memory: chunk × N_music × P × hidden;
    None: as many as :data:`PAIR_CHUNK_FLOATS` allows)."""
    if len(lyrics) == 0:
        return np.zeros((0, len(music)), np.float32)
    scorer.eval()
    with torch.no_grad():
        lm = torch.as_tensor(lyrics_mask)
        lyr = scorer.encode("lyrics", torch.as_tensor(lyrics), lm)
        mus = scorer.encode("music", torch.as_tensor(music), torch.as_tensor(music_mask))
        return score_encoded_matrix(scorer, lyr, lm, mus, chunk).numpy()


def score_encoded_matrix(scorer: PairScorer, lyrics: tuple[torch.Tensor, Optional[torch.Tensor]],
                         lyrics_mask: torch.Tensor, music: tuple[torch.Tensor, Optional[torch.Tensor]],
                         chunk: Optional[int] = None) -> torch.Tensor:
    """:func:`score_matrix` of lines and melodies already encoded by :meth:`PairScorer.encode` (each side once,
    however many chunks the pairs take)."""
    hidden, rep = lyrics
    if chunk is None:
        per_line = max(1, len(music[0]) * hidden.shape[1] * hidden.shape[2])
        chunk = max(1, PAIR_CHUNK_FLOATS // per_line)
    out = [scorer.score_encoded((hidden[i:i + chunk], None if rep is None else rep[i:i + chunk]),
                                lyrics_mask[i:i + chunk], music) for i in range(0, len(hidden), chunk)]
    return torch.cat(out) if out else torch.zeros((0, len(music[0])))


def ranks_from_scores(scores: np.ndarray, lower_is_better: bool = True) -> np.ndarray:
    """1-based rank of each row's partner under ``scores`` (ties count against it)."""
    s = np.asarray(scores)
    diag = np.diag(s)[:, None]
    return ((s <= diag) if lower_is_better else (s >= diag)).sum(1)


@dataclass
class TrainedScorer:
    """A trained :class:`PairScorer`, its config and its validation curve."""

    scorer: PairScorer
    config: PairScorerConfig
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    #: Training pairs read per epoch (the training split's, plus shifted windows).
    train_pairs: int = 0
    #: Wall-clock seconds the training took (its teacher's, if any, not included).
    seconds: float = 0.0


def cannot_train(features: Any) -> Optional[str]:
    """Why a pair scorer cannot be trained on ``features``, in a user's words, or None when it can.

    The scorer pairs per-position tokens, keeps its best validation epoch and has
    its weight chosen on the validation split, so it needs tokens and at least two
    training and two validation samples (:func:`train_pair_scorer` refuses fewer).
    """
    if features is None or not getattr(features, "has_sequences", False):
        return ("the features have no per-position tokens: extract them again "
                "(`ugaar features extract DATASET --force`) to train a lyrics scorer")
    splits = np.asarray(features.splits)
    train, val = int((splits == "train").sum()), int((splits == "val").sum())
    if train < 2 or val < 2:
        return (f"the lyrics scorer needs at least two training and two validation samples to train and "
                f"choose its weight; this dataset has {train} and {val}")
    return None


def training_rows(features: Any, modality: str, config: PairScorerConfig, train: np.ndarray,
                  progress: Optional[ProgressCallback] = None,
                  cancel: Optional[CancelToken] = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`structure_tokens` of every item of ``features`` for ``modality`` as ``config`` reads them,
    followed by the shifted windows (:attr:`PairScorerConfig.shifts`) of the consecutive ``train``
    items: the rows :func:`train_pair_scorer` trains on.  The whole tokens are read once (the lyrics'
    phonetic columns open the dataset)."""
    full, lengths, dim = scorer_inputs(features, modality, config.phonetics, config.pitch, progress, cancel)
    tokens, mask = tokens_of(full, lengths, modality, dim, config.positions, config.repetition)
    if not config.shifts:
        return tokens, mask
    pairs = consecutive_pairs(features.song_ids, train)
    parts = [shifted_windows(full, lengths, pairs, shift, config.positions) for shift in config.shifts]
    more, more_mask = tokens_of(np.concatenate([t for t, _ in parts]), np.concatenate([n for _, n in parts]),
                                modality, dim, config.positions, config.repetition)
    return np.concatenate([tokens, more]), np.concatenate([mask, more_mask])


def train_pair_scorer(features: Any, config: PairScorerConfig = PairScorerConfig(),
                      progress: Optional[ProgressCallback] = None,
                      cancel: Optional[CancelToken] = None, teacher: Optional[PairScorer] = None) -> TrainedScorer:
    """Train a pair scorer on a FeatureSet's training split; keep its best validation epoch.

    Parameters
    ----------
    features : FeatureSet
        With per-position tokens (aligned inputs) and train / val splits.
    config : PairScorerConfig
    progress, cancel
        One report per epoch; checked between batches.
    teacher : PairScorer, optional
        A trained scorer of the other melody side, for ``config.distill``.
    """
    if (teacher is None) != (not config.distill):
        raise ValueError("a teacher scorer is needed exactly when config.distill > 0")
    if teacher is not None and (teacher.config.phonetics, teacher.config.repetition) != (config.phonetics,
                                                                                          config.repetition):
        raise ValueError("the teacher must read the lyrics as the scorer does (phonetics, repetition)")
    t0 = time.perf_counter()
    torch.manual_seed(config.seed)
    splits = np.asarray(features.splits)
    train, val = np.nonzero(splits == "train")[0], np.nonzero(splits == "val")[0]
    if len(train) < 2 or len(val) < 2:
        raise ValueError("the pair scorer needs at least two training and two validation samples")
    start = len(splits)
    lx, lm = training_rows(features, "lyrics", config, train, progress, cancel)
    mx, mm = training_rows(features, config.modality, config, train, progress, cancel)
    train = np.concatenate([train, np.arange(start, len(lx))])
    teacher_music = (training_rows(features, teacher.config.modality, config, train[train < start], progress, cancel)
                     if teacher is not None else None)
    result = fit_pair_scorer((lx, lm), (mx, mm), train, val, config, progress, cancel, teacher, teacher_music)
    result.seconds = time.perf_counter() - t0
    return result


def fit_pair_scorer(lyrics: tuple[np.ndarray, np.ndarray], music: tuple[np.ndarray, np.ndarray], train: np.ndarray,
                    val: np.ndarray, config: PairScorerConfig, progress: Optional[ProgressCallback] = None,
                    cancel: Optional[CancelToken] = None, teacher: Optional[PairScorer] = None,
                    teacher_music: Optional[tuple[np.ndarray, np.ndarray]] = None) -> TrainedScorer:
    """The training loop of :func:`train_pair_scorer`, over token arrays already made.

    Parameters
    ----------
    lyrics, music : (tokens, mask)
        Structure tokens (:func:`tokens_of`) of the lines and of the ``config.modality`` melodies,
        row for row: the FeatureSet's items and any further training rows (shifted windows).
    train, val : int arrays
        Rows to train on, and rows whose lyrics→melody MedR chooses the epoch kept.
    teacher, teacher_music
        For ``config.distill``: the trained scorer of the other melody side and that side's
        tokens of the same rows.

    ``torch.manual_seed(config.seed)`` should precede it (:func:`train_pair_scorer` seeds
    before reading the tokens); the batches' order is drawn from ``config.seed`` here.
    """
    rng = np.random.default_rng(config.seed)
    (lx, lm), (mx, mm) = lyrics, music
    tx = tm = None
    if teacher is not None:  # the same rows' other melody side, as the teacher reads it
        tx, tm = (torch.as_tensor(a) for a in teacher_music)
        teacher.eval()
    extra = config.positions if config.repetition else 0

    def stats(x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = x[train][mask[train] > 0][:, : x.shape[2] - extra]
        return rows.mean(0), rows.std(0) + 1e-6

    scorer = PairScorer(lx.shape[2] - extra, mx.shape[2] - extra, config, stats(lx, lm), stats(mx, mm))
    opt = torch.optim.AdamW(scorer.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    batch = min(config.batch, len(train))
    # the weights' moving average is what is validated and kept (config.ema_epochs); torch's own EMA wrapper
    average = None
    if config.ema_epochs:
        decay = 0.5 ** (1.0 / (float(config.ema_epochs) * (len(train) // batch)))
        average = torch.optim.swa_utils.AveragedModel(
            scorer, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay))
    kept = scorer if average is None else average.module
    tensors = [torch.as_tensor(a) for a in (lx, lm, mx, mm)]
    result = TrainedScorer(scorer, config, train_pairs=len(train))
    best_state, best = None, np.inf
    for epoch in range(config.epochs):
        scorer.train()
        order = rng.permutation(train)
        losses = []
        for start in range(0, len(order) - batch + 1, batch):
            if cancel is not None:
                cancel.raise_if_set()
            b = torch.as_tensor(order[start:start + batch])
            s = scorer(tensors[0][b], tensors[1][b], tensors[2][b], tensors[3][b])
            target = torch.arange(len(b))
            loss = nn.functional.cross_entropy(s, target) + nn.functional.cross_entropy(s.T, target)
            if teacher is not None:
                with torch.no_grad():
                    t = teacher(tensors[0][b], tensors[1][b], tx[b], tm[b])
                kl = (nn.functional.kl_div(nn.functional.log_softmax(s, 1), nn.functional.log_softmax(t, 1),
                                           log_target=True, reduction="batchmean")
                      + nn.functional.kl_div(nn.functional.log_softmax(s.T, 1), nn.functional.log_softmax(t.T, 1),
                                             log_target=True, reduction="batchmean"))
                loss = loss + config.distill * kl
            opt.zero_grad()
            loss.backward()
            opt.step()
            if average is not None:
                average.update_parameters(scorer)
            losses.append(loss.item())
        ranks = ranks_from_scores(score_matrix(kept, lx[val], lm[val], mx[val], mm[val]), lower_is_better=False)
        medr = float(np.median(ranks)) / len(val)
        result.history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_medr_n": medr,
                               "val_r10": 100.0 * float(np.mean(ranks <= 10))})
        if medr < best:
            best, result.best_epoch = medr, epoch
            best_state = {k: v.detach().clone() for k, v in kept.state_dict().items()}
        report(progress, "pair scorer", epoch + 1, config.epochs, f"val MedR/N {medr:.3f}")
    scorer.load_state_dict(best_state)
    scorer.eval()
    return result


def train_side_scorers(features: Any, sides: Any, base: PairScorerConfig,
                       progress: Optional[ProgressCallback] = None,
                       cancel: Optional[CancelToken] = None) -> dict[str, TrainedScorer]:
    """One :func:`train_pair_scorer` per melody side in ``sides``, each ``base`` with its ``modality``.

    ``base.distill`` is the audio side's: the sheet scorer is trained first and is its teacher
    (trained for that alone, and not returned, when ``sides`` has no sheet); the sheet scorer
    is trained without it.
    """
    trained: dict[str, TrainedScorer] = {}
    teacher = None
    for side in sorted(sides, key=lambda side: side != "sheet"):  # the sheet scorer first: the audio's teacher
        teach = side == "audio" and bool(base.distill)
        if teach:
            teacher = (trained["sheet"] if "sheet" in trained else train_pair_scorer(
                features, replace(base, modality="sheet", distill=0.0), progress, cancel)).scorer
        cfg = replace(base, modality=side, distill=base.distill if teach else 0.0)
        trained[side] = train_pair_scorer(features, cfg, progress, cancel, teacher if teach else None)
    return trained


def standardise_rows(scores: np.ndarray) -> np.ndarray:
    """Each query row to zero mean and unit spread (float64; a constant row to zeros), so that scores on
    different scales (a distance and a pair score, or two scorers' pair scores) can be added."""
    x = np.asarray(scores, np.float64)
    std = x.std(1, keepdims=True)
    return (x - x.mean(1, keepdims=True)) / np.where(std > 0, std, 1.0)


def combined_scores(distances: np.ndarray, pair_scores: np.ndarray, weight: float) -> np.ndarray:
    """Lower-is-better scores: the learned distance and the pair score, each standardised per query row
    (:func:`standardise_rows`).

    ``weight`` = 0: the learned space alone; large: the pair scorer alone.
    """
    return standardise_rows(distances) - weight * standardise_rows(pair_scores)



#: The file a run's lyrics re-ranker is kept in (``ugaar lyrics-scorer RUN``).
RERANKER_FILE = "lyrics_scorer.pt"
#: Weights tried on the validation split to mix the pair score with the learned distance.
WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0, 1e6)


def choose_weight(distances: np.ndarray, pair_scores: np.ndarray) -> tuple[float, dict[float, float]]:
    """The :data:`WEIGHTS` entry with the best mean MedR/N over both directions (validation rows and columns)."""
    n = len(distances)
    medr = {}
    for w in WEIGHTS:
        both = (ranks_from_scores(combined_scores(distances, pair_scores, w)),
                ranks_from_scores(combined_scores(distances.T, pair_scores.T, w)))
        medr[w] = float(np.mean([np.median(r) for r in both])) / n
    return min(WEIGHTS, key=lambda w: (medr[w], w)), medr


class LyricsReranker:
    """A run's lyrics ↔ sheet / audio results scored by its pair scorers, mixed with the learned distance.

    Parameters
    ----------
    scorers : dict
        Melody side (``sheet``, ``audio``) → trained :class:`PairScorer`.
    weights : dict
        Melody side → weight of the pair score (:func:`combined_scores`), chosen on validation.
    library : dict
        Modality → ``(tokens, mask)`` structure tokens of the library's items, in ``sample_ids`` order.
    sample_ids : sequence of str
    info : dict
        What was measured when it was trained (per side: best epoch, validation curve and MedR/N by weight).
    """

    def __init__(self, scorers: dict[str, PairScorer], weights: dict[str, float],
                 library: dict[str, tuple[np.ndarray, np.ndarray]], sample_ids, info: Optional[dict] = None) -> None:
        self.scorers, self.weights, self.library = scorers, weights, library
        self.sample_ids = [str(s) for s in sample_ids]
        self.row = {s: i for i, s in enumerate(self.sample_ids)}
        self.info = info or {}
        #: (scorer side, library modality) → :meth:`PairScorer.encode` of the library, on first use.
        self._encoded_library: dict[tuple[str, str], tuple[torch.Tensor, Optional[torch.Tensor]]] = {}

    @staticmethod
    def applies(source: str, target: str, sides: Any = ("sheet", "audio")) -> bool:
        """Whether ``source`` → ``target`` is a lyrics ↔ melody pair."""
        return (source == "lyrics" and target in sides) or (target == "lyrics" and source in sides)

    def covers(self, source: str, target: str) -> bool:
        return self.applies(source, target, tuple(self.scorers))

    # -- training and storage ----------------------------------------------------------
    @classmethod
    def train(cls, run: Any, features: Any, sides: Any = ("sheet", "audio"), epochs: int = EPOCHS_DEFAULT,
              progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
              repetition: bool = REPETITION_DEFAULT, shifts: tuple[int, ...] = SHIFTS_DEFAULT,
              context: int = CONTEXT_DEFAULT, dropout: float = DROPOUT_DEFAULT,
              batch: int = BATCH_DEFAULT, phonetics: bool = PHONETICS_DEFAULT,
              distill: float = DISTILL_DEFAULT, ema_epochs: float = EMA_EPOCHS_DEFAULT,
              pitch: bool = PITCH_DEFAULT) -> "LyricsReranker":
        """Train one pair scorer per melody side on ``features`` (the run's), and choose each one's
        weight against the run's learned distances on the validation split.  ``repetition``,
        ``shifts``, ``context``, ``dropout``, ``batch``, ``phonetics``, ``ema_epochs``, ``pitch``: :class:`PairScorerConfig`'s,
        for every side; ``distill``: the audio side's (the sheet scorer is trained first and is its teacher;
        trained for that alone, and not kept, when ``sides`` has no sheet)."""
        from model.search.evaluation import distance_matrix

        method, splits = run.method(), np.asarray(features.splits)
        val = np.nonzero(splits == "val")[0]
        part = features.split("val")
        library = library_tokens(features, sides, repetition, phonetics, pitch, progress, cancel)
        lx, lm = library["lyrics"]
        scorers, weights, info = {}, {}, {}
        base = PairScorerConfig(epochs=epochs, seed=run.config.seed, repetition=repetition, shifts=tuple(shifts),
                                context=int(context), dropout=float(dropout), batch=int(batch),
                                phonetics=bool(phonetics), distill=float(distill), ema_epochs=float(ema_epochs),
                                pitch=bool(pitch))
        for side, trained in train_side_scorers(features, sides, base, progress, cancel).items():
            mx, mm = library[side]
            lyr = method.embed_modality("lyrics", part.input_of("lyrics", "aligned"), partner=side)
            mus = method.embed_modality(side, part.input_of(side, "aligned"), partner="lyrics")
            pair = score_matrix(trained.scorer, lx[val], lm[val], mx[val], mm[val])
            weights[side], by_weight = choose_weight(distance_matrix(lyr, mus, run.config.metric), pair)
            scorers[side] = trained.scorer
            info[side] = {"config": trained.config.to_dict(), "best_epoch": trained.best_epoch, "history": trained.history,
                          "val_medr_n_by_weight": {str(k): v for k, v in by_weight.items()}}
        return cls(scorers, weights, library, features.sample_ids, info)

    def save(self, run_dir: Any) -> None:
        """Write ``RUN/lyrics_scorer.pt`` atomically (scorers, weights, what was measured)."""
        from pathlib import Path

        from model.atomic import write_torch

        state = {"version": 1, "weights": self.weights, "info": self.info,
                 "scorers": {side: {"config": s.config.to_dict(), "dims": (s.lyrics_in.in_features // 3,
                                                                          s.music_in.in_features // 3),
                                    "state": s.state_dict()} for side, s in self.scorers.items()}}
        write_torch(Path(run_dir) / RERANKER_FILE, state)

    @classmethod
    def load(cls, run_dir: Any, features: Any) -> Optional["LyricsReranker"]:
        """The run's saved re-ranker over ``features``' items, or None when the run has none.

        Raises ``CorruptFileError`` naming the file when it cannot be read."""
        from pathlib import Path

        from model.errors import CorruptFileError

        path = Path(run_dir) / RERANKER_FILE
        if not path.is_file():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
            scorers = {}
            for side, entry in state["scorers"].items():
                cfg = PairScorerConfig.from_dict(entry["config"])
                scorer = PairScorer(*entry["dims"], cfg)
                scorer.load_state_dict(entry["state"])
                scorers[side] = scorer.eval()
            weights = {k: float(v) for k, v in state["weights"].items()}
        except Exception as exc:  # a damaged or foreign file: say which, train it again
            raise CorruptFileError(str(path), f"not a lyrics scorer ({type(exc).__name__})",
                                   f"train it again: ugaar lyrics-scorer {run_dir}") from exc
        from model.features.tokens.onset_pitch import N_ONSET_PITCH
        from model.features.tokens.phonetics import N_PHONETIC
        from model.features.tokens.sequences import STRUCTURE_DIMS

        dims = features.meta.get("structure_dims") or STRUCTURE_DIMS
        for side, entry in state["scorers"].items():
            # features extracted again with another token layout: the scorer would fail at the first query
            cfg = PairScorerConfig.from_dict(entry["config"])
            phonetic = N_PHONETIC if cfg.phonetics else 0
            pitched = N_ONSET_PITCH if cfg.pitch and side == "audio" else 0
            want = (int(dims["lyrics"]) + phonetic, int(dims[side]) + pitched)
            if tuple(int(d) for d in entry["dims"]) != want:
                raise CorruptFileError(str(path), f"its {side} scorer reads {tuple(entry['dims'])} structure "
                                       f"columns (lyrics, {side}) but the run's features have {want}",
                                       f"train it again: ugaar lyrics-scorer {run_dir}")
        library = library_tokens(features, scorers, any(sc.config.repetition for sc in scorers.values()),
                                 any(sc.config.phonetics for sc in scorers.values()),
                                 any(sc.config.pitch for side, sc in scorers.items() if side == "audio"))
        return cls(scorers, weights, library, features.sample_ids, state.get("info"))

    # -- queries -------------------------------------------------------------------------
    def pair_scores(self, source: str, target: str, query: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """(N,) pair scores of every library ``target`` item against one ``source`` query's tokens."""
        side = target if source == "lyrics" else source
        scorer = self.scorers[side]
        scorer.eval()
        qx, qm = (torch.as_tensor(np.asarray(a, np.float32)[None]) for a in query)
        with torch.no_grad():
            if source == "lyrics":
                query_lyrics = scorer.encode("lyrics", qx, qm)
                return score_encoded_matrix(scorer, query_lyrics, qm, self._encoded(side, side)).numpy()[0]
            library_mask = torch.as_tensor(self.library["lyrics"][1])
            return score_encoded_matrix(scorer, self._encoded(side, "lyrics"), library_mask,
                                        scorer.encode("music", qx, qm)).numpy()[:, 0]

    def _encoded(self, side: str, modality: str) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The library's ``modality`` items encoded by ``side``'s scorer, computed on first use and kept:
        a query then pairs its own encoding with them (on LMD-full with the phrase context, 0.1 s a
        query instead of 0.7–0.8 s that encoding the library again each time took)."""
        key = (side, modality)
        if key not in self._encoded_library:
            x, mask = self.library[modality]
            scorer = self.scorers[side]
            scorer.eval()
            with torch.no_grad():
                self._encoded_library[key] = scorer.encode("lyrics" if modality == "lyrics" else "music",
                                                           torch.as_tensor(x), torch.as_tensor(mask))
        return self._encoded_library[key]

    @property
    def repetition(self) -> bool:
        """Whether the scorers read self-similarity (:attr:`PairScorerConfig.repetition`)."""
        return any(sc.config.repetition for sc in self.scorers.values())

    @property
    def phonetics(self) -> bool:
        """Whether the scorers read the syllables' phonetic columns (:attr:`PairScorerConfig.phonetics`)."""
        return any(sc.config.phonetics for sc in self.scorers.values())

    @property
    def pitch(self) -> bool:
        """Whether the audio scorer reads the onsets' pitch columns (:attr:`PairScorerConfig.pitch`)."""
        return "audio" in self.scorers and self.scorers["audio"].config.pitch

    def query_tokens(self, modality: str, sequence: Any) -> tuple[np.ndarray, np.ndarray]:
        """A new item's tokens as this re-ranker's scorers read them (:func:`query_tokens`): a typed
        line's (``lyrics``), or a dropped MIDI / KAR file's rendering (``sheet``, ``audio``)."""
        return query_tokens(sequence, modality, repetition=self.repetition, phonetics=self.phonetics,
                            pitch=self.pitch)

    def library_query(self, source: str, sample_id: str) -> tuple[np.ndarray, np.ndarray]:
        """A library item's structure tokens, as a query."""
        x, m = self.library[source]
        i = self.row[str(sample_id)]
        return x[i], m[i]

    def query_index(self, index: Any, vector: np.ndarray, source: str, target: str, k: int,
                    query: tuple[np.ndarray, np.ndarray]) -> list[tuple[str, float]]:
        """``index.query`` for a lyrics ↔ melody pair, every library item scored by both ways.

        ``vector`` is the query in the run's space, ``query`` its structure tokens
        (:meth:`library_query` or :meth:`query_tokens`)."""
        d = index.distances(vector, target, source).detach().cpu().numpy()
        order = np.array([index.row(s) for s in self.sample_ids])
        return self.rerank(source, target, d[order], query, k)

    def rerank(self, source: str, target: str, distances: np.ndarray, query: tuple[np.ndarray, np.ndarray],
               k: int) -> list[tuple[str, float]]:
        """The top ``k`` of the whole library by learned distance (``distances``, (N,) in
        ``sample_ids`` order) and pair score together; scores are lower-is-better."""
        side = target if source == "lyrics" else source
        pair = self.pair_scores(source, target, query)
        score = combined_scores(np.asarray(distances)[None], pair[None], self.weights[side])[0]
        order = np.argsort(score, kind="stable")[:k]
        return [(self.sample_ids[i], float(score[i])) for i in order]


def query_tokens(sequence: Any, modality: str = "lyrics", positions: int = 20, repetition: bool = False,
                 phonetics: bool = False, pitch: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Structure tokens of a new item: a typed lyrics line (``Embedder.lyrics_sequence``'s
    ``SequenceInput``) or one modality of a dropped MIDI / KAR file (``Embedder.midi_file_sequence``),
    with its :func:`self_similarity` rows when ``repetition``, for lyrics its phonetic columns
    (``sequence.phonetics``) when ``phonetics``, and for audio its onsets' pitch columns
    (``sequence.onset_pitch``) when ``pitch``."""
    from model.features.tokens.sequences import STRUCTURE_DIMS

    full, dim = np.asarray(sequence.tokens[:1], np.float32), STRUCTURE_DIMS[modality]
    wanted = {"lyrics": ("phonetics", phonetics, "the syllables' phonetic columns",
                         "Embedder.lyrics_sequence or lyrics_syllables_sequence"),
              "audio": ("onset_pitch", pitch, "the onsets' pitch columns", "Embedder.audio_sequence")}.get(modality)
    if wanted is not None and wanted[1]:
        extra = getattr(sequence, wanted[0], None)
        if extra is None:
            raise ValueError(f"this lyrics scorer reads {wanted[2]}, and the query has none "
                             f"(make it with {wanted[3]})")
        full = np.concatenate([full, np.asarray(extra[:1], np.float32)], -1)
        dim += extra.shape[2]
    tokens, mask = tokens_of(full, np.asarray(sequence.lengths[:1]), modality, dim, positions, repetition)
    return tokens[0], mask[0]
