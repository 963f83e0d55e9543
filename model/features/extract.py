"""Extract (and cache) a dataset's audio, sheet and lyrics features.

``extract_features(dataset)``:

1. resolves the encoders: those in ``encoders_dir`` when it holds trained
   ones (how a run is evaluated on another dataset with its own
   extractors), otherwise trains them (audio–sheet pre-training on the
   training split, skip-gram models on the training songs' lyrics) into
   ``encoders_dir`` or ``DATASET/encoders/<config>-<dataset>``;
2. computes the front-end inputs of every sample once (log-mel patches,
   staff-band windows; cached as ``DATASET/features/inputs/<key>.npz`` so an
   interrupted run or a second set of encoders does not redo them);
3. embeds every sample, pooled (the paper's features) and per position
   (``model.features.tokens.sequences``: syllables, audio onsets, sheet notes),
   and writes ``DATASET/features/<key>.npz`` with
   ``key = hash(dataset content hash, extractor config, checkpoint hash)``;
   a later call with the same three returns the cached ``FeatureSet``.
"""
from __future__ import annotations

import hashlib
import json
import time
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from model.atomic import atomic_path, write_json, write_torch
from model.feature_set import FeatureSet
from model.progress import CancelToken, ProgressCallback, report

from .config import FeatureConfig
from .frontend import audio_patches, load_grey, pool_time, sheet_windows
from .learned.encoders import AudioSheetModel, build_model
from .learned.labels import dataset_item_labels
from .learned.lyrics import LyricsEncoder, train_lyrics_encoder
from .learned.metrics import audio_sheet_figures
from .learned.pretrain import PretrainResult, Ragged, embed_pairs, pitch_histograms, pretrain

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "audio_sheet.pt"
REPORT_NAME = "pretrain.json"
FRONTEND_FIELDS = ("sample_rate", "stft_window_s", "stft_hop_s", "n_mels", "mel_fmin", "mel_fmax",
                   "log_offset", "patch_frames", "patch_hop_frames", "audio_time_pool", "sheet_height",
                   "sheet_staff_space", "sheet_default_space", "sheet_window", "sheet_hop")


# -- front end over a dataset -------------------------------------------------

def audio_input(wave: np.ndarray, sample_rate: int, config: FeatureConfig) -> np.ndarray:
    """What the audio CNN sees: time-pooled VGGish patches, float16 ``(P, 96/pool, 64)``."""
    return pool_time(audio_patches(wave, sample_rate, config), config.audio_time_pool).astype(np.float16)


def sheet_input(png: str | Path, config: FeatureConfig) -> np.ndarray:
    """What the sheet CNN sees: staff-band windows, float16 ``(P, H, W)``."""
    return sheet_windows(load_grey(png), config).astype(np.float16)


