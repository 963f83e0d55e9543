"""The paper's equations, one named function each (method.md §3).

All functions are pure torch on batched tensors; each has a unit test against
a hand computation on tiny tensors (``tests/test_ugaar_loss.py``).

Shapes: ``B`` queries, ``C`` candidate pairs, ``S`` samples per query,
``E`` embedding dimension.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


# ---------------------------------------------------------------- generator
def teacher_student_kl(teacher: torch.Tensor, student: torch.Tensor, temperature: float = 1.0,
                       detach_teacher: bool = True) -> torch.Tensor:
    """Eq. 1–2: KL(softmax(teacher / T) ‖ softmax(student / T)), mean over the batch.

    Each embedding is read as a distribution over its E dimensions.  The
    lyrics embedding H(z) is the teacher, F(x) or G(y) the student.

    Parameters
    ----------
    teacher, student : (B, E)
    temperature : float
    detach_teacher : bool
        Stop the gradient into the teacher (a teacher is not taught).

    Returns
    -------
    torch.Tensor, scalar
    """
    if detach_teacher:
        teacher = teacher.detach()
    log_p = F.log_softmax(teacher / temperature, dim=-1)
    log_q = F.log_softmax(student / temperature, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1).mean()


def pair_embedding(audio: torch.Tensor, sheet: torch.Tensor) -> torch.Tensor:
    """Eq. 4: J(x, y) = ½ (F(x) + G(y))."""
    return 0.5 * (audio + sheet)


def squared_distances(query: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """‖q_b − v_c‖² for every query b and item c: (B, E), (C, E) → (B, C).

    Computed as ‖q‖² + ‖v‖² − 2 q·v (one matrix product), clamped at 0.
    """
    sq = query.pow(2).sum(-1, keepdim=True) + items.pow(2).sum(-1).unsqueeze(0)
    return (sq - 2.0 * query @ items.t()).clamp_min(0.0)


def generative_logits(lyrics: torch.Tensor, pairs: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Eq. 3's exponent: −‖H(z) − J(x, y)‖² / T for every query and candidate pair.

    Parameters
    ----------
    lyrics : (B, E) H(z)
    pairs : (C, E) J(x, y) of the candidate pairs
    temperature : float
        T = 1 is the paper's eq. 3; IRGAN uses ≈ 0.2.

    Returns
    -------
    (B, C) logits
    """
    return -squared_distances(lyrics, pairs) / temperature


