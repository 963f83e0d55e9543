"""The one typed configuration of the feature extractors.

``FeatureConfig`` holds every parameter that changes the extracted features:
the VGGish front end, the two CNNs, the audio–sheet pre-training and the
skip-gram lyrics models.  It is saved as ``config.json`` next to every set of
trained encoders and hashed into the feature-cache key.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from model.validate import from_known_fields

from .augmentation.config import AugmentConfig

#: Fields that only affect how fast things run, never the numbers produced.
_RUNTIME_ONLY = ("extract_batch",)
#: Fields that only cut items into sequences (feature extraction and queries), never the encoders'
#: training: an extraction may set them over the encoders' own config.json
#: (``ugaar features extract --onset-delta``, :meth:`FeatureConfig.with_sequence_settings`).
#: Onset detectors of the audio tokens (``model.features.tokens.sequences.detect_onsets``).
ONSET_METHODS = ("flux", "superflux", "learned")
SEQUENCE_FIELDS = ("onset_picking", "onset_delta", "onset_window", "onset_method", "sounding_db",
                   "sequence_max_len")
#: How the flux picking is set (``FeatureConfig.onset_picking``).
ONSET_PICKINGS = ("auto", "fixed")
#: The flux pickings (threshold, rows each side) that ``onset_picking="auto"`` chooses among, the default first
#: (it wins ties): LMD-full's choice, the earlier noisy-audio setting, and the first default.
ONSET_PICKING_CANDIDATES = ((0.015, 1), (0.02, 1), (0.02, 3), (0.05, 3))
#: Fields added after encoders were first trained with this class: left out of
#: the digest while they hold their neutral value, so earlier digests (encoder
#: folders, feature caches) stay valid.
_OMIT_IF = {"aux_item_weight": 0.0, "init_encoders": None, "sequence_max_len": 32, "onset_delta": 0.05,
            "onset_window": 3, "onset_picking": "fixed", "onset_method": "flux", "sounding_db": 20.0,
            "augment": AugmentConfig().to_dict()}


@dataclass
class FeatureConfig:
    """Parameters of the audio, sheet and lyrics feature extractors.

    Parameters
    ----------
    sample_rate : int
        Audio rate the front end works at (VGGish: 16 kHz).
    stft_window_s, stft_hop_s : float
        STFT window and hop in seconds (VGGish: 25 ms, 10 ms).
    n_mels, mel_fmin, mel_fmax : int, float, float
        Mel filter bank (VGGish: 64 bands, 125–7500 Hz, HTK mel scale).
    log_offset : float
        ``log(mel + log_offset)`` (VGGish: 0.01).
    patch_frames, patch_hop_frames : int
        Frames per audio patch and hop between patches (VGGish: 96, 96 →
        0.96 s non-overlapping patches of 96×64).
    audio_time_pool : int
        Fixed average pooling over time applied to each 96×64 patch as the
        audio CNN's first layer (4 → 24×64, 40 ms per row).  Keeps the
        CNN cheap enough for 2 CPU cores; a melody note is ≥ 40 ms.
    sheet_height : int
        Rows of the staff band the sheet CNN sees (pixels after scaling).
    sheet_staff_space : float
        The image is scaled so one staff space is this many pixels (5: the
        band of 48 rows spans 9.6 staff spaces, the staff ± 2.8 spaces).
    sheet_default_space : float
        Staff space assumed when no staff lines are found (the dataset
        renderer engraves at 10 px per space).
    sheet_window, sheet_hop : int
        Width and hop (pixels, after resizing) of the horizontal windows
        the sheet CNN embeds.
    audio_widths, sheet_widths : tuple of int
        Channels of the VGG-style blocks (conv 3×3 → BN → ReLU → max-pool 2).
    strided_stem : bool
        First VGG block of both CNNs: a stride-2 convolution instead of
        convolution + max-pool (same output size, ~4× less work there).
    embed_dim : int
        Output per patch / window and per sample (128, as in the paper).
    pretrain_epochs, pretrain_lr, pretrain_batch, pretrain_patience : int, float, int, int
        Audio–sheet pre-training: maximum epochs, Adam learning rate, samples
        per batch, epochs without validation improvement before stopping.
    weight_decay : float
        Adam weight decay.
    loss : str
        ``"infonce"`` (symmetric CLIP-style contrastive loss) or
        ``"ranking"`` (pairwise hinge ranking loss of Dorfer et al.).
    temperature : float
        InfoNCE temperature on cosine similarities.
    aux_pitch_weight : float
        Weight of an auxiliary loss during pre-training: a linear head shared
        by both branches predicts the sample's pitch histogram (its 20 notes,
        piano range) from each branch's mean embedding (soft-target cross
        entropy).  0 switches it off (pure contrastive, as method.md).
    aux_item_weight : float
        Weight of a second auxiliary loss: the same head predicts, from each
        audio patch's and each sheet window's own 128-d vector, which
        pitches it shows (multi-hot, binary cross entropy; labels from the
        dataset's notes and note-head positions, ``model.features.learned.labels``).
        0 (default) switches it off.
    init_encoders : str or None
        Warm start: initialise both CNNs from the ``audio_sheet.pt`` of this
        encoders folder and take its skip-gram models as they are, then
        pre-train again for ``pretrain_epochs`` (a second cosine cycle).
    margin : float
        Ranking-loss margin.
    skipgram_dim, skipgram_window, skipgram_min_count, skipgram_epochs : int
        gensim ``Word2Vec(sg=1)`` parameters (both the syllable and the word
        model).  The published encoders are 10-d, window 5.
    use_published_skipgram : str or None
        Folder holding Yu et al.'s published skip-gram encoders
        (``syllEncoding_skipgram_*.bin``, ``wordLevelEncoder_skipgram_*.bin``)
        to use instead of training.  These are gensim pickles: give only a
        trusted path (the project's ``../shared/data/skipgram-yu2019``).
    sequence_max_len : int
        Positions kept per item in the per-position sequences
        (``model.features.tokens.sequences``): syllables, audio onsets, sheet notes.
    onset_delta : float
        Peak-picking threshold on the normalised onset envelope (audio onsets):
        a 40 ms row is an onset when its flux exceeds the mean flux around it
        (``onset_window``) by this much.
    onset_window : int
        Rows on each side of a candidate onset that the mean flux is taken
        over (``librosa.util.peak_pick``'s ``pre_avg`` / ``post_avg``).  With 3
        (the first default), a note 3–4 rows after the last one is measured
        against that note's own rise and missed; with 1 and a threshold of
        0.015, 93 % of LMD-full's validation items get exactly their notes'
        onsets instead of 74 % (docs/features.md, "Onset picking").
    onset_picking : str
        ``auto`` (the default): a dataset's extraction chooses ``onset_delta``
        and ``onset_window`` among :data:`ONSET_PICKING_CANDIDATES` as the pair
        that gives the most of its training and validation items exactly their
        notes' onsets (``model.features.tokens.onset_picking``), and stores the
        chosen pair in the features' ``meta["config"]``, which queries read
        (the digest leaves the pair out while ``auto``, so that saved config
        names the same cache).  ``fixed``: the two fields as they are.  Only
        the flux methods pick; ``learned`` has its own.
    onset_method : str
        How audio onsets are found (:data:`ONSET_METHODS`): ``flux``, the rise
        of loudness per mel band; ``superflux``, the same with vibrato
        suppression; ``learned``, a small network trained on the dataset's
        notes rendered in training timbres, which finds the soft onsets of
        strings, flutes and voices (``model.features.learned.onset_net``; saved in
        the encoders folder).  ``onset_delta`` applies to the first two.
    sounding_db : float
        A 40 ms audio row "sounds" when its energy is within this many dB of
        the sample's loudest row (the share of an inter-onset interval that
        sounds tells a held note from a note followed by a rest).
    augment : AugmentConfig
        Timbre augmentation of the audio branch in pre-training
        (``model.features.augmentation.config``); off by default.
    seed : int
        Seed of every random choice (initialisation, batch order, skip-gram).
    extract_batch : int
        Patches per forward pass at extraction (speed only; not hashed).
    """

    # VGGish front end
    sample_rate: int = 16000
    stft_window_s: float = 0.025
    stft_hop_s: float = 0.010
    n_mels: int = 64
    mel_fmin: float = 125.0
    mel_fmax: float = 7500.0
    log_offset: float = 0.01
    patch_frames: int = 96
    patch_hop_frames: int = 96
    audio_time_pool: int = 4
    # sheet front end
    sheet_height: int = 48
    sheet_staff_space: float = 5.0
    sheet_default_space: float = 10.0
    sheet_window: int = 48
    sheet_hop: int = 48
    # CNNs
    audio_widths: tuple[int, ...] = (8, 16, 32, 64)
    sheet_widths: tuple[int, ...] = (8, 16, 32, 64)
    strided_stem: bool = True
    embed_dim: int = 128
    # audio–sheet pre-training
    pretrain_epochs: int = 20
    pretrain_lr: float = 3e-3
    pretrain_batch: int = 64
    pretrain_patience: int = 5
    weight_decay: float = 1e-4
    loss: str = "infonce"
    temperature: float = 0.07
    aux_pitch_weight: float = 1.0
    aux_item_weight: float = 0.0
    margin: float = 0.2
    # lyrics
    skipgram_dim: int = 10
    skipgram_window: int = 5
    skipgram_min_count: int = 1
    skipgram_epochs: int = 50
    use_published_skipgram: str | None = None
    init_encoders: str | None = None
    sequence_max_len: int = 32
    onset_delta: float = 0.015
    onset_window: int = 1
    onset_picking: str = "auto"
    onset_method: str = "flux"
    sounding_db: float = 20.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0
    extract_batch: int = 1024

    def __post_init__(self) -> None:
        self.audio_widths = tuple(int(w) for w in self.audio_widths)
        self.sheet_widths = tuple(int(w) for w in self.sheet_widths)
        if isinstance(self.augment, dict):  # from config.json
            self.augment = AugmentConfig.from_dict(self.augment)
        if self.loss not in ("infonce", "ranking"):
            raise ValueError(f"loss must be 'infonce' or 'ranking', got {self.loss!r}")
        if self.patch_frames % self.audio_time_pool:
            raise ValueError("patch_frames must be a multiple of audio_time_pool")
        if not 0.0 <= self.onset_delta < 1.0:  # a threshold on the flux normalised to [0, 1]
            raise ValueError(f"onset_delta must be in [0, 1), got {self.onset_delta}")
        if int(self.onset_window) != self.onset_window or self.onset_window < 1:
            raise ValueError(f"onset_window must be a whole number of rows ≥ 1, got {self.onset_window}")
        self.onset_window = int(self.onset_window)
        if self.onset_picking not in ONSET_PICKINGS:
            raise ValueError(f"onset_picking must be one of {', '.join(ONSET_PICKINGS)}, got {self.onset_picking!r}")
        if self.onset_method not in ONSET_METHODS:
            raise ValueError(f"onset_method must be one of {', '.join(ONSET_METHODS)}, got {self.onset_method!r}")

    # -- serialisation -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["audio_widths"] = list(self.audio_widths)
        data["sheet_widths"] = list(self.sheet_widths)
        data["augment"] = self.augment.to_dict()
        return data

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON text; also written atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=1, sort_keys=True)
        if path is not None:
            from model.atomic import write_text
            write_text(path, text)
        return text

    def with_sequence_settings(self, settings: Optional[Mapping[str, Any]]) -> "FeatureConfig":
        """A copy with the :data:`SEQUENCE_FIELDS` that ``settings`` holds (a dict, or another config's
        ``to_dict()``, such as a FeatureSet's ``meta["config"]``); ``self`` when it holds none."""
        chosen = {k: settings[k] for k in SEQUENCE_FIELDS if settings and k in settings}
        if ("onset_delta" in chosen or "onset_window" in chosen) and "onset_picking" not in chosen:
            # a threshold or window given (``--onset-delta``, or a config saved before ``onset_picking``
            # existed) is the picking: an extraction must not choose another
            chosen["onset_picking"] = "fixed"
        return dataclasses.replace(self, **chosen) if chosen else self

    def encoders_digest(self) -> str:
        """:meth:`digest` of what trains the encoders: the :data:`SEQUENCE_FIELDS` (which only cut items
        into tokens) at their first values, so the same encoders are found whatever the sequence settings,
        and encoders trained before a sequence default changed keep their folder."""
        first = {name: _OMIT_IF[name] for name in SEQUENCE_FIELDS}
        return dataclasses.replace(self, **first).digest()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FeatureConfig":
        data = dict(data)
        for name in ("onset_window", "onset_picking"):
            if "onset_delta" in data and name not in data:
                # a whole config saved before the field existed (an encoders' config.json, a FeatureSet's
                # meta): its onsets were picked at its threshold over 3 rows, and its features and queries
                # must stay so
                data[name] = _OMIT_IF[name]
        return from_known_fields(cls, data)

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> "FeatureConfig":
        """From JSON text or from a ``config.json`` path."""
        text = str(text_or_path)
        if isinstance(text_or_path, Path) or not text.lstrip().startswith("{"):
            text = Path(text_or_path).read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text))

    # -- hashing -------------------------------------------------------
    def digest(self, fields: tuple[str, ...] | None = None) -> str:
        """Short SHA-256 of the fields that change the numbers."""
        data = self.to_dict()
        for name in _RUNTIME_ONLY:
            data.pop(name, None)
        for name, neutral in _OMIT_IF.items():
            if data.get(name, neutral) == neutral:
                data.pop(name, None)
        if data.get("onset_picking") == "auto":
            # the dataset decides them (and the features' meta records which), so the saved config of an
            # "auto" extraction names the same cache as the config that asked for it
            data.pop("onset_delta", None)
            data.pop("onset_window", None)
        if fields is not None:
            data = {k: data[k] for k in fields}
        blob = json.dumps(data, sort_keys=True).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:16]
