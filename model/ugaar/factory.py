"""Build a method (Random, CCA, Baseline, Baseline-GAN, UGAAR) from a RunConfig.

:class:`Method` bundles what a trained method is made of — the input
normalisation (training split statistics), the networks (or the CCAs, or
the random seed) — and maps raw features of any feature set into the
retrieval space.  Its :meth:`Method.state` is plain tensors/arrays, saved in
checkpoints; :func:`method_from_state` rebuilds it without the features.
"""
from __future__ import annotations

import zlib
from typing import Any, Mapping

import numpy as np
import torch

from model.feature_set import MODALITIES, FeatureSet, SequenceInput

from .cca import LinearCCA
from .config import RunConfig
from .model import Discriminator, Generator, SequenceBatch, SequenceSpec, StructureSpec

#: What a method reads for one modality: pooled features, or pooled + sequence.
Inputs = "np.ndarray | SequenceInput"

PAIRS = (("audio", "sheet"), ("audio", "lyrics"), ("sheet", "lyrics"))


class Method:
    """A method's parameters and its map from features to the retrieval space.

    Parameters
    ----------
    config : RunConfig
    dims : dict
        Input dimension of each modality.
    stats : dict
        ``{modality: (mean, std)}`` of the training split (float32 arrays);
        with sequence inputs also ``{"<modality>:tokens": (mean, std)}`` over
        the valid positions.
    token_dims, max_lens : dict, optional
        Sequence inputs (``config.inputs == "aligned"``): token dimension and
        positions of each modality.
    """

    def __init__(self, config: RunConfig, dims: Mapping[str, int],
                 stats: Mapping[str, tuple[np.ndarray, np.ndarray]],
                 token_dims: Mapping[str, int] | None = None, max_lens: Mapping[str, int] | None = None,
                 structure_dims: Mapping[str, int] | None = None) -> None:
        self.config = config
        self.dims = dict(dims)
        self.structure_dims = {m: int(v) for m, v in (structure_dims or {}).items()}
        self.token_dims = {m: int(v) for m, v in (token_dims or {}).items()}
        self.max_lens = {m: int(v) for m, v in (max_lens or {}).items()}
        if config.inputs == "aligned" and set(self.token_dims) != set(MODALITIES):
            raise ValueError("inputs='aligned' needs the token dimension of every modality")
        self.stats = {m: (np.asarray(a, np.float32), np.asarray(b, np.float32)) for m, (a, b) in stats.items()}
        self.device = torch.device(config.device)
        self.generator: Generator | None = None
        self.discriminator: Discriminator | None = None
        self.ccas: dict[str, LinearCCA] = {}
        if config.trains:
            torch.manual_seed(config.seed)
            specs = self.sequence_specs()
            self.generator = Generator(self.dims, config.embed_dim, config.g_hidden, config.dropout,
                                       config.normalize_embeddings, config.g_skip, specs,
                                       self.structure_specs()).to(self.device)
            self.discriminator = Discriminator(self.dims, config.embed_dim, specs, config.dropout).to(self.device)

    def sequence_specs(self) -> dict[str, SequenceSpec] | None:
        """Each modality's sequence encoder shape (None for the paper's pooled inputs)."""
        cfg = self.config
        if cfg.inputs != "aligned":
            return None
        return {m: SequenceSpec(self.token_dims[m], self.max_lens[m], cfg.seq_width, cfg.seq_layers,
                                cfg.seq_heads, cfg.seq_position_dim) for m in MODALITIES}

    def structure_specs(self) -> dict[str, StructureSpec] | None:
        """G's structure block for each modality (None: no block; paper inputs never have one)."""
        cfg = self.config
        if cfg.inputs != "aligned" or cfg.structure_dim <= 0:
            return None
        if set(self.structure_dims) != set(MODALITIES):
            raise ValueError("structure_dim needs the structure columns of every modality (features too old?)")
        return {m: StructureSpec(self.structure_dims[m], cfg.cca_positions, cfg.structure_dim,
                                 cfg.structure_weight, cfg.structure_hidden) for m in MODALITIES}

    # ---------------------------------------------------------------- inputs
    def normalize(self, modality: str, values: Inputs) -> Inputs:
        """Standardise with the training split's statistics (sequences: per token feature, padding stays 0)."""
        if isinstance(values, SequenceInput):
            max_len = self.max_lens.get(modality, values.tokens.shape[1])
            tokens = np.asarray(values.tokens[:, :max_len], dtype=np.float32)
            lengths = np.minimum(np.asarray(values.lengths), max_len)
            if self.config.normalize_inputs:
                mean, std = self.stats[f"{modality}:tokens"]
                tokens = (tokens - mean) / std
            out = SequenceInput(self.normalize(modality, values.pooled), tokens, lengths)
            out.tokens *= out.mask[..., None]
            return out
        values = np.asarray(values, dtype=np.float32)
        if not self.config.normalize_inputs:
            return values
        mean, std = self.stats[modality]
        return (values - mean) / std

    def tensor(self, modality: str, values: Inputs) -> torch.Tensor | SequenceBatch:
        """Normalised inputs as torch tensors on the method's device."""
        v = self.normalize(modality, values)
        if isinstance(v, SequenceInput):
            def t(a: np.ndarray) -> torch.Tensor:
                return torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
            return SequenceBatch(t(v.pooled), t(v.tokens), t(v.mask))
        return torch.from_numpy(np.ascontiguousarray(v)).to(self.device)

    def flat(self, modality: str, values: Inputs, partner: str | None = None) -> np.ndarray:
        """Normalised inputs as one row per item (CCA): pooled ⊕ the first ``cca_positions`` tokens.

        Paired with lyrics, a row is only the tokens' structure columns
        (timing, spacing, written durations, stress, word position;
        ``structure_dims``): the 128-d content embeddings of every note would
        drown them in a linear CCA (validation: lyrics MedR/N 0.40 with whole
        tokens, 0.09–0.11 with structure only; docs/training.md).
        """
        v = self.normalize(modality, values)
        if not isinstance(v, SequenceInput):
            return v
        k = self.config.cca_positions
        tokens = v.tokens[:, :k]
        structure_only = "lyrics" in (modality, partner) and modality in self.structure_dims
        if structure_only:
            tokens = tokens[:, :, tokens.shape[2] - self.structure_dims[modality]:]
        if tokens.shape[1] < k:
            tokens = np.pad(tokens, ((0, 0), (0, k - tokens.shape[1]), (0, 0)))
        if structure_only:  # the pooled content vectors add noise there too (validation MedR/N 0.075 → 0.068)
            return tokens.reshape(len(tokens), -1)
        return np.concatenate([v.pooled, tokens.reshape(len(tokens), -1)], axis=1)

    # ---------------------------------------------------------------- output
    def fit_closed_form(self, features: FeatureSet) -> None:
        """Fit the methods without training (CCA: three pairwise CCAs on train)."""
        if self.config.method != "cca":
            return
        train = features.split("train") if np.any(features.splits == "train") else features
        kind = self.config.inputs
        cfg = self.config
        for a, b in PAIRS:
            components, reg = cfg.cca_components, cfg.cca_reg
            if kind == "aligned" and "lyrics" in (a, b):
                components = cfg.cca_lyrics_components or components
                reg = cfg.cca_lyrics_reg if cfg.cca_lyrics_reg >= 0 else reg
            cca = LinearCCA(min(components, cfg.embed_dim), reg)
            self.ccas[f"{a}|{b}"] = cca.fit(self.flat(a, train.input_of(a, kind), b),
                                            self.flat(b, train.input_of(b, kind), a))

    def _pad(self, v: np.ndarray) -> np.ndarray:
        e = self.config.embed_dim
        if v.shape[1] >= e:
            return v[:, :e].astype(np.float32)
        return np.concatenate([v, np.zeros((len(v), e - v.shape[1]), np.float32)], axis=1)

    @property
    def retrieval_net(self) -> "torch.nn.Module | None":
        """The network that maps items into the retrieval space (``config.retrieval_space``; None for CCA
        and random)."""
        return self.generator if self.config.retrieval_space == "generator" else self.discriminator

    @torch.no_grad()
    def embed_modality(self, modality: str, values: Inputs, partner: str | None = None,
                       chunk: int = 8192) -> np.ndarray:
        """Map raw features of one modality into the retrieval space, (N, embed_dim).

        ``values`` is what ``FeatureSet.input_of(modality, config.inputs)``
        gives (one pooled vector may be 1-D; a ``SequenceInput`` given to a
        run on pooled inputs is read as its pooled part).  ``partner`` matters only for CCA (one space per pair of
        modalities): the space ``modality`` shares with ``partner``.
        """
        if isinstance(values, SequenceInput) and self.config.inputs == "paper":
            values = values.pooled  # a run on pooled inputs reads only the pooled part of an item
        if not isinstance(values, SequenceInput):
            values = np.atleast_2d(np.asarray(values, dtype=np.float32))
            if self.config.inputs == "aligned" and self.config.method not in ("random",):
                raise ValueError(f"this run reads sequences (inputs='aligned'); {modality} was given as "
                                 "pooled vectors only")
        n = len(values)
        method = self.config.method
        if method == "random":
            # Random but reproducible per (seed, modality, N): the analytic baseline.
            seed = zlib.crc32(f"{self.config.seed}|{modality}|{n}".encode())
            return np.random.default_rng(seed).standard_normal((n, self.config.embed_dim)).astype(np.float32)
        if method == "cca":
            if partner is None:
                partner = "sheet" if modality == "audio" else "audio"
            key = f"{modality}|{partner}" if f"{modality}|{partner}" in self.ccas else f"{partner}|{modality}"
            cca = self.ccas[key]
            x = self.flat(modality, values, partner)
            proj = cca.transform_x(x) if key.startswith(modality + "|") else cca.transform_y(x)
            # Weight each canonical component by its correlation (standard for CCA retrieval).
            return self._pad(proj * cca.correlations_.astype(np.float32))
        net = self.retrieval_net
        assert net is not None
        was_training = net.training
        net.eval()
        out = []
        chunk = chunk if self.config.inputs == "paper" else 1024  # transformer activations
        for start in range(0, n, chunk):
            out.append(net(modality, self.tensor(modality, values[start:start + chunk])).float().cpu().numpy())
        net.train(was_training)
        return np.concatenate(out) if out else np.zeros((0, self.config.embed_dim), np.float32)

    def embed(self, features: FeatureSet) -> dict[str, np.ndarray]:
        """Retrieval-space vectors of every sample: ``{"audio", "sheet", "lyrics"}`` (N, E).

        For CCA also the pair-specific views ``"A@B"`` (see model.search.evaluation).
        """
        kind = self.config.inputs
        out = {m: self.embed_modality(m, features.input_of(m, kind)) for m in MODALITIES}
        if self.config.method == "cca":
            for a, b in PAIRS:
                out[f"{a}@{b}"] = self.embed_modality(a, features.input_of(a, kind), b)
                out[f"{b}@{a}"] = self.embed_modality(b, features.input_of(b, kind), a)
            out["lyrics"] = out["lyrics@audio"]
        return out

    # ----------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        """Plain tensors only (no pickled objects), for ``torch.save``."""
        st: dict[str, Any] = {"dims": dict(self.dims), "token_dims": dict(self.token_dims),
                              "max_lens": dict(self.max_lens), "structure_dims": dict(self.structure_dims),
                              "stats": {m: [torch.from_numpy(a), torch.from_numpy(b)] for m, (a, b) in self.stats.items()}}
        if self.generator is not None:
            st["generator"] = {k: v.detach().cpu().clone() for k, v in self.generator.state_dict().items()}
        if self.discriminator is not None:
            st["discriminator"] = {k: v.detach().cpu().clone() for k, v in self.discriminator.state_dict().items()}
        if self.ccas:
            st["ccas"] = {k: {n: torch.from_numpy(np.asarray(v)) for n, v in c.state().items()} for k, c in self.ccas.items()}
        return st

    def load_state(self, st: Mapping[str, Any]) -> None:
        if self.generator is not None and "generator" in st:
            self.generator.load_state_dict(st["generator"])
        if self.discriminator is not None and "discriminator" in st:
            self.discriminator.load_state_dict(st["discriminator"])
        if "ccas" in st:
            self.ccas = {k: LinearCCA.from_state({n: v.numpy() for n, v in c.items()}) for k, c in st["ccas"].items()}


