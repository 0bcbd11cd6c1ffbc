"""The contrastive objective: symmetric InfoNCE and the cosine term, computed by hand on two and three cells."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from scmamba.module import contrastive_loss


def test_two_cells_by_hand():
    # cell 0: RNA (1, 0), ATAC (1, 0); cell 1: RNA (0, 1), ATAC (0.6, 0.8). Unit vectors, logit scale 2.
    z_a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z_b = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    out = contrastive_loss(z_a, z_b, torch.tensor(2.0), lambda_con=1.0, lambda_sim=0.5)
    # logits = 2 * a @ b.T = [[2, 1.2], [0, 1.6]]
    ce_a = 0.5 * ((math.log(math.exp(2) + math.exp(1.2)) - 2) + (math.log(1 + math.exp(1.6)) - 1.6))  # rows
    ce_b = 0.5 * ((math.log(math.exp(2) + 1) - 2) + (math.log(math.exp(1.2) + math.exp(1.6)) - 1.6))  # columns
    infonce = 0.5 * (ce_a + ce_b)
    cosine = 1 - (1.0 + 0.8) / 2
    assert out["infonce"].item() == pytest.approx(infonce, rel=1e-6)
    assert out["cosine"].item() == pytest.approx(cosine, rel=1e-6)
    assert out["loss"].item() == pytest.approx(infonce + 0.5 * cosine, rel=1e-6)


def test_perfect_pairs_beat_shuffled_pairs_and_gradients_flow():
    torch.manual_seed(0)
    z = F.normalize(torch.randn(3, 4), dim=1)
    scale = torch.tensor(10.0)
    matched = contrastive_loss(z, z.clone(), scale)
    shuffled = contrastive_loss(z, z[[1, 2, 0]], scale)
    assert matched["cosine"].item() == pytest.approx(0.0, abs=1e-6)
    assert matched["loss"] < shuffled["loss"] and matched["infonce"] < shuffled["infonce"]
    z_a = z.clone().requires_grad_()
    contrastive_loss(z_a, z[[1, 2, 0]], scale)["loss"].backward()
    assert z_a.grad is not None and z_a.grad.abs().sum() > 0