def compute_inputs(dataset: Any, sample_ids: Sequence[str], config: FeatureConfig, workers: int = 2,
                   progress: Optional[ProgressCallback] = None,
                   cancel: Optional[CancelToken] = None) -> tuple[Ragged, Ragged]:
    """Front-end inputs of ``sample_ids`` (audio, sheet), in that order.

    Uses ``workers`` threads (numpy, torch's FFT, PIL and the FLAC decoder
    release the GIL).
    """
    def one(sample_id: str) -> tuple[np.ndarray, np.ndarray]:
        wave, sr = dataset.load_audio(sample_id)
        return audio_input(wave, sr, config), sheet_input(dataset.sheet_path(sample_id), config)

    audio: list[np.ndarray] = []
    sheet: list[np.ndarray] = []
    total = len(sample_ids)
    chunk = 256
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, total, chunk):
            for a, s in pool.map(one, sample_ids[start:start + chunk]):
                audio.append(a)
                sheet.append(s)
            report(progress, "frontend", len(audio), total, "log-mel patches and staff windows")
            if cancel is not None:
                cancel.raise_if_set()
    a_shape = (config.patch_frames // config.audio_time_pool, config.n_mels)
    return (Ragged.from_list(audio, a_shape),
            Ragged.from_list(sheet, (config.sheet_height, config.sheet_window)))


def _inputs_key(dataset_hash: str, config: FeatureConfig) -> str:
    return hashlib.sha256(f"{dataset_hash}|{config.digest(FRONTEND_FIELDS)}".encode()).hexdigest()[:16]


def inputs_cache_path(dataset: Any, config: FeatureConfig) -> Path:
    """Where the front-end inputs of ``dataset`` under ``config`` are cached."""
    return Path(dataset.root) / "features" / "inputs" / f"{_inputs_key(dataset.content_hash, config)}.npz"


def load_cached_inputs(path: str | Path, sample_ids: Sequence[str]) -> Optional[tuple[Ragged, Ragged]]:
    """Front-end inputs cached at ``path`` for exactly ``sample_ids`` (None: missing, damaged or foreign)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if list(data["sample_ids"]) != list(sample_ids):
                return None
            return (Ragged(data["audio"], data["audio_offsets"]), Ragged(data["sheet"], data["sheet_offsets"]))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):
        return None


def load_or_compute_inputs(dataset: Any, config: FeatureConfig, workers: int = 2,
                           progress: Optional[ProgressCallback] = None,
                           cancel: Optional[CancelToken] = None) -> tuple[Ragged, Ragged]:
    """Inputs of every sample of ``dataset`` (manifest order), cached on disk."""
    path = inputs_cache_path(dataset, config)
    ids = [s.sample_id for s in dataset.samples]
    if path.exists():
        cached = load_cached_inputs(path, ids)
        if cached is not None:
            report(progress, "frontend", len(ids), len(ids), "front-end inputs from cache")
            return cached
        # a truncated or foreign cache (an interrupted copy): never trusted, rebuilt below
        report(progress, "frontend", 0, len(ids), f"front-end inputs cache {path} is damaged; recomputing")
    audio, sheet = compute_inputs(dataset, ids, config, workers, progress, cancel)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, sample_ids=np.array(ids, dtype=str), audio=audio.data, audio_offsets=audio.offsets,
                 sheet=sheet.data, sheet_offsets=sheet.offsets)
    return audio, sheet


# -- encoders folder ----------------------------------------------------------

def has_trained_encoders(folder: str | Path | None) -> bool:
    """True when ``folder`` holds a config, the CNN weights and both skip-gram models."""
    if folder is None:
        return False
    from .learned.lyrics import SYLLABLE_FILE, WORD_FILE
    folder = Path(folder)
    return all((folder / name).is_file() for name in (CONFIG_NAME, WEIGHTS_NAME, SYLLABLE_FILE, WORD_FILE))


def state_dict_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names, shapes and values (file-format independent)."""
    h = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(str(tensor.dtype).encode())
        h.update(tensor.numpy().tobytes())
    return h.hexdigest()


@dataclass
class Encoders:
    """Trained extractors loaded from an encoders folder."""

    folder: Path
    config: FeatureConfig
    model: AudioSheetModel
    lyrics: LyricsEncoder
    checkpoint_hash: str
    report: dict[str, Any]
    #: The learned onset detector (``onset_net.pt``), when the folder has one.
    onset_net: Any = None

    def sequence_hash(self, config: FeatureConfig) -> str:
        """What the features' cache key hashes of the networks: the encoders, and the onset
        detector when ``config`` cuts audio with it."""
        if config.onset_method != "learned":
            return self.checkpoint_hash
        from .learned.onset_net import net_digest
        return f"{self.checkpoint_hash}-onsets-{net_digest(self.onset_net)}"


def save_audio_sheet(model: AudioSheetModel, folder: str | Path) -> None:
    """State dicts only (``{"audio": ..., "sheet": ...}``), written atomically."""
    write_torch(Path(folder) / WEIGHTS_NAME, {"audio": model.audio.state_dict(), "sheet": model.sheet.state_dict()})


def load_encoders(folder: str | Path, device: str = "cpu") -> Encoders:
    """Load trained encoders (``torch.load(weights_only=True)``; no pickled code)."""
    folder = Path(folder)
    if not has_trained_encoders(folder):
        raise FileNotFoundError(f"{folder}: no trained encoders (need {CONFIG_NAME}, {WEIGHTS_NAME} "
                                "and the skip-gram models)")
    config = FeatureConfig.from_json(folder / CONFIG_NAME)
    model = build_model(config)
    state = torch.load(folder / WEIGHTS_NAME, map_location="cpu", weights_only=True)
    model.audio.load_state_dict(state["audio"])
    model.sheet.load_state_dict(state["sheet"])
    model.to(device).eval()
    lyrics = LyricsEncoder.load(folder)
    flat = {f"audio.{k}": v for k, v in state["audio"].items()}
    flat.update({f"sheet.{k}": v for k, v in state["sheet"].items()})
    checkpoint_hash = hashlib.sha256(
        (state_dict_digest(flat) + lyrics.digest()).encode()).hexdigest()[:16]
    report_path = folder / REPORT_NAME
    report_data = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
    from .learned.onset_net import load as load_onset_net
    return Encoders(folder, config, model, lyrics, checkpoint_hash, report_data, load_onset_net(folder))


def _songs_for_lyrics(dataset: Any, split: str = "train") -> list[list[tuple[str, bool]]]:
    """Each training song's syllables (with word starts), its samples in order."""
    by_song: dict[str, list[Any]] = {}
    for s in dataset.samples:
        if s.split == split:
            by_song.setdefault(s.song_id, []).append(s)
    songs = []
    for song_id in sorted(by_song):
        notes = [n for s in sorted(by_song[song_id], key=lambda x: x.start) for n in s.notes]
        songs.append([(n.syllable, n.word_start) for n in notes])
    return songs


@dataclass
class PretrainInputs:
    """What :func:`pretrain` is called with, besides the config (built alike on every rank).

    ``augment_info`` is ``load_or_render_variants``'s report (empty without
    augmentation).
    """

    train_audio: Ragged
    train_sheet: Ragged
    val_audio: Ragged
    val_sheet: Ragged
    train_pitches: np.ndarray
    init_state: Optional[dict[str, dict[str, torch.Tensor]]]
    audio_batch: Optional[Callable[[np.ndarray, int, int], tuple[np.ndarray, np.ndarray]]]
    augment_info: dict[str, Any]


def pretrain_inputs(dataset: Any, config: FeatureConfig, inputs: tuple[Ragged, Ragged],
                    progress: Optional[ProgressCallback] = None,
                    cancel: Optional[CancelToken] = None) -> PretrainInputs:
    """The training and validation pairs, pitch targets, warm start and augmentation of a pre-training.

    The extra renderings of ``--augment`` are rendered here once and cached;
    a rank that joins a distributed pre-training after rank 0 built them
    reads them from that cache.
    """
    audio, sheet = inputs
    split = np.array([s.split for s in dataset.samples])
    tr, va = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    init_state = None
    if config.init_encoders:
        init_state = torch.load(Path(config.init_encoders) / WEIGHTS_NAME, map_location="cpu", weights_only=True)
    pitches = pitch_histograms([dataset.samples[i] for i in tr])
    train_audio, train_sheet = audio.subset(tr), sheet.subset(tr)
    if config.aux_item_weight > 0:
        train_audio.labels, train_sheet.labels = dataset_item_labels(
            dataset, tr, train_audio.counts, train_sheet.counts, config)
    audio_batch, augment_info = None, {}
    if config.augment.enabled:  # extra renderings once (cached), then per-step augmentation
        from .augmentation.augment import audio_batch_fn
        from .augmentation.cache import load_or_render_variants
        variants, augment_info = load_or_render_variants(dataset, tr, config, progress=progress, cancel=cancel)
        audio_batch = audio_batch_fn(train_audio, variants, config)
    return PretrainInputs(train_audio, train_sheet, audio.subset(va), sheet.subset(va), pitches, init_state,
                          audio_batch, augment_info)


def run_pretrain(job: PretrainInputs, config: FeatureConfig, folder: str | Path, device: str = "cpu",
                 progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
                 log: Optional[Callable[[str], None]] = None) -> PretrainResult:
    """:func:`pretrain` on ``job`` (one code path for rank 0 and the ranks that join it)."""
    return pretrain(job.train_audio, job.train_sheet, job.val_audio, job.val_sheet, config, folder, device,
                    progress, cancel, log, train_pitches=job.train_pitches, init_state=job.init_state,
                    audio_batch=job.audio_batch)


def train_encoders(dataset: Any, config: FeatureConfig, folder: str | Path, inputs: tuple[Ragged, Ragged],
                   device: str = "cpu", progress: Optional[ProgressCallback] = None,
                   cancel: Optional[CancelToken] = None,
                   log: Optional[Callable[[str], None]] = None, pretrain_call: Any = None) -> Encoders:
    """Pre-train the CNNs and train (or load) the skip-gram models into ``folder``.

    ``pretrain_call`` (``model.features.extract_ddp.PretrainCall``, rank 0
    of a torchrun job) is told when the pre-training starts, so the other
    ranks join it, and checks afterwards that every rank ended with the
    same encoders; ``pretrain.json`` records the ranks' digests.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config.to_json(folder / CONFIG_NAME)
    t0 = time.perf_counter()
    if config.init_encoders:
        lyrics = LyricsEncoder.load(config.init_encoders)
    elif config.use_published_skipgram:
        lyrics = LyricsEncoder.load_published(config.use_published_skipgram)
    else:
        report(progress, "skipgram", 0, 1, "training skip-gram models")
        lyrics = train_lyrics_encoder(_songs_for_lyrics(dataset), config)
        report(progress, "skipgram", 1, 1, "skip-gram models trained")
    skipgram_s = time.perf_counter() - t0
    lyrics.save(folder)
    t0 = time.perf_counter()
    job = pretrain_inputs(dataset, config, inputs, progress, cancel)
    if config.augment.enabled:
        t0 = time.perf_counter()  # pretrain_seconds stays the training alone; rendering is reported apart
    if pretrain_call is not None:  # the other ranks of a torchrun job build the same job and join
        pretrain_call.announce(config=config, encoders_dir=folder, inputs_path=inputs_cache_path(dataset, config),
                               device=device)
    result = run_pretrain(job, config, folder, device, progress, cancel, log)
    pretrain_s = time.perf_counter() - t0
    processes = pretrain_call.agree(result.model) if pretrain_call is not None else None
    save_audio_sheet(result.model.cpu(), folder)
    write_json(folder / REPORT_NAME, {
        "dataset_hash": dataset.content_hash, "dataset_root": str(dataset.root),
        "audio_renderer": getattr(dataset, "renderers", {}).get("audio"),
        "train_samples": len(job.train_audio), "val_samples": len(job.val_audio), "best_epoch": result.best_epoch,
        "val": result.val_figures, "history": result.history, "pretrain_seconds": pretrain_s,
        "skipgram_seconds": skipgram_s, "device": device, "resumed_from_epoch": result.resumed_from,
        "lyrics_dim": lyrics.dim, "syllable_vocab": len(lyrics.syllables.index_to_key),
        "word_vocab": len(lyrics.words.index_to_key),
        "timbres": trained_timbres(getattr(dataset, "renderers", {}).get("audio"), config),
        "augment": job.augment_info,
        # under torchrun: how many processes trained, and each one's encoder digest (all equal, checked)
        "processes": processes or {"count": 1}})
    (folder / "pretrain_resume.pt").unlink(missing_ok=True)
    return load_encoders(folder, device)


def trained_timbres(audio_renderer: Any, config: FeatureConfig) -> list[str]:
    """The timbres the audio encoder hears in pre-training: the dataset's renderer, then the augmentation's.

    ``audio_renderer`` is the training dataset's ``renderers["audio"]`` (as
    ``pretrain.json`` records it for encoders trained before this list).
    """
    audio = audio_renderer if isinstance(audio_renderer, dict) else {}
    own = f"{audio.get('version') or audio.get('name') or 'unknown renderer'} (the dataset's audio)"
    return [own] + config.augment.timbres()


# -- the API ------------------------------------------------------------------

def default_encoders_dir(dataset: Any, config: FeatureConfig) -> Path:
    return Path(dataset.root) / "encoders" / f"{config.encoders_digest()}-{dataset.content_hash[:12]}"


def cache_key(dataset_hash: str, config: FeatureConfig, checkpoint_hash: str) -> str:
    from .tokens.sequences import SEQUENCE_VERSION
    blob = f"{dataset_hash}|{config.digest()}|{checkpoint_hash}|seq{SEQUENCE_VERSION}".encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def _open(dataset: Any) -> Any:
    if isinstance(dataset, (str, Path)):
        from model.data.dataset import Dataset
        return Dataset.open(dataset)
    return dataset


def extract_features(dataset: Any, config: FeatureConfig | None = None, *,
                     encoders_dir: str | Path | None = None, device: str = "cpu",
                     progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
                     force: bool = False, workers: int = 2,
                     log: Optional[Callable[[str], None]] = None, pretrain_call: Any = None,
                     sequence_settings: Optional[dict[str, Any]] = None) -> FeatureSet:
    """The dataset's audio, sheet and lyrics features (cached).

    Parameters
    ----------
    dataset : Dataset or path
        A built dataset (``model.data.dataset.Dataset``) or its folder.
    config : FeatureConfig, optional
        Extractor configuration (default ``FeatureConfig()``).  Ignored when
        ``encoders_dir`` already holds trained encoders: their own
        ``config.json`` applies.
    encoders_dir : path, optional
        Trained encoders to use, or where to train them.  Default:
        ``DATASET/encoders/<config digest>-<dataset hash>`` (reused when
        present).
    device : str
        ``"cpu"`` or ``"cuda"`` (never required).
    progress, cancel
        Progress callback (stages ``frontend``, ``skipgram``, ``pretrain``,
        ``onsets`` (the learned onset detector, on first use), ``extract``,
        ``sequences``, ``cache``) and cancel token.
    force : bool
        Recompute the features even when cached (trained encoders are kept).
    workers : int
        Threads for the front end.
    log : callable, optional
        Receives one line per pre-training epoch.
    sequence_settings : dict, optional
        Sequence-stage settings (``SEQUENCE_FIELDS`` of the config, such as
        ``onset_delta``) that apply over the encoders' own config; they are
        part of the features' cache key and of ``meta["config"]``, and
        queries read them from there.
    pretrain_call : PretrainCall, optional
        Rank 0 of a torchrun job (``model.features.extract_ddp``): the
        other ranks join the encoders' pre-training, and nothing else.

    Returns
    -------
    FeatureSet
        Rows in the dataset's manifest order; ``meta`` holds ``dataset_hash``,
        ``config``, ``encoders_dir``, ``checkpoint_hash``, ``cache_key``,
        ``cache_path`` and the audio↔sheet figures per split.
    """
    dataset = _open(dataset)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but no CUDA device is available")
    encoders: Encoders | None = None
    if encoders_dir is not None and has_trained_encoders(encoders_dir):
        encoders = load_encoders(encoders_dir, device)
        config = encoders.config
    else:
        config = config or FeatureConfig()
        encoders_dir = Path(encoders_dir) if encoders_dir is not None else default_encoders_dir(dataset, config)
        if has_trained_encoders(encoders_dir):
            encoders = load_encoders(encoders_dir, device)
            if encoders.config.encoders_digest() != config.encoders_digest():
                raise ValueError(f"{encoders_dir} holds encoders trained with another configuration")
    # the encoders are trained (and named) with their own config; only cutting items into
    # sequences reads the extraction's settings, so a later plain extraction finds the same encoders
    train_config, config = config, config.with_sequence_settings(sequence_settings)
    features_dir = Path(dataset.root) / "features"
    learned_onsets = config.onset_method == "learned"
    if encoders is not None and (encoders.onset_net is not None or not learned_onsets):
        key = cache_key(dataset.content_hash, config, encoders.sequence_hash(config))
        path = features_dir / f"{key}.npz"
        if path.exists() and not force:
            from model.errors import UgaarError
            from model.validate import load_feature_set
            try:
                fs = load_feature_set(path)
            except UgaarError as exc:  # a truncated or foreign cache: say so, then rebuild it
                report(progress, "cache", 0, 1, f"{exc}; recomputing the features")
            else:
                report(progress, "cache", 1, 1, f"features from cache {path}")
                fs.meta["cache_path"] = str(path)
                return fs

    inputs = load_or_compute_inputs(dataset, config, workers, progress, cancel)
    if encoders is None:
        encoders = train_encoders(dataset, train_config, encoders_dir, inputs, device, progress, cancel, log,
                                  pretrain_call)
    if learned_onsets and encoders.onset_net is None:
        from .learned.onset_net import ensure_onset_net
        encoders.onset_net = ensure_onset_net(dataset, encoders.folder, encoders.config, progress, cancel)
    key = cache_key(dataset.content_hash, config, encoders.sequence_hash(config))
    path = features_dir / f"{key}.npz"

    t0 = time.perf_counter()
    audio_in, sheet_in = inputs
    n = len(dataset.samples)
    picking = None  # the key above names "auto"; the features' meta holds the picking it chose
    if config.onset_picking == "auto" and config.onset_method != "learned":
        from .tokens.onset_picking import choose_onset_picking
        report(progress, "sequences", 0, n, "choosing the onset picking on the dataset's notes")
        config, picking = choose_onset_picking(dataset.samples, audio_in, config)
    report(progress, "extract", 0, n, "embedding audio and sheets")
    audio_vec, sheet_vec = embed_pairs(encoders.model, audio_in, sheet_in, device, config.extract_batch)
    report(progress, "extract", n, n, "embedding lyrics")
    lyrics_vec = np.stack([encoders.lyrics.encode_sample(s.syllables, [nt.word_start for nt in s.notes])
                           for s in dataset.samples]) if n else np.zeros((0, encoders.lyrics.dim), np.float32)
    if cancel is not None:
        cancel.raise_if_set()
    from .tokens.sequences import STRUCTURE_DIMS, dataset_sequences
    tokens, lengths = dataset_sequences(dataset, encoders, audio_in, config, device, workers, progress, cancel)
    extract_s = time.perf_counter() - t0

    splits = np.array([s.split for s in dataset.samples], dtype=str)
    figures = {}
    for split in ("train", "val", "test"):
        mask = splits == split
        if mask.sum() >= 2:
            figures[split] = audio_sheet_figures(audio_vec[mask], sheet_vec[mask])
    meta = {
        "dataset_hash": dataset.content_hash, "dataset_root": str(dataset.root),
        "config": config.to_dict(), "encoders_dir": str(encoders.folder),
        "checkpoint_hash": encoders.checkpoint_hash, "cache_key": key,
        "lyrics_dim": int(encoders.lyrics.dim), "audio_renderer": getattr(dataset, "renderers", {}).get("audio"),
        "audio_sheet_figures": figures, "pretrain": {k: encoders.report.get(k) for k in
                                                     ("best_epoch", "val", "pretrain_seconds", "dataset_hash",
                                                      "processes")},
        "extract_seconds": extract_s, "device": device, "structure_dims": STRUCTURE_DIMS, "onset_picking": picking,
        "timbres": encoders.report.get("timbres") or trained_timbres(encoders.report.get("audio_renderer"), config),
    }
    fs = FeatureSet(np.array([s.sample_id for s in dataset.samples], dtype=str),
                    np.array([s.song_id for s in dataset.samples], dtype=str), splits,
                    audio_vec.astype(np.float32), sheet_vec.astype(np.float32),
                    lyrics_vec.astype(np.float32), meta, tokens, lengths)
    fs.save(path)
    fs.meta["cache_path"] = str(path)
    report(progress, "extract", n, n, f"features cached at {path}")
    return fs