def _mean_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = values.astype(np.float64)
    return values.mean(0).astype(np.float32), np.maximum(values.std(0), 1e-6).astype(np.float32)


def train_statistics(features: FeatureSet, inputs: str = "paper") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Mean and std (floored at 1e-6) of each modality on the training split.

    With ``inputs="aligned"`` also of each token feature over the valid
    positions (``"<modality>:tokens"``).
    """
    train = features.split("train") if np.any(features.splits == "train") else features
    stats = {m: _mean_std(train.modality(m)) for m in MODALITIES}
    if inputs == "aligned":
        for m in MODALITIES:
            seq = train.input_of(m, "aligned")
            stats[f"{m}:tokens"] = _mean_std(np.asarray(seq.tokens[seq.mask], dtype=np.float32))
    return stats


def build_method(config: RunConfig, features: FeatureSet) -> Method:
    """A fresh method for ``config`` on ``features`` (closed-form methods fitted)."""
    dims = {m: int(features.modality(m).shape[1]) for m in MODALITIES}
    token_dims, max_lens = {}, {}
    if config.inputs == "aligned":
        for m in MODALITIES:
            seq = features.input_of(m, "aligned")
            token_dims[m], max_lens[m] = int(seq.tokens.shape[2]), int(seq.tokens.shape[1])
    structure = None
    if config.inputs == "aligned":
        from model.features.tokens.sequences import STRUCTURE_DIMS  # extractions before the field: the defaults
        structure = features.meta.get("structure_dims") or STRUCTURE_DIMS
    method = Method(config, dims, train_statistics(features, config.inputs), token_dims, max_lens, structure)
    method.fit_closed_form(features)
    return method


def method_from_state(config: RunConfig, state: Mapping[str, Any]) -> Method:
    """Rebuild a method from :meth:`Method.state` (no features needed)."""
    stats = {m: (v[0].numpy(), v[1].numpy()) for m, v in state["stats"].items()}
    method = Method(config, state["dims"], stats, state.get("token_dims"), state.get("max_lens"),
                    state.get("structure_dims"))
    method.load_state(state)
    return method
