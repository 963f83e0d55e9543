"""VGG-style CNNs: 128-d per audio patch / sheet window, mean per sample.

Both encoders are stacks of VGG blocks (3×3 convolution → batch norm →
ReLU → 2×2 max-pool) followed by a flatten and one linear layer to 128-d,
like VGGish (which flattens its last feature map into fully connected
layers).  Flattening — not global pooling — keeps *where* things are in the
patch: the frequency band of a note in the spectrogram, the staff position
of a note head in the sheet; both are the pitch.

The sample's feature is the mean of its patch (window) vectors
(``mean_by_sample``), as method.md §2 specifies.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..config import FeatureConfig


class VGGBlock(nn.Sequential):
    """conv 3×3 (no bias) → BatchNorm → ReLU → max-pool 2×2 (ceil mode).

    With ``strided=True`` the convolution itself has stride 2 and there is no
    pooling: the same output size for a quarter of the work (used for the
    first block, where the maps are largest).
    """

    def __init__(self, c_in: int, c_out: int, strided: bool = False) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, 3, stride=2 if strided else 1, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]
        if not strided:
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        super().__init__(*layers)


class PatchCNN(nn.Module):
    """VGG blocks + flatten + linear: ``(N, H, W)`` → ``(N, embed_dim)``.

    Parameters
    ----------
    in_hw : tuple of int
        Input height and width (after any fixed pooling).
    widths : sequence of int
        Channels of the blocks.
    embed_dim : int
        Output dimension.
    strided_stem : bool
        First block: stride-2 convolution instead of convolution + pooling.
    """

    def __init__(self, in_hw: tuple[int, int], widths: Sequence[int], embed_dim: int,
                 strided_stem: bool = False) -> None:
        super().__init__()
        blocks, c_in = [], 1
        for i, c_out in enumerate(widths):
            blocks.append(VGGBlock(c_in, c_out, strided=strided_stem and i == 0))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        h, w = in_hw
        for _ in widths:
            h, w = -(-h // 2), -(-w // 2)
        self.flat_dim = c_in * h * w
        self.head = nn.Linear(self.flat_dim, embed_dim)
        self.in_hw = tuple(in_hw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return self.head(self.blocks(x).flatten(1))


class AudioEncoder(nn.Module):
    """VGGish-style audio CNN over ``(N, 96, 64)`` log-mel patches → ``(N, 128)``.

    Its first layer is a fixed average pooling over ``audio_time_pool``
    frames; ``forward_pooled`` skips it for patches already pooled by
    ``frontend.pool_time`` (same numbers, used during pre-training).
    """

    def __init__(self, config: FeatureConfig) -> None:
        super().__init__()
        self.time_pool = config.audio_time_pool
        self.cnn = PatchCNN((config.patch_frames // self.time_pool, config.n_mels),
                            config.audio_widths, config.embed_dim, config.strided_stem)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        n, t, f = patches.shape
        pooled = patches.reshape(n, t // self.time_pool, self.time_pool, f).mean(dim=2)
        return self.cnn(pooled)

    def forward_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.cnn(pooled)


class SheetEncoder(nn.Module):
    """VGG-style sheet CNN over ``(N, H, W)`` ink windows → ``(N, 128)``."""

    def __init__(self, config: FeatureConfig) -> None:
        super().__init__()
        self.cnn = PatchCNN((config.sheet_height, config.sheet_window), config.sheet_widths,
                            config.embed_dim, config.strided_stem)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.cnn(windows)


N_PITCHES = 88  # piano range, MIDI 21–108


class AudioSheetModel(nn.Module):
    """The two-branch audio–sheet embedding pre-trained together.

    ``pitch_head`` (shared by both branches, used only during pre-training
    when ``aux_pitch_weight > 0``) reads a sample's pitch histogram off its
    mean embedding.
    """

    def __init__(self, config: FeatureConfig) -> None:
        super().__init__()
        self.audio = AudioEncoder(config)
        self.sheet = SheetEncoder(config)
        self.pitch_head = nn.Linear(config.embed_dim, N_PITCHES)


def mean_by_sample(vectors: torch.Tensor, counts: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """Mean of consecutive row groups: ``counts[i]`` rows belong to sample ``i``.

    Parameters
    ----------
    vectors : torch.Tensor, shape (sum(counts), D)
    counts : sequence of int, all ≥ 1

    Returns
    -------
    torch.Tensor, shape (len(counts), D)
    """
    counts = torch.as_tensor(counts, dtype=torch.long, device=vectors.device)
    index = torch.repeat_interleave(torch.arange(len(counts), device=vectors.device), counts)
    sums = torch.zeros(len(counts), vectors.shape[1], dtype=vectors.dtype, device=vectors.device)
    sums.index_add_(0, index, vectors)
    return sums / counts.unsqueeze(1).to(vectors.dtype)


def build_model(config: FeatureConfig, seed: int | None = None) -> AudioSheetModel:
    """A freshly initialised model; ``seed`` (default ``config.seed``) fixes the weights."""
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(config.seed if seed is None else seed)
        return AudioSheetModel(config)
    finally:
        torch.random.set_rng_state(gen_state)