def generative_probability(lyrics: torch.Tensor, pairs: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Eq. 3: p_θ(J | z), softmax over the candidate pairs, (B, C)."""
    return torch.softmax(generative_logits(lyrics, pairs, temperature), dim=-1)


def generative_nll(logits: torch.Tensor, true_index: torch.Tensor) -> torch.Tensor:
    """−log p_θ(J_true | z), mean over queries: eq. 3 fitted to the ground truth.

    Parameters
    ----------
    logits : (B, C) from :func:`generative_logits`
    true_index : (B,) long, the candidate that is the query's true pair
    """
    return F.cross_entropy(logits, true_index)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.1,
             rows: slice | None = None) -> torch.Tensor:
    """Symmetric InfoNCE between row-aligned a_i ↔ b_i with the batch as negatives.

    Used as the audio–sheet alignment term on F(x), G(y) (a departure from
    the paper, see docs/training.md): logits −‖a_i − b_j‖² / T.

    Parameters
    ----------
    a, b : (B, E)
        The whole batch (under DDP: gathered from every rank, so every rank's
        rows are each other's negatives).
    temperature : float
    rows : slice, optional
        Only these rows' terms (a rank's share of the batch), both
        directions: a_i against all b, b_i against all a.  Their mean is
        returned.  Default: every row.
    """
    if rows is None:
        logits = -squared_distances(a, b) / temperature
        target = torch.arange(a.shape[0], device=a.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
    target = torch.arange(a.shape[0], device=a.device)[rows]
    logits_ab = -squared_distances(a[rows], b) / temperature
    logits_ba = -squared_distances(b[rows], a) / temperature
    return 0.5 * (F.cross_entropy(logits_ab, target) + F.cross_entropy(logits_ba, target))


def policy_gradient_loss(log_prob: torch.Tensor, reward: torch.Tensor, weight: torch.Tensor | None = None,
                         baseline: bool = True) -> torch.Tensor:
    """Eq. 8–9 for G (REINFORCE, as in IRGAN): −E[w · log p_θ(p | q) · (R − b)].

    Parameters
    ----------
    log_prob : (B, S) log p_θ of the sampled pairs (differentiable)
    reward : (B, S) D's reward for them (no gradient)
    weight : (B, S) importance weights p_θ / q (no gradient), or None
    baseline : bool
        Subtract the mean reward b (variance reduction).
    """
    advantage = reward.detach()
    if baseline:
        advantage = advantage - advantage.mean()
    if weight is not None:
        advantage = advantage * weight.detach()
    return -(log_prob * advantage).mean()


def irgan_reward(score: torch.Tensor) -> torch.Tensor:
    """IRGAN's reward 2 (σ(s) − 0.5) ∈ (−1, 1) from D's logit s = r + b0."""
    return 2.0 * (torch.sigmoid(score) - 0.5)


def softplus_reward(relevance: torch.Tensor) -> torch.Tensor:
    """method.md's reward log(1 + exp(r(p, q)))."""
    return F.softplus(relevance)


# ------------------------------------------------------------ discriminator
def theta(weight: torch.Tensor, bias: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Eq. 6: Θ(v) = tanh(W v + b) for row vectors v, W of shape (E, D_in)."""
    return torch.tanh(v @ weight.t() + bias)


def pair_representation(theta_audio: torch.Tensor, theta_sheet: torch.Tensor) -> torch.Tensor:
    """D's pair representation Θ(p) = ½ (Θ_a(x) + Θ_s(y))."""
    return 0.5 * (theta_audio + theta_sheet)


def relevance_score(theta_query: torch.Tensor, theta_pair: torch.Tensor) -> torch.Tensor:
    """r(p, q) = −‖Θ_l(q) − Θ(p)‖², row-wise: (..., E), (..., E) → (...)."""
    return -(theta_query - theta_pair).pow(2).sum(-1)


def discriminator_probability(relevance: torch.Tensor, bias: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Eq. 7: D(p | q) = σ(r(p, q) + b0)."""
    return torch.sigmoid(relevance + bias)


def margin_loss(theta_query: torch.Tensor, theta_true: torch.Tensor, theta_generated: torch.Tensor,
                alpha: float = 1.0) -> torch.Tensor:
    """Eq. 5: max(0, α + ‖Θ(q) − Θ(p^T)‖² − ‖Θ(q) − Θ(p^G)‖²), mean.

    ``theta_query`` (B, E) broadcasts against ``theta_true`` / ``theta_generated``
    of shape (B, E) or (B, S, E).
    """
    if theta_generated.dim() == theta_query.dim() + 1:
        theta_query_g = theta_query.unsqueeze(1)
    else:
        theta_query_g = theta_query
    d_true = -relevance_score(theta_query, theta_true)
    d_gen = -relevance_score(theta_query_g, theta_generated)
    if d_gen.dim() > d_true.dim():
        d_true = d_true.unsqueeze(-1)
    return torch.clamp(alpha + d_true - d_gen, min=0.0).mean()


def discriminator_bce(score_true: torch.Tensor, score_generated: torch.Tensor) -> torch.Tensor:
    """D's side of eq. 8–9 as a loss: BCE with true → 1, generated → 0.

    Scores are logits r + b0; the two halves are averaged separately and
    summed, so the number of generated samples per query does not reweight them.
    """
    loss_true = F.binary_cross_entropy_with_logits(score_true, torch.ones_like(score_true))
    loss_gen = F.binary_cross_entropy_with_logits(score_generated, torch.zeros_like(score_generated))
    return loss_true + loss_gen


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor,
                 alpha: float = 1.0) -> torch.Tensor:
    """Baseline's triplet loss: mean of max(0, α + ‖a − p‖² − ‖a − n‖²).

    Parameters
    ----------
    anchor, positive : (B, E)
    negatives : (B, K, E) random negatives per anchor
    """
    d_pos = (anchor - positive).pow(2).sum(-1, keepdim=True)
    d_neg = (anchor.unsqueeze(1) - negatives).pow(2).sum(-1)
    return torch.clamp(alpha + d_pos - d_neg, min=0.0).mean()


def in_batch_triplet(anchor: torch.Tensor, positive: torch.Tensor, alpha: float = 1.0,
                     offset: int = 0) -> torch.Tensor:
    """:func:`triplet_loss` with every other row of the batch as a negative.

    Parameters
    ----------
    anchor : (A, E)
        Rows ``offset … offset + A`` of the batch (all B rows, or under DDP
        one rank's share); the mean is over these anchors' terms.
    positive : (B, E)
        Every row of the batch (under DDP: gathered from every rank).
    alpha : float
    offset : int
        Batch row of ``anchor[0]``: anchor i's positive is ``positive[offset + i]``.
    """
    b = positive.shape[0]
    if b < 2:
        return anchor.new_zeros(())
    d = squared_distances(anchor, positive)  # (A, B)
    own = torch.arange(anchor.shape[0], device=anchor.device)
    d_pos = d[own, own + offset].unsqueeze(1)
    off = torch.ones_like(d, dtype=torch.bool)
    off[own, own + offset] = False
    hinge = torch.clamp(alpha + d_pos - d, min=0.0)
    return hinge[off].mean()
