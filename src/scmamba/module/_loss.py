"""Contrastive objective: symmetric InfoNCE plus a cosine-similarity term on paired cell embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["contrastive_loss"]


def contrastive_loss(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    logit_scale: torch.Tensor,
    *,
    lambda_con: float = 1.0,
    lambda_sim: float = 1.0,
    same_group: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """CLIP-style loss for row-paired embeddings of two modalities.

    Parameters
    ----------
    z_a, z_b
        L2-normalised embeddings, ``(cells, dims)``; row ``i`` of both is the same cell.
    logit_scale
        ``1 / temperature`` (already exponentiated and clamped).
    lambda_con, lambda_sim
        Weights of the InfoNCE and cosine terms.
    same_group
        Optional ``(cells, cells)`` boolean matrix: negatives are only the cells of the same group (batch), so
        that what distinguishes groups cannot help the contrastive task.

    Returns
    -------
    ``loss`` (the weighted sum), ``infonce`` (mean of both directions), ``cosine`` (``1 - mean cos(a_i, b_i)``).
    """
    logits = logit_scale * z_a @ z_b.T
    if same_group is not None:
        logits = logits.masked_fill(~same_group, float("-inf"))
    target = torch.arange(z_a.shape[0], device=z_a.device)
    infonce = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    cosine = 1.0 - (z_a * z_b).sum(-1).mean()
    return {"loss": lambda_con * infonce + lambda_sim * cosine, "infonce": infonce, "cosine": cosine}
