"""A learned onset detector: finds a melody's notes in the 40 ms log-mel rows whatever plays it.

The spectral flux (``onset_method="flux"``) marks a rise in loudness.  A
piano note has one; a bowed, blown or sung note often has none (it starts
softly, or rises out of the last note's release), so on strings, flute and
choir the flux finds other onsets than the notes', the audio tokens no
longer line up with the notes, and retrieval falls (``benchmarks/onset_oracle.py``:
through the same run, held-out strings 42 % audio→sheet R@1 with detected
onsets, 84 % with the notes' own).

This module learns the onsets instead, as Schlüter & Böck's CNN onset
detectors do: a small 1-D convolutional network reads the rows (loudness
taken out: each item relative to its loudest band), gives each row the
probability that a note starts in it, and a row that is a local maximum
above :data:`THRESHOLD` is an onset.  It is trained on the dataset's own
*training* notes rendered in random *training* timbres
(:class:`model.features.augmentation.augment.TimbreAugmenter`: the ``timbre`` preset's
programs, more soft-attack ones, and the built-in synth with slow attacks and
vibrato; never the held-out strings, flute, choir or their neighbours), with
the notes' onsets as targets; no note list is needed to
use it, so a dropped recording takes the same path.

The network is saved as ``onset_net.pt`` in the encoders folder, next to the
audio CNN it cuts tokens for; ``ugaar features extract --onset-method learned``
trains it on first use (docs/features.md).
"""
from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import nn

from model.progress import CancelToken, ProgressCallback, report

#: File of the trained network in an encoders folder.
ONSET_NET_FILE = "onset_net.pt"
#: Probability above which a local maximum is an onset (validation F-measure
#: 0.974 / 0.977 / 0.968 at 0.3 / 0.5 / 0.7: flat, so the middle).
THRESHOLD = 0.5
#: Rows below the item's loudest band by more than this (natural-log
#: magnitude, ~52 dB) are clipped: the noise floor carries no onset.
FLOOR = 6.0


class OnsetNet(nn.Module):
    """Rows ``(B, T, F)`` → onset logits ``(B, T)``: four 1-D convolutions over time, 34k parameters.

    The receptive field is 17 rows (0.68 s), long enough to hear a note's
    start against the last note's sustain.
    """

    def __init__(self, n_bands: int = 64, width: int = 48) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv1d(n_bands, width, 5, padding=2), nn.ReLU(),
            nn.Conv1d(width, width, 5, padding=4, dilation=2), nn.ReLU(),
            nn.Conv1d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv1d(width, 1, 1))

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.layers(rows.transpose(1, 2)).squeeze(1)


def network_input(rows: np.ndarray, log_offset: float) -> np.ndarray:
    """``(T + 1, F)`` float32: a silent row in front (a note at row 0 rises from it), relative to the loudest band."""
    rows = np.asarray(rows, dtype=np.float32)
    silent = np.full((1, rows.shape[1]), float(np.log(log_offset)), dtype=np.float32)
    x = np.vstack([silent, rows])
    x = np.maximum(x - x.max(), -FLOOR)
    return x / (FLOOR / 2) + 1.0  # about [-1, 1]


def onset_targets(onsets_s: Sequence[float], n_rows: int, row_s: float) -> np.ndarray:
    """``(n_rows + 1,)`` float32: 1 at the row of each onset (seconds from the item's start), the silent row first."""
    y = np.zeros(n_rows + 1, dtype=np.float32)
    rows = np.round(np.asarray(onsets_s, dtype=np.float64) / row_s).astype(np.int64) + 1
    y[rows[(rows >= 1) & (rows <= n_rows)]] = 1.0
    return y


@torch.no_grad()
def onset_probabilities(net: OnsetNet, rows: np.ndarray, log_offset: float) -> np.ndarray:
    """``(T,)``: the probability that a note starts in each row."""
    x = torch.from_numpy(network_input(rows, log_offset))[None]
    return torch.sigmoid(net(x))[0, 1:].numpy()


