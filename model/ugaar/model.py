"""Networks of UGAAR: the generator's mapping networks and the discriminator.

* :class:`Generator` holds F (audio), G (sheet) and H (lyrics), three fully
  connected mapping networks into the common space (audio and sheet share the
  structure, each has its own weights).
* :class:`Discriminator` holds the per-modality projections
  Θ(v) = tanh(W v + b) (eq. 6) and the bias b0 of D = σ(r + b0) (eq. 7).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

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


@dataclass
class SequenceBatch:
    """Torch inputs of a sequence model: pooled ``(B, D)``, tokens ``(B, T, D_tok)``, mask ``(B, T)``.

    Indexing with a tensor of rows returns the rows (as a tensor does), so the
    trainer indexes paper and sequence inputs alike.
    """

    pooled: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor

    def __getitem__(self, index: Any) -> "SequenceBatch":
        return SequenceBatch(self.pooled[index], self.tokens[index], self.mask[index])

    def __len__(self) -> int:
        return self.pooled.shape[0]


@dataclass(frozen=True)
class SequenceSpec:
    """Shape and size of one modality's sequence encoder (a RunConfig turned into numbers)."""

    token_dim: int
    max_len: int
    width: int = 64
    layers: int = 2
    heads: int = 4
    position_dim: int = 8


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid positions: ``(B, T, D)``, ``(B, T)`` bool → ``(B, D)``."""
    w = mask.to(h.dtype).unsqueeze(-1)
    return (h * w).sum(1) / w.sum(1).clamp_min(1.0)


class SequenceEncoder(nn.Module):
    """A small transformer over one item's positions → one vector.

    Tokens are projected to ``width``, given learned position embeddings and
    encoded by ``layers`` pre-norm transformer layers (padding masked).  Two
    summaries leave the sequence: the masked mean (what the item contains)
    and per-position projections to ``position_dim`` of the contextual states
    and of the raw tokens, flattened over the positions (what happens
    *where*: "the 3rd syllable is stressed and its note is long" survives,
    which a mean cannot keep).  With the pooled
    paper feature they feed a :class:`MappingNetwork` head.

    Parameters
    ----------
    pooled_dim : int
        Dimension of the pooled feature appended to the summaries.
    spec : SequenceSpec
    out_dim, hidden, dropout, normalize, skip
        As :class:`MappingNetwork` (the head).
    """

    def __init__(self, pooled_dim: int, spec: SequenceSpec, out_dim: int, hidden: Sequence[int] = (512,),
                 dropout: float = 0.1, normalize: bool = True, skip: bool = False) -> None:
        super().__init__()
        self.spec = spec
        self.project = nn.Linear(spec.token_dim, spec.width)
        self.position = nn.Embedding(spec.max_len, spec.width)
        layer = nn.TransformerEncoderLayer(spec.width, spec.heads, dim_feedforward=2 * spec.width,
                                           dropout=dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, spec.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(spec.width)
        self.per_position = nn.Linear(spec.width, spec.position_dim)
        # A direct linear read of each raw token, beside the contextual one: the position-wise
        # structure (stress ↔ long note) is linear, and CCA finds it (docs/training.md); this path
        # lets the network start from there instead of digging it out through attention.
        self.direct = nn.Linear(spec.token_dim, spec.position_dim)
        self.head = MappingNetwork(pooled_dim + spec.width + 2 * spec.max_len * spec.position_dim, out_dim,
                                   hidden, dropout, normalize, skip)

    def token_states(self, batch: SequenceBatch) -> torch.Tensor:
        """Contextual state of every position, ``(B, T, width)`` (zero at padding)."""
        t = batch.tokens.shape[1]
        pos = torch.arange(t, device=batch.tokens.device)
        h = self.project(batch.tokens) + self.position(pos).unsqueeze(0)
        h = self.encoder(h, src_key_padding_mask=~batch.mask)
        return self.norm(h) * batch.mask.unsqueeze(-1).to(h.dtype)

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        lead = batch.pooled.shape[:-1]
        if len(lead) > 1:  # e.g. (B, S) sampled pairs: encode flat, then restore the shape
            flat = SequenceBatch(batch.pooled.reshape(-1, batch.pooled.shape[-1]),
                                 batch.tokens.reshape(-1, *batch.tokens.shape[-2:]),
                                 batch.mask.reshape(-1, batch.mask.shape[-1]))
            out = self.forward(flat)
            return out.reshape(*lead, out.shape[-1])
        # Positions past the longest item of the batch are padding everywhere: skip them (cost ∝ T).
        t = max(1, int(batch.mask.sum(1).max()))
        if t < batch.tokens.shape[1]:
            batch = SequenceBatch(batch.pooled, batch.tokens[:, :t], batch.mask[:, :t])
        h = self.token_states(batch)
        keep = batch.mask.unsqueeze(-1).to(h.dtype)
        local = torch.cat([self.per_position(h), self.direct(batch.tokens)], dim=-1) * keep
        if local.shape[1] < self.spec.max_len:
            local = F.pad(local, (0, 0, 0, self.spec.max_len - local.shape[1]))
        summary = torch.cat([batch.pooled, masked_mean(h, batch.mask), local.flatten(1)], dim=-1)
        return self.head(summary)


@dataclass(frozen=True)
class StructureSpec:
    """The structure block of one modality's embedding (aligned inputs).

    Parameters
    ----------
    columns : int
        The last ``columns`` of each token are its structure (timing, spacing,
        written durations, stress, word position; ``Method.structure_dims``).
    positions : int
        Positions read (the first ``positions``; CCA reads the same).
    dim : int
        Size of the block in the common space.
    weight : float
        Share of the embedding's squared norm that the block holds (0–1).
    hidden : int
        Hidden width of the block's network.
    """

    columns: int
    positions: int
    dim: int
    weight: float = 0.5
    hidden: int = 256


class StructureEncoder(nn.Module):
    """The structure columns of the first positions, flattened → a unit vector.

    The position-wise correspondence "syllable *i* is stressed ↔ note *i* is
    long" is what lyrics and melody share across songs; it is linear in the
    flattened columns (CCA finds it), and a small MLP on them keeps it
    without the per-note content that lets a network memorise training songs
    (docs/training.md, "Third round").
    """

    def __init__(self, spec: StructureSpec, dropout: float = 0.1) -> None:
        super().__init__()
        self.spec = spec
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(spec.positions * spec.columns, spec.hidden),
                                 nn.ReLU(), nn.Dropout(dropout), nn.Linear(spec.hidden, spec.dim))

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        cols = batch.tokens[..., : self.spec.positions, batch.tokens.shape[-1] - self.spec.columns:]
        if cols.shape[-2] < self.spec.positions:
            cols = F.pad(cols, (0, 0, 0, self.spec.positions - cols.shape[-2]))
        return F.normalize(self.net(cols.flatten(-2)), dim=-1)


def _encoder(dim: int, spec: SequenceSpec | None, out_dim: int, hidden: Sequence[int], dropout: float,
             normalize: bool, skip: bool) -> nn.Module:
    """A mapping network for pooled inputs, a sequence encoder when ``spec`` is given."""
    if spec is None:
        return MappingNetwork(dim, out_dim, hidden, dropout, normalize, skip)
    return SequenceEncoder(dim, spec, out_dim, hidden, dropout, normalize, skip)


class Generator(nn.Module):
    """F, G, H mapping networks (method.md §3, "Generator G").

    ``forward(modality, v)`` maps features of one modality to the common space;
    with ``specs`` each network reads a :class:`SequenceBatch` instead.

    With ``structure`` (aligned inputs) the common space has two blocks:
    content (the first ``embed_dim − dim`` dimensions, from the sequence
    encoder) and structure (the last ``dim``, from a
    :class:`StructureEncoder`), holding ``1 − weight`` and ``weight`` of a
    unit norm.  Audio and sheet fill both; lyrics fill only the structure
    block, so a lyrics query ranks music by structure alone (the content
    block of a unit audio or sheet vector has the same norm for every item)
    and H cannot memorise training songs through their words.
    """

    def __init__(self, dims: dict[str, int], embed_dim: int = 128, hidden: Sequence[int] = (512,),
                 dropout: float = 0.1, normalize: bool = True, skip: bool = False,
                 specs: Mapping[str, SequenceSpec] | None = None,
                 structure: Mapping[str, StructureSpec] | None = None) -> None:
        super().__init__()
        specs = specs or {}
        self.structure_specs = dict(structure or {})
        block = {m: s.dim for m, s in self.structure_specs.items()}
        if block and not normalize:
            raise ValueError("a structure block needs normalised embeddings")
        self.maps = nn.ModuleDict({m: _encoder(dims[m], specs.get(m), embed_dim - block.get(m, 0), hidden,
                                               dropout, normalize, skip)
                                   for m in MODALITIES if not (m == "lyrics" and m in block)})
        self.structure = nn.ModuleDict({m: StructureEncoder(s, dropout) for m, s in self.structure_specs.items()})
        self.embed_dim = embed_dim

    def forward(self, modality: str, v: torch.Tensor) -> torch.Tensor:
        if modality not in self.structure:
            return self.maps[modality](v)
        spec = self.structure_specs[modality]
        s = self.structure[modality](v) * spec.weight ** 0.5
        if modality not in self.maps:  # lyrics: the structure block only
            return F.pad(s, (self.embed_dim - spec.dim, 0))
        return torch.cat([self.maps[modality](v) * (1.0 - spec.weight) ** 0.5, s], dim=-1)

    def lyrics_view(self, pairs: torch.Tensor) -> torch.Tensor:
        """What of a pair embedding J a lyrics embedding is compared with (eq. 3).

        H(z) lives in the structure block when there is one, so J is
        projected onto it: ‖H − J‖² would otherwise add J's content norm,
        which H cannot change and which would push F and G's content apart.
        """
        spec = self.structure_specs.get("lyrics")
        if spec is None:
            return pairs
        return F.pad(pairs[..., self.embed_dim - spec.dim:], (self.embed_dim - spec.dim, 0))

    def pair(self, audio: torch.Tensor, sheet: torch.Tensor) -> torch.Tensor:
        """J(x, y) = ½ (F(x) + G(y)) (eq. 4)."""
        return L.pair_embedding(self("audio", audio), self("sheet", sheet))


class Discriminator(nn.Module):
    """Θ_a, Θ_s, Θ_l (eq. 6) and b0 (eq. 7) on the pre-trained features.

    With ``specs`` (sequence inputs) Θ(v) = tanh(S(v)) where S is a
    :class:`SequenceEncoder` with a linear head: eq. 6 on a summary of the
    sequence instead of the mean.
    """

    def __init__(self, dims: dict[str, int], embed_dim: int = 128,
                 specs: Mapping[str, SequenceSpec] | None = None, dropout: float = 0.1) -> None:
        super().__init__()
        specs = specs or {}
        self.proj = nn.ModuleDict({m: nn.Linear(dims[m], embed_dim) if m not in specs else
                                   SequenceEncoder(dims[m], specs[m], embed_dim, (), dropout, normalize=False)
                                   for m in MODALITIES})
        self.b0 = nn.Parameter(torch.zeros(()))

    def forward(self, modality: str, v: torch.Tensor | SequenceBatch) -> torch.Tensor:
        layer = self.proj[modality]
        if isinstance(layer, nn.Linear):
            return L.theta(layer.weight, layer.bias, v)
        return torch.tanh(layer(v))

    def pair(self, audio: torch.Tensor, sheet: torch.Tensor) -> torch.Tensor:
        """Θ(p) = ½ (Θ_a(x) + Θ_s(y))."""
        return L.pair_representation(self("audio", audio), self("sheet", sheet))

    def score(self, theta_query: torch.Tensor, theta_pair: torch.Tensor) -> torch.Tensor:
        """D's logit r(p, q) + b0 (σ of it is eq. 7)."""
        return L.relevance_score(theta_query, theta_pair) + self.b0
