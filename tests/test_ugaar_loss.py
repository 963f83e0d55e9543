"""Each equation of model.ugaar.loss against a hand computation on tiny tensors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model.ugaar import loss as L
from model.ugaar.cca import LinearCCA, ground_truth_pairs

T = torch.tensor


def test_teacher_student_kl_eq1_2():
    teacher = T([[0.0, math.log(3.0)]])  # softmax → [0.25, 0.75]
    student = T([[0.0, 0.0]])            # softmax → [0.5, 0.5]
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert L.teacher_student_kl(teacher, student).item() == pytest.approx(expected, abs=1e-6)
    # temperature 2: teacher softmax [1, √3] / (1 + √3)
    p1 = 1 / (1 + math.sqrt(3))
    p2 = 1 - p1
    expected_t = p1 * math.log(p1 / 0.5) + p2 * math.log(p2 / 0.5)
    assert L.teacher_student_kl(teacher, student, temperature=2.0).item() == pytest.approx(expected_t, abs=1e-6)
    assert L.teacher_student_kl(student, student).item() == pytest.approx(0.0, abs=1e-7)


def test_teacher_gets_no_gradient_when_detached():
    teacher = T([[0.3, -0.2]], requires_grad=True)
    student = T([[0.0, 0.1]], requires_grad=True)
    L.teacher_student_kl(teacher, student, detach_teacher=True).backward()
    assert teacher.grad is None and student.grad is not None
    teacher2 = T([[0.3, -0.2]], requires_grad=True)
    L.teacher_student_kl(teacher2, student, detach_teacher=False).backward()
    assert teacher2.grad is not None and teacher2.grad.abs().sum() > 0


def test_pair_embedding_eq4():
    assert torch.equal(L.pair_embedding(T([[2.0, 0.0]]), T([[0.0, 4.0]])), T([[1.0, 2.0]]))


def test_generative_probability_eq3():
    h = T([[0.0, 0.0]])
    pairs = T([[1.0, 0.0], [0.0, 2.0]])
    assert torch.allclose(L.generative_logits(h, pairs), T([[-1.0, -4.0]]))
    assert torch.allclose(L.generative_logits(h, pairs, temperature=0.5), T([[-2.0, -8.0]]))
    p = L.generative_probability(h, pairs)
    e1, e4 = math.exp(-1), math.exp(-4)
    assert p[0, 0].item() == pytest.approx(e1 / (e1 + e4), abs=1e-6)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-6)
    nll = L.generative_nll(L.generative_logits(h, pairs), torch.tensor([1]))
    assert nll.item() == pytest.approx(-math.log(e4 / (e1 + e4)), abs=1e-5)


def test_info_nce_hand():
    a = T([[0.0], [1.0]])
    b = T([[0.0], [1.0]])
    # logits −d/T with T=1: [[0, −1], [−1, 0]]; each row's CE = log(1 + e^−1)
    assert L.info_nce(a, b, temperature=1.0).item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)


def test_policy_gradient_eq8_9():
    log_p = T([[math.log(0.5), math.log(0.25)]], requires_grad=True)
    reward = T([[1.0, 0.0]])
    loss = L.policy_gradient_loss(log_p, reward, baseline=True)  # advantages [0.5, −0.5]
    expected = -(math.log(0.5) * 0.5 + math.log(0.25) * -0.5) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    loss.backward()
    # raising the log-probability of the rewarded sample lowers the loss
    assert log_p.grad[0, 0] < 0 < log_p.grad[0, 1]
    weighted = L.policy_gradient_loss(log_p.detach(), reward, weight=T([[2.0, 1.0]]), baseline=False)
    assert weighted.item() == pytest.approx(-(math.log(0.5) * 2.0) / 2, abs=1e-6)


def test_rewards():
    assert L.irgan_reward(T(0.0)).item() == pytest.approx(0.0)
    assert L.irgan_reward(T(math.log(3.0))).item() == pytest.approx(0.5, abs=1e-6)  # σ = 0.75
    assert L.softplus_reward(T(0.0)).item() == pytest.approx(math.log(2.0), abs=1e-6)


def test_theta_eq6_and_pair_representation():
    w = T([[1.0, 0.0], [0.0, 2.0]])
    b = T([0.0, 1.0])
    out = L.theta(w, b, T([[1.0, 1.0]]))
    assert torch.allclose(out, T([[math.tanh(1.0), math.tanh(3.0)]]))
    assert torch.allclose(L.pair_representation(T([[1.0, 0.0]]), T([[0.0, 1.0]])), T([[0.5, 0.5]]))


def test_relevance_and_discriminator_probability_eq7():
    r = L.relevance_score(T([[1.0, 0.0]]), T([[0.0, 0.0]]))
    assert r.item() == pytest.approx(-1.0)
    assert L.discriminator_probability(r, 1.0).item() == pytest.approx(0.5)
    assert L.discriminator_probability(T(0.0)).item() == pytest.approx(0.5)
    assert L.discriminator_probability(T(2.0)).item() == pytest.approx(1 / (1 + math.exp(-2)), abs=1e-6)


def test_margin_eq5():
    q = T([[0.0, 0.0]])
    true = T([[1.0, 0.0]])                     # ‖q − p^T‖² = 1
    assert L.margin_loss(q, true, T([[0.0, 0.5]]), alpha=1.0).item() == pytest.approx(1.75)
    assert L.margin_loss(q, true, T([[3.0, 0.0]]), alpha=1.0).item() == pytest.approx(0.0)
    # several generated pairs per query: mean over them
    gen = T([[[0.0, 0.5], [3.0, 0.0]]])
    assert L.margin_loss(q, true, gen, alpha=1.0).item() == pytest.approx(0.875)


def test_discriminator_bce():
    assert L.discriminator_bce(T([0.0]), T([0.0])).item() == pytest.approx(2 * math.log(2), abs=1e-6)
    low = L.discriminator_bce(T([10.0]), T([[-10.0, -10.0]])).item()
    assert low < 1e-3


def test_triplet_losses():
    anchor, pos = T([[0.0, 0.0]]), T([[1.0, 0.0]])
    negs = T([[[2.0, 0.0], [0.0, 0.5]]])  # hinges: max(0, 1+1−4)=0, max(0, 1+1−0.25)=1.75
    assert L.triplet_loss(anchor, pos, negs, alpha=1.0).item() == pytest.approx(0.875)
    a = T([[0.0], [3.0]])
    p = T([[0.5], [3.0]])
    # row 0: d_pos 0.25, d_neg (to 3) 9 → 0; row 1: d_pos 0, d_neg (to 0.5) 6.25 → 0
    assert L.in_batch_triplet(a, p).item() == pytest.approx(0.0)
    p2 = T([[2.5], [0.5]])  # row 0: 1 + 6.25 − 0.25 = 7; row 1: 1 + 6.25 − 0.25 = 7
    assert L.in_batch_triplet(a, p2).item() == pytest.approx(7.0)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_linear_cca_matches_sklearn_correlations():
    from sklearn.cross_decomposition import CCA

    rng = np.random.default_rng(0)
    z = rng.standard_normal((400, 2))
    x = np.c_[z, rng.standard_normal((400, 3))] @ rng.standard_normal((5, 5))
    y = np.c_[z + 0.3 * rng.standard_normal((400, 2)), rng.standard_normal((400, 2))] @ rng.standard_normal((4, 4))
    ours = LinearCCA(2, reg=0.0).fit(x, y)
    xs, ys = CCA(n_components=2, max_iter=2000, tol=1e-10).fit(x, y).transform(x, y)
    sk = [abs(np.corrcoef(xs[:, i], ys[:, i])[0, 1]) for i in range(2)]
    assert np.allclose(ours.correlations_, sk, atol=1e-3)
    a, b = ours.transform_x(x), ours.transform_y(y)
    emp = [np.corrcoef(a[:, i], b[:, i])[0, 1] for i in range(2)]
    assert np.allclose(emp, ours.correlations_, atol=1e-3)


def test_ground_truth_pairs_own_sheet_first():
    rng = np.random.default_rng(1)
    audio = rng.standard_normal((50, 8)).astype(np.float32)
    sheet = (audio @ rng.standard_normal((8, 8)) + 0.1 * rng.standard_normal((50, 8))).astype(np.float32)
    gt = ground_truth_pairs(audio, sheet, k=5, n_components=4)
    assert gt.shape == (50, 5)
    assert np.array_equal(gt[:, 0], np.arange(50))
    assert all(len(set(row)) == 5 for row in gt)
