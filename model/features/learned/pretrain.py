"""Pre-training of the audio and sheet CNNs together on audio–sheet pairs.

A two-branch embedding (Dorfer et al.'s audio–sheet retrieval): the audio CNN
embeds each 0.96 s patch, the sheet CNN each horizontal window, each sample is
the mean of its vectors, and a symmetric contrastive loss (InfoNCE, CLIP
style; or Dorfer's pairwise hinge ranking loss) pulls a sample's audio and
sheet together against the other samples of the batch.  Only the training
split is used for gradient steps; the validation split's audio↔sheet R@1
early-stops and picks the best epoch.  Lyrics never take part.

After every epoch a resume checkpoint (state dicts only, written atomically)
is saved, so an interrupted pre-training continues where it stopped.

Under ``torchrun`` (``model.distributed``) every rank draws the same global
batches and encodes its share of each; the sample vectors are gathered from
all ranks with their gradient (``torch.distributed.nn.functional.all_gather``),
so every rank's samples are negatives of every other's, and the ranks'
gradients are summed before each step.  Rank 0 validates, writes the resume
checkpoint and reports progress.  Batch norm normalises over each rank's
own items (DDP's default without ``SyncBatchNorm``, which gloo lacks); its
running statistics are averaged over the ranks after each step, so every
rank holds the same model.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from model import distributed as dist_
from model.atomic import write_torch
from model.progress import Cancelled, CancelToken, ProgressCallback, report

from ..config import FeatureConfig
from .encoders import N_PITCHES, AudioSheetModel, build_model, mean_by_sample
from .metrics import audio_sheet_figures

RESUME_NAME = "pretrain_resume.pt"


@dataclass
class Ragged:
    """Variable numbers of equally sized 2-D items per sample, stored flat.

    Parameters
    ----------
    data : np.ndarray, shape (total, H, W), float16
    offsets : np.ndarray of int64, shape (N + 1,)
        Sample ``i`` owns ``data[offsets[i]:offsets[i + 1]]`` (≥ 1 item).
    labels : np.ndarray, shape (total, 88), optional
        Per-item pitch labels (pre-training only).
    """

    data: np.ndarray
    offsets: np.ndarray
    labels: Optional[np.ndarray] = None

    @classmethod
    def from_list(cls, items: Sequence[np.ndarray], item_shape: tuple[int, int] | None = None) -> "Ragged":
        counts = np.array([len(x) for x in items], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if len(items):
            data = np.concatenate(items).astype(np.float16)
        else:
            data = np.zeros((0, *(item_shape or (1, 1))), dtype=np.float16)
        return cls(data, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def gather(self, index: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Items of samples ``index`` concatenated, and their counts."""
        parts = [self.data[self.offsets[i]:self.offsets[i + 1]] for i in index]
        return np.concatenate(parts), np.array([len(p) for p in parts], dtype=np.int64)

    def gather_labels(self, index: Sequence[int]) -> np.ndarray:
        """Per-item labels of samples ``index`` concatenated (requires ``labels``)."""
        assert self.labels is not None
        return np.concatenate([self.labels[self.offsets[i]:self.offsets[i + 1]] for i in index])

    def subset(self, index: Sequence[int]) -> "Ragged":
        data, counts = self.gather(index) if len(index) else (self.data[:0], np.zeros(0, np.int64))
        labels = None
        if self.labels is not None:
            labels = self.gather_labels(index) if len(index) else self.labels[:0]
        return Ragged(data, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), labels)


@dataclass
class PretrainResult:
    """The pre-trained model (eval mode, best validation epoch) and its history."""

    model: AudioSheetModel
    best_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    val_figures: dict[str, Any] = field(default_factory=dict)
    resumed_from: int = 0


def contrastive_loss(za: torch.Tensor, zs: torch.Tensor, config: FeatureConfig) -> torch.Tensor:
    """Symmetric InfoNCE or pairwise ranking loss between matched rows."""
    za, zs = F.normalize(za, dim=1), F.normalize(zs, dim=1)
    sim = za @ zs.T
    target = torch.arange(len(za), device=za.device)
    if config.loss == "infonce":
        logits = sim / config.temperature
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    pos = sim.diagonal()
    off = ~torch.eye(len(za), dtype=torch.bool, device=za.device)
    hinge_a = F.relu(config.margin - pos[:, None] + sim)[off]
    hinge_s = F.relu(config.margin - pos[None, :] + sim)[off]
    return hinge_a.mean() + hinge_s.mean()


def pitch_histograms(samples: Sequence[Any]) -> np.ndarray:
    """Normalised histogram of each sample's note pitches over the piano range, ``(N, 88)``."""
    out = np.zeros((len(samples), N_PITCHES), dtype=np.float32)
    for i, sample in enumerate(samples):
        for note in sample.notes:
            out[i, min(max(int(note.pitch) - 21, 0), N_PITCHES - 1)] += 1.0
    out /= np.maximum(out.sum(axis=1, keepdims=True), 1.0)
    return out


def _to_tensor(x: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).to(device=device, dtype=torch.float32)