def pick_onsets(prob: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Rows that are a local maximum of ``prob`` above ``threshold`` (the first of a plateau); at least one."""
    if len(prob) == 0:
        return np.zeros(1, dtype=np.int64)
    padded = np.concatenate([[-1.0], prob, [-1.0]])
    mid = padded[1:-1]
    peaks = np.flatnonzero((mid > threshold) & (mid > padded[:-2]) & (mid >= padded[2:]))
    return peaks.astype(np.int64) if len(peaks) else np.array([int(np.argmax(prob))], dtype=np.int64)


def net_digest(net: OnsetNet) -> str:
    """A short hash of the weights (part of the features' cache key)."""
    h = hashlib.sha256()
    for name, tensor in net.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def save(net: OnsetNet, folder: str | Path, report_data: dict[str, Any]) -> Path:
    """Weights and how they were trained, written atomically as ``folder/onset_net.pt``."""
    from model.atomic import write_torch
    path = Path(folder) / ONSET_NET_FILE
    write_torch(path, {"state": net.state_dict(), "n_bands": int(net.layers[0].in_channels),
                       "width": int(net.layers[0].out_channels), "report": report_data})
    return path


def load(folder: str | Path) -> Optional[OnsetNet]:
    """The network of an encoders folder, or None when it has none (``torch.load(weights_only=True)``)."""
    from model.errors import CorruptFileError
    from model.validate import load_checkpoint

    path = Path(folder) / ONSET_NET_FILE
    if not path.is_file():
        return None
    # a truncated or foreign file: an error naming it, not torch's
    data = load_checkpoint(path, keys=("state", "n_bands", "width"))
    net = OnsetNet(int(data["n_bands"]), int(data["width"]))
    try:
        net.load_state_dict(data["state"])
    except (RuntimeError, TypeError) as exc:
        raise CorruptFileError(str(path), f"does not hold this version's onset network ({type(exc).__name__})",
                               "delete it; the next `ugaar features extract --onset-method learned` "
                               "trains it again") from None
    return net.eval()


# -- training ----------------------------------------------------------------------

@dataclass(frozen=True)
class OnsetTraining:
    """How the network is trained (fixed: the encoders' seed varies it).

    Parameters
    ----------
    items : int
        Training samples rendered (the first of a seeded shuffle of the train split).
    renderings : int
        Random training timbres per sample.
    builtin_share : float
        Share of the renderings made by the built-in synthesiser, with a
        random harmonic profile, decay and an attack from ``attack_range_s``:
        slow attacks and a vibrato of up to ``vibrato_cents`` stand in for the
        bowed, blown and sung onsets the training programs lack (strings,
        flute and choir are held out).
    programs : tuple of int
        General MIDI programs (TimGM6mb) the FluidSynth renderings draw from:
        the ``timbre`` augmentation preset's, and the soft-attack reeds,
        brass, winds, synth leads and pads (reed organ, accordion, harmonica,
        trombone, horn, brass section, English horn, bassoon, square and saw
        leads, new-age and warm pads).  ``AugmentConfig`` refuses the held-out
        programs and their neighbours, so none of them can slip in.  Measured
        on validation renderings: onset F on strings / choir / flute (TimGM6mb)
        0.83 / 0.79 / 0.80 with the preset's programs alone, 0.89 / 0.84 /
        0.83 with these (docs/features.md).
    epochs, batch, lr : int, int, float
        Adam over the rows, binary cross-entropy with onsets weighted ``pos_weight``
        (one row in ~8 is an onset).
    """

    items: int = 1200
    renderings: int = 2
    builtin_share: float = 0.5
    attack_range_s: tuple[float, float] = (0.005, 0.3)
    vibrato_cents: float = 60.0
    programs: tuple[int, ...] = (0, 11, 19, 24, 56, 65, 68, 71,  # the ``timbre`` preset's
                                 20, 21, 22, 57, 60, 61, 69, 70, 80, 81, 88, 89)
    epochs: int = 8
    batch: int = 32
    lr: float = 1e-3
    pos_weight: float = 4.0


def training_items(dataset: Any, config: Any, training: OnsetTraining, seed: int,
                   progress: Optional[ProgressCallback] = None,
                   cancel: Optional[CancelToken] = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(network input, targets)`` of training samples rendered in random training timbres."""
    from ..augmentation.augment import TimbreAugmenter, item_rng
    from ..augmentation.config import augment_preset
    from ..extract import audio_input
    from ..tokens.sequences import audio_rows

    train = [s for s in dataset.samples if s.split == "train"]
    order = np.random.default_rng(seed).permutation(len(train))[: training.items]
    augment = augment_preset("timbre", seed=seed)
    augment = dataclasses.replace(augment, builtin_share=training.builtin_share, programs=training.programs)
    augmenter = TimbreAugmenter(augment, config.sample_rate, training.attack_range_s, training.vibrato_cents)
    row_s = config.stft_hop_s * config.audio_time_pool
    items = []
    total = len(order) * training.renderings
    try:
        for i, index in enumerate(order):
            sample = train[int(index)]
            for k in range(training.renderings):
                wave, _, notes = augmenter.render_with_notes(sample.notes, item_rng(seed, sample.sample_id, 100 + k))
                rows = audio_rows(audio_input(wave, config.sample_rate, config))
                first = min(n.onset for n in notes)
                items.append((network_input(rows, config.log_offset),
                              onset_targets([n.onset - first for n in notes], len(rows), row_s)))
            if i % 50 == 0 or i + 1 == len(order):
                report(progress, "onsets", (i + 1) * training.renderings, total,
                       "rendering training notes in training timbres for the onset detector")
                if cancel is not None:
                    cancel.raise_if_set()
    finally:
        augmenter.close()
    return items


def train_onset_net(items: list[tuple[np.ndarray, np.ndarray]], training: OnsetTraining, seed: int,
                    progress: Optional[ProgressCallback] = None,
                    cancel: Optional[CancelToken] = None) -> OnsetNet:
    """Fit :class:`OnsetNet` to ``(network input, targets)`` items (padded rows are masked out)."""
    if not items:
        raise ValueError("no training samples to learn onsets from (the dataset's train split is empty)")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = OnsetNet(items[0][0].shape[1])
    longest = max(len(x) for x, _ in items)
    x = torch.zeros(len(items), longest, items[0][0].shape[1])
    y = torch.zeros(len(items), longest)
    mask = torch.zeros(len(items), longest)
    for i, (xi, yi) in enumerate(items):
        x[i, :len(xi)] = torch.from_numpy(xi)
        y[i, :len(yi)] = torch.from_numpy(yi)
        mask[i, :len(xi)] = 1.0
    opt = torch.optim.Adam(net.parameters(), lr=training.lr)
    pos_weight = torch.tensor(training.pos_weight)
    net.train()
    for epoch in range(training.epochs):
        for idx in torch.randperm(len(items), generator=gen).split(training.batch):
            loss = nn.functional.binary_cross_entropy_with_logits(net(x[idx]), y[idx], pos_weight=pos_weight,
                                                                  reduction="none")
            loss = (loss * mask[idx]).sum() / mask[idx].sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        report(progress, "onsets", epoch + 1, training.epochs, f"training the onset detector (loss {loss.item():.3f})")
        if cancel is not None:
            cancel.raise_if_set()
    return net.eval()


def ensure_onset_net(dataset: Any, encoders_folder: str | Path, config: Any,
                     progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
                     training: OnsetTraining = OnsetTraining()) -> OnsetNet:
    """The encoders folder's onset network; trained on ``dataset`` and saved there when it has none."""
    net = load(encoders_folder)
    if net is not None:
        return net
    t0 = time.perf_counter()
    items = training_items(dataset, config, training, config.seed, progress, cancel)
    net = train_onset_net(items, training, config.seed, progress, cancel)
    save(net, encoders_folder, {"dataset_hash": dataset.content_hash, "items": len(items),
                                "seconds": time.perf_counter() - t0, "training": dataclasses.asdict(training),
                                "timbres": f"TimGM6mb programs {list(training.programs)}, built-in synth"})
    return net
