"""Networks of UGAAR: the generator's mapping networks and the discriminator.

* :class:`Generator` holds F (audio), G (sheet) and H (lyrics), three fully
  connected mapping networks into the common space (audio and sheet share the
  structure, each has its own weights).
* :class:`Discriminator` holds the per-modality projections
  Θ(v) = tanh(W v + b) (eq. 6) and the bias b0 of D = σ(r + b0) (eq. 7).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
import torch.nn.functional as F

from . import loss as L

MODALITIES = ("audio", "sheet", "lyrics")


class MappingNetwork(nn.Module):
    """Fully connected network ``in_dim → hidden… → out_dim`` (ReLU, dropout).

    Parameters
    ----------
    in_dim, out_dim : int
    hidden : sequence of int
    dropout : float
    normalize : bool
        L2-normalise the output.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int] = (512,), dropout: float = 0.1,
                 normalize: bool = True, skip: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)
        self.skip = nn.Linear(in_dim, out_dim, bias=False) if skip else None
        self.normalize = normalize

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        out = self.net(v)
        if self.skip is not None:
            out = out + self.skip(v)
        return F.normalize(out, dim=-1) if self.normalize else out


class Generator(nn.Module):
    """F, G, H mapping networks (method.md §3, "Generator G").

    ``forward(modality, v)`` maps features of one modality to the common space.
    """

    def __init__(self, dims: dict[str, int], embed_dim: int = 128, hidden: Sequence[int] = (512,),
                 dropout: float = 0.1, normalize: bool = True, skip: bool = False) -> None:
        super().__init__()
        self.maps = nn.ModuleDict({m: MappingNetwork(dims[m], embed_dim, hidden, dropout, normalize, skip)
                                   for m in MODALITIES})

    def forward(self, modality: str, v: torch.Tensor) -> torch.Tensor:
        return self.maps[modality](v)

    def pair(self, audio: torch.Tensor, sheet: torch.Tensor) -> torch.Tensor:
        """J(x, y) = ½ (F(x) + G(y)) (eq. 4)."""
        return L.pair_embedding(self("audio", audio), self("sheet", sheet))


class Discriminator(nn.Module):
    """Θ_a, Θ_s, Θ_l (eq. 6) and b0 (eq. 7) on the pre-trained features."""

    def __init__(self, dims: dict[str, int], embed_dim: int = 128) -> None:
        super().__init__()
        self.proj = nn.ModuleDict({m: nn.Linear(dims[m], embed_dim) for m in MODALITIES})
        self.b0 = nn.Parameter(torch.zeros(()))

    def forward(self, modality: str, v: torch.Tensor) -> torch.Tensor:
        layer = self.proj[modality]
        return L.theta(layer.weight, layer.bias, v)

    def pair(self, audio: torch.Tensor, sheet: torch.Tensor) -> torch.Tensor:
        """Θ(p) = ½ (Θ_a(x) + Θ_s(y))."""
        return L.pair_representation(self("audio", audio), self("sheet", sheet))

    def score(self, theta_query: torch.Tensor, theta_pair: torch.Tensor) -> torch.Tensor:
        """D's logit r(p, q) + b0 (σ of it is eq. 7)."""
        return L.relevance_score(theta_query, theta_pair) + self.b0