@torch.no_grad()
def embed_ragged(encoder: Callable[[torch.Tensor], torch.Tensor], items: Ragged, device: str = "cpu",
                 max_items: int = 1024, cancel: Optional[CancelToken] = None,
                 on_chunk: Optional[Callable[[int], None]] = None) -> np.ndarray:
    """Sample vectors (mean over each sample's items) in chunks of ≤ ``max_items`` items.

    ``encoder`` maps ``(n, H, W)`` float32 to ``(n, D)``; put its module in eval
    mode first.
    """
    n = len(items)
    out: list[np.ndarray] = []
    start = 0
    offsets = items.offsets
    while start < n:
        stop = start + 1
        while stop < n and offsets[stop + 1] - offsets[start] <= max_items:
            stop += 1
        x = _to_tensor(items.data[offsets[start]:offsets[stop]], device)
        vec = encoder(x)
        out.append(mean_by_sample(vec, items.counts[start:stop]).float().cpu().numpy())
        if on_chunk is not None:
            on_chunk(stop)
        if cancel is not None:
            cancel.raise_if_set()
        start = stop
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


def embed_pairs(model: AudioSheetModel, audio: Ragged, sheet: Ragged, device: str = "cpu",
                max_items: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Audio and sheet sample features with the model in eval mode."""
    was_training = model.training
    model.eval()
    try:
        return (embed_ragged(model.audio.forward_pooled, audio, device, max_items),
                embed_ragged(model.sheet, sheet, device, max_items))
    finally:
        model.train(was_training)


def _lr_at(step: int, total: int, config: FeatureConfig) -> float:
    """Linear warm-up over the first 3 % of steps, then cosine decay."""
    warm = max(1, int(0.03 * total))
    if step < warm:
        return config.pretrain_lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return config.pretrain_lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _resume_state(path: Path, digest: str) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a corrupt resume file only costs the restart
        return None
    return state if state.get("config_digest") == digest else None


def pretrain(train_audio: Ragged, train_sheet: Ragged, val_audio: Ragged, val_sheet: Ragged,
             config: FeatureConfig, work_dir: str | Path, device: str = "cpu",
             progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
             log: Optional[Callable[[str], None]] = None,
             train_pitches: Optional[np.ndarray] = None,
             init_state: Optional[dict[str, dict[str, torch.Tensor]]] = None,
             audio_batch: Optional[Callable[[np.ndarray, int, int], tuple[np.ndarray, np.ndarray]]] = None
             ) -> PretrainResult:
    """Train the two CNNs on the training pairs; early-stop on validation R@1.

    Parameters
    ----------
    train_audio, train_sheet : Ragged
        Pooled audio patches and sheet windows of the training samples, row
        ``i`` of each the same sample.
    val_audio, val_sheet : Ragged
        The same for the validation split (may be empty: then every epoch
        runs and the last is kept).
    config : FeatureConfig
    work_dir : path
        Folder for the resume checkpoint (``pretrain_resume.pt``).
    device : str
        ``"cpu"`` or ``"cuda"``.
    train_pitches : np.ndarray, shape (N_train, 88), optional
        Pitch histograms of the training samples (``pitch_histograms``), for
        the auxiliary loss when ``config.aux_pitch_weight > 0``.
    init_state : dict, optional
        ``{"audio": state_dict, "sheet": state_dict}`` to start from (warm start).
    audio_batch : callable, optional
        ``audio_batch(index, epoch, batch) -> (items, counts)`` replaces
        ``train_audio.gather(index)``: timbre augmentation
        (``model.features.augmentation.augment.OnlineAugment``); seeded by epoch and batch,
        so a resumed pre-training draws the same.

    Returns
    -------
    PretrainResult
    """
    if len(train_audio) != len(train_sheet) or len(val_audio) != len(val_sheet):
        raise ValueError("audio and sheet must have the same samples")
    n = len(train_audio)
    if n < 2:
        raise ValueError(f"pre-training needs at least 2 training samples, got {n}")
    work_dir = Path(work_dir)
    resume_path = work_dir / RESUME_NAME
    digest = config.encoders_digest()  # a resume with other sequence settings trains the same encoders
    say = log or (lambda _msg: None)

    model = build_model(config)
    if init_state is not None:
        model.audio.load_state_dict(init_state["audio"])
        model.sheet.load_state_dict(init_state["sheet"])
    model = model.to(device)
    optim = torch.optim.Adam(model.parameters(), lr=config.pretrain_lr, weight_decay=config.weight_decay)
    n_batches = max(1, n // config.pretrain_batch)
    total_steps = n_batches * config.pretrain_epochs
    world = dist_.current()
    if n // n_batches < world.size:
        raise dist_.DistributedError("pretrain_batch", f"batches of {n // n_batches} samples cannot be split "
                                     f"over {world.size} processes", "use a larger batch or fewer processes")

    start_epoch, best_score, best_epoch, bad_epochs = 0, -math.inf, -1, 0
    history: list[dict[str, Any]] = []
    best_state = copy.deepcopy(model.state_dict())
    state = _resume_state(resume_path, digest)
    if state is not None:
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optim"])
        best_state = state["best_model"]
        start_epoch, best_score = int(state["epoch"]), float(state["best_score"])
        best_epoch, bad_epochs = int(state["best_epoch"]), int(state["bad_epochs"])
        history = list(state["history"])
        say(f"resuming pre-training after epoch {start_epoch}")
    resumed_from = start_epoch

    epoch = start_epoch
    for epoch in range(start_epoch, config.pretrain_epochs):
        if bad_epochs >= config.pretrain_patience:
            break
        model.train()
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        perm = torch.randperm(n, generator=gen).numpy()
        losses, contrastive = [], []
        for b, batch in enumerate(np.array_split(perm, n_batches)):
            step = epoch * n_batches + b
            for group in optim.param_groups:
                group["lr"] = _lr_at(step, total_steps, config)
            shard = dist_.Shard.of(len(batch), world)
            index = batch[shard.rows]  # this rank's samples of the global batch (all of it in one process)
            xa, ca = train_audio.gather(index) if audio_batch is None else audio_batch(index, epoch, b)
            xs, cs = train_sheet.gather(index)
            items_a = model.audio.forward_pooled(_to_tensor(xa, device))
            items_s = model.sheet(_to_tensor(xs, device))
            za, zs = mean_by_sample(items_a, ca), mean_by_sample(items_s, cs)
            # the whole batch's loss on every rank's vectors; the gather's backward sums what each
            # rank's copy sends to a rank's rows, so each rank takes 1/N of the loss
            loss = contrastive_loss(shard.gather(za), shard.gather(zs), config)
            contrastive.append(float(loss.detach()))
            if world.distributed:
                loss = loss / world.size
            if config.aux_pitch_weight > 0 and train_pitches is not None:
                target = torch.from_numpy(train_pitches[index]).to(device)
                aux = sum(-(target * F.log_softmax(model.pitch_head(z), dim=1)).sum(1).mean()
                          for z in (za, zs)) / 2
                loss = loss + config.aux_pitch_weight * shard.share(aux)
            if (config.aux_item_weight > 0 and train_audio.labels is not None
                    and train_sheet.labels is not None):
                aux_items = sum(F.binary_cross_entropy_with_logits(
                    model.pitch_head(items), torch.from_numpy(labels).to(device, torch.float32))
                    * (len(items) / int(ragged.counts[batch].sum()) if world.distributed else 1.0)
                    for items, labels, ragged in ((items_a, train_audio.gather_labels(index), train_audio),
                                                  (items_s, train_sheet.gather_labels(index), train_sheet))) / 2
                loss = loss + config.aux_item_weight * aux_items
            optim.zero_grad(set_to_none=True)
            loss.backward()
            dist_.sum_gradients(model.parameters())
            optim.step()
            dist_.average_buffers(model)
            losses.append(float(dist_.all_sum(loss.detach().reshape(1))[0]))
            if world.is_main:
                report(progress, "pretrain", epoch * n_batches + b + 1, total_steps,
                       f"epoch {epoch + 1} loss {np.mean(losses):.4f}")
            # a cancel on any rank ends every rank after the same step
            if dist_.any_rank(cancel is not None and cancel.is_set, device):
                if cancel is not None:
                    cancel.raise_if_set()
                # a stop asked on another rank is this rank's stop too: the same clean end everywhere
                raise Cancelled("cancelled on another rank")
        train_s = time.perf_counter() - t0
        record: dict[str, Any] = {"epoch": epoch + 1, "loss": float(np.mean(losses)),
                                  "first_batch_loss": losses[0],
                                  "contrastive": float(np.mean(contrastive)), "seconds": train_s}
        if len(val_audio) >= 2:
            figs, score = None, 0.0
            if world.is_main:  # rank 0 validates; every rank then selects and early-stops alike
                va, vs = embed_pairs(model, val_audio, val_sheet, device, config.extract_batch)
                figs = audio_sheet_figures(va, vs)
                score = 0.5 * (figs["audio→sheet"]["R@1"] + figs["sheet→audio"]["R@1"])
            figs, score = dist_.broadcast_object((figs, score))
            record.update({"val": figs, "val_score": score})
        else:
            score = float(epoch)  # no validation: keep the last epoch
        record["seconds_total"] = time.perf_counter() - t0
        history.append(record)
        if score > best_score:
            best_score, best_epoch, bad_epochs = score, epoch + 1, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
        say(f"epoch {epoch + 1}: loss {record['loss']:.4f}"
            + (f", val a↔s R@1 {score:.1f} %" if "val" in record else "")
            + f" ({train_s:.0f} s train)")
        if world.is_main:
            write_torch(resume_path, {"config_digest": digest, "epoch": epoch + 1, "model": model.state_dict(),
                                      "optim": optim.state_dict(), "best_model": best_state,
                                      "best_score": best_score, "best_epoch": best_epoch,
                                      "bad_epochs": bad_epochs, "history": history})

    model.load_state_dict(best_state)
    model.eval()
    best = next((h for h in history if h["epoch"] == best_epoch), {})
    return PretrainResult(model, best_epoch, history, best.get("val", {}), resumed_from)
