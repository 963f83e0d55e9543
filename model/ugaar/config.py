"""One typed configuration per run: :class:`RunConfig`.

Every method of the paper (Random, CCA, Baseline, Baseline-GAN, UGAAR) is a
configuration of the same trainer: each loss term has a switch (``use_*``)
and a weight (``w_*``).  :func:`RunConfig.for_method` returns the preset of a
method; any field can then be overridden.  The config is saved as JSON in the
run folder and inside every checkpoint and result file.

See ``docs/training.md`` for what each term does and which defaults were
chosen on the validation split.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METHODS = ("random", "cca", "baseline", "baseline-gan", "ugaar")

# Changes to a method's preset when it reads sequences (inputs="aligned"),
# selected on the validation split (docs/training.md, "Syllable-level alignment").
ALIGNED_PRESET: dict[str, dict[str, Any]] = {
    # cosine: the lyrics pairs' canonical directions differ in scale across items (validation lyrics
    # MedR/N 0.140 Euclidean, 0.082 cosine; a↔s R@1 93.6 → 94.3 %)
    "cca": {"cca_reg": 1e-2, "cca_lyrics_components": 24, "cca_lyrics_reg": 0.1, "metric": "cosine"},
    "baseline": {"lr_d": 3e-3, "epochs": 10},
    # the adversarial methods encode G's candidates and D's samples too: a smaller pool keeps
    # an epoch near a minute on 2 CPU cores
    "baseline-gan": {"lr_d": 3e-3, "lr_g": 3e-3, "candidates": 64, "n_samples": 2, "epochs": 5},
    # the structure block and knn 1: validation lyrics MedR/N 0.384 → 0.105, a↔s R@1 76 → 90 % (5 epochs;
    # docs/training.md, "Third round"); the curve still fell at epoch 8
    "ugaar": {"lr_d": 3e-3, "lr_g": 3e-3, "candidates": 64, "n_samples": 2, "w_gen_nll": 4.0,
              "gen_nll_symmetric": True, "epochs": 8, "structure_dim": 32, "structure_weight": 0.2, "knn": 1},
}

# Loss terms of the generator (G: mapping networks F, G, H) and of the
# discriminator (D: projections Θ_a, Θ_s, Θ_l and the bias b0).
G_TERMS = ("kl", "policy", "gen_nll", "align")
D_TERMS = ("bce", "margin", "triplet")


@dataclass
class RunConfig:
    """Configuration of one training run.

    Parameters
    ----------
    method : str
        ``random``, ``cca``, ``baseline``, ``baseline-gan`` or ``ugaar``.
    inputs : str
        ``paper``: the mean-pooled features of the paper (method.md §2);
        ``aligned``: those plus the per-position sequences (syllables, audio
        onsets, sheet notes), read by a small transformer per modality in F,
        G, H and in D's Θ, and flattened position-wise for CCA
        (docs/training.md, "Syllable-level alignment").
    seq_width, seq_layers, seq_heads, seq_position_dim : int
        Sequence encoders (``inputs="aligned"``): model width, transformer
        layers, attention heads, per-position summary size.
    structure_dim, structure_weight, structure_hidden : int, float, int
        The structure block of G's common space (``inputs="aligned"``; 0: none).
        Audio and sheet embeddings get a block of ``structure_dim`` dimensions
        read from their tokens' structure columns only, holding
        ``structure_weight`` of the unit norm; the lyrics embedding H lives in
        that block alone (docs/training.md, "Third round").
    audio_onset_noise : float
        Training augmentation of the audio token sequences
        (``inputs="aligned"``): each epoch, each training item loses one
        token or gains a duplicate one with this probability, as an onset
        detector's miss or false alarm shifts the positions after it
        (``model.ugaar.onset_noise``; 0: off).
    cca_positions : int
        Positions of each sequence flattened into the CCA baseline's input
        (``inputs="aligned"``).
    cca_reg : float
        Ridge of the CCA baseline's covariances, relative to their mean
        diagonal (flattened sequences need more than pooled vectors).
    cca_lyrics_components, cca_lyrics_reg : int, float
        The same for the CCA baseline's two lyrics pairs on aligned inputs
        (0 and a negative value: as ``cca_components`` and ``cca_reg``).
        Their position-wise structure columns carry a handful of canonical
        directions; more components add noise (validation, docs/training.md).
    seed : int
        Seeds torch, numpy and Python's ``random`` (per step, so a resumed run
        continues the same curve).
    epochs, batch_size : int
        Passes over the training split; queries per step (paper: 64).
    lr_g, lr_d : float
        Adam learning rates of the generator and the discriminator.
    weight_decay : float
        Adam weight decay of both networks.
    embed_dim : int
        Dimension of the common space (paper: 128).
    g_hidden : tuple of int
        Hidden layer widths of each mapping network F, G, H.
    dropout : float
        Dropout in the mapping networks.
    g_skip : bool
        Add a linear skip connection to each mapping network (out = A v + MLP(v)).
    normalize_embeddings : bool
        L2-normalise F, G, H outputs (retrieval then ranks by Euclidean distance
        on unit vectors, i.e. by cosine).
    normalize_inputs : bool
        Standardise every feature with the training split's mean and std.
    temperature_kl : float
        Softmax temperature of the teacher–student KL (eq. 1–2).
    temperature_g : float
        Temperature of p_θ(J | z), the softmax over candidate pairs (eq. 3).
    temperature_align : float
        Temperature of the audio–sheet InfoNCE alignment term.
    knn : int
        Nearest sheets per audio in CCA space forming the ground truth (paper: 5).
    cca_components : int
        Components of the ground-truth CCA and of the CCA baseline.
    margin_alpha : float
        α of the margin term (eq. 5) and of the Baseline's triplet loss.
    use_kl, w_kl : teacher–student KL (eq. 1–2), generator.
    use_policy, w_policy : IRGAN policy gradient with D's reward (eq. 8–9), generator.
    use_gen_nll, w_gen_nll : −log p_θ(true pair | z) (eq. 3 trained with the ground
        truth), generator.
    gen_nll_symmetric : bool
        Also the reverse direction: each true pair J must pick its lyrics among
        the batch's lyrics (helps audio→lyrics and sheet→lyrics retrieval).
    use_align, w_align : audio–sheet InfoNCE on F(x), G(y), generator.
    use_bce, w_bce : D's binary cross-entropy, true vs generated pairs (eq. 7–9).
    use_margin, w_margin : margin between true and generated pairs (eq. 5).
    use_triplet, w_triplet : Baseline's triplet loss with random in-batch negatives.
    kl_detach_teacher : bool
        The lyrics teacher H(z) receives no gradient from the KL term.
    adversarial : bool
        D's negatives are sampled by G (Baseline-GAN, UGAAR); off: no G at all.
    d_exclude_true : bool
        D's generated negatives never include the query's own candidate pair.
    reward : str
        ``irgan``: 2(σ(s) − 0.5); ``softplus``: log(1 + exp(r)) (method.md).
    reward_baseline : bool
        Subtract the mean reward of the batch (variance reduction).
    importance_mix : float
        λ of IRGAN's importance sampling: G's samples come from
        (1 − λ) p_θ + λ · (true pair), re-weighted by p_θ / q.
    candidates : int
        Candidate pool of p_θ per step: the batch's pairs plus random training
        pairs up to this size.
    n_samples : int
        Pairs sampled from p_θ per query in each D and G step.
    d_steps, g_steps : int
        D and G updates per round (one round per batch).
    retrieval_space : str
        ``generator`` (F, G, H) or ``discriminator`` (Θ_a, Θ_s, Θ_l).
    metric : str
        ``euclidean`` or ``cosine`` for validation and retrieval.
    grad_clip : float
        Global gradient-norm clip (0: off).
    select_on_val : bool
        Keep the epoch with the best validation score (never test) as ``best.pt``.
    threads : int
        ``torch.set_num_threads`` during training (0: leave as is).
    device : str
        ``cpu`` or ``cuda``.
    features_path : str
        The FeatureSet the run was trained on (recorded, used by ``resume``).
    log_every : int
        Emit a StepEvent every this many steps (1: every step).
    """

    method: str = "ugaar"
    inputs: str = "paper"
    seq_width: int = 64
    seq_layers: int = 2
    seq_heads: int = 4
    seq_position_dim: int = 8
    structure_dim: int = 0
    structure_weight: float = 0.5
    structure_hidden: int = 256
    audio_onset_noise: float = 0.0
    cca_positions: int = 20
    cca_reg: float = 1e-4
    cca_lyrics_components: int = 0
    cca_lyrics_reg: float = -1.0
    seed: int = 0
    epochs: int = 40
    batch_size: int = 64
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    weight_decay: float = 1e-5
    embed_dim: int = 128
    g_hidden: tuple[int, ...] = (512,)
    dropout: float = 0.1
    g_skip: bool = False
    normalize_embeddings: bool = True
    normalize_inputs: bool = True
    temperature_kl: float = 1.0
    temperature_g: float = 0.1
    temperature_align: float = 0.1
    knn: int = 5
    cca_components: int = 32
    margin_alpha: float = 1.0
    use_kl: bool = True
    w_kl: float = 1.0
    use_policy: bool = True
    w_policy: float = 1.0
    use_gen_nll: bool = True
    w_gen_nll: float = 1.0
    gen_nll_symmetric: bool = False
    use_align: bool = True
    w_align: float = 1.0
    use_bce: bool = True
    w_bce: float = 1.0
    use_margin: bool = True
    w_margin: float = 1.0
    use_triplet: bool = False
    w_triplet: float = 1.0
    kl_detach_teacher: bool = True
    adversarial: bool = True
    d_exclude_true: bool = True
    reward: str = "irgan"
    reward_baseline: bool = True
    importance_mix: float = 0.2
    candidates: int = 256
    n_samples: int = 4
    d_steps: int = 1
    g_steps: int = 1
    retrieval_space: str = "generator"
    metric: str = "euclidean"
    grad_clip: float = 5.0
    select_on_val: bool = True
    threads: int = 0
    device: str = "cpu"
    features_path: str = ""
    log_every: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.g_hidden = tuple(int(h) for h in self.g_hidden)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.inputs not in ("paper", "aligned"):
            raise ValueError(f"inputs must be 'paper' or 'aligned', got {self.inputs!r}")
        if self.seq_width % max(1, self.seq_heads):
            raise ValueError(f"seq_width ({self.seq_width}) must be a multiple of seq_heads ({self.seq_heads})")
        if self.reward not in ("irgan", "softplus"):
            raise ValueError(f"reward must be 'irgan' or 'softplus', got {self.reward!r}")
        if self.retrieval_space not in ("generator", "discriminator"):
            raise ValueError(f"retrieval_space must be 'generator' or 'discriminator', got {self.retrieval_space!r}")
        if self.metric not in ("euclidean", "cosine"):
            raise ValueError(f"metric must be 'euclidean' or 'cosine', got {self.metric!r}")
        for name in ("epochs", "batch_size", "embed_dim", "knn", "cca_components", "candidates",
                     "n_samples", "log_every", "seq_width", "seq_layers", "seq_heads", "seq_position_dim",
                     "cca_positions"):
            if getattr(self, name) < (0 if name == "epochs" else 1):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("temperature_kl", "temperature_g", "temperature_align"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.structure_dim < 0 or self.structure_dim >= self.embed_dim:
            raise ValueError(f"structure_dim must be in [0, embed_dim), got {self.structure_dim}")
        if not 0.0 < self.structure_weight < 1.0:
            raise ValueError(f"structure_weight must be in (0, 1), got {self.structure_weight}")
        if self.structure_dim and not self.normalize_embeddings:
            raise ValueError("structure_dim needs normalize_embeddings")
        if not 0.0 <= self.audio_onset_noise <= 1.0:
            raise ValueError(f"audio_onset_noise must be in [0, 1], got {self.audio_onset_noise}")
        if not 0.0 <= self.importance_mix < 1.0:
            raise ValueError(f"importance_mix must be in [0, 1), got {self.importance_mix}")

    # ------------------------------------------------------------------ presets
    @classmethod
    def for_method(cls, method: str, **overrides: Any) -> "RunConfig":
        """The preset of ``method`` with ``overrides`` applied.

        * ``random``: no training; random embeddings.
        * ``cca``: three pairwise scikit-learn CCAs, no training.
        * ``baseline``: D alone, triplet loss, no G, retrieval in D's space.
        * ``baseline-gan``: Baseline + G sampling D's negatives (BCE, margin,
          policy gradient); retrieval in D's space.
        * ``ugaar``: everything; retrieval in G's common space.
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        preset: dict[str, Any] = {"method": method}
        if method in ("random", "cca"):
            preset.update(epochs=0, adversarial=False)
        # Weights and scales below were selected on the validation split of the
        # LMD-full benchmark (docs/training.md, "Hyper-parameters").
        elif method == "baseline":
            preset.update(adversarial=False, use_kl=False, use_policy=False, use_gen_nll=False,
                          use_align=False, use_bce=False, use_margin=False, use_triplet=True,
                          retrieval_space="discriminator", margin_alpha=16.0)
        elif method == "baseline-gan":
            preset.update(adversarial=True, use_kl=False, use_policy=True, use_gen_nll=False,
                          use_align=False, use_bce=True, use_margin=True, use_triplet=True,
                          retrieval_space="discriminator", margin_alpha=16.0, w_bce=0.1, w_margin=0.1)
        else:  # ugaar
            preset.update(adversarial=True, use_kl=True, use_policy=True, use_gen_nll=True,
                          use_align=True, use_bce=True, use_margin=True, use_triplet=False,
                          retrieval_space="generator", temperature_align=0.05, w_align=2.0,
                          w_kl=0.1, w_policy=0.1)
        if overrides.get("inputs") == "aligned":
            preset.update(ALIGNED_PRESET.get(method, {}))
        preset.update(overrides)
        return cls(**preset)

    @property
    def trains(self) -> bool:
        """Whether the method has networks to optimise."""
        return self.method not in ("random", "cca")

    @property
    def uses_generator(self) -> bool:
        """Whether the mapping networks F, G, H exist in this run."""
        return self.trains and (self.adversarial or self.retrieval_space == "generator")

    # --------------------------------------------------------------- serialise
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["g_hidden"] = list(self.g_hidden)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"RunConfig: unknown fields {unknown}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)
