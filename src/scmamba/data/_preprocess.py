"""Per-minibatch value encoding of raw counts (RNA/protein: relative-level bins; ATAC: presence).

These run on the dense minibatch the data loader yields, so the whole cells x features matrix is never
densified.
"""

from __future__ import annotations

import torch

__all__ = ["bin_relative_levels", "binarize", "encode_values", "normalize_log1p"]


def normalize_log1p(x: torch.Tensor, target_sum: float = 1e4) -> torch.Tensor:
    """Scale each cell to ``target_sum`` total counts, then ``log1p`` (cells with no counts stay zero)."""
    total = x.sum(dim=-1, keepdim=True)
    return torch.log1p(x * (target_sum / total.clamp_min(1e-12)))


def binarize(x: torch.Tensor) -> torch.Tensor:
    """1 where a feature has any count, else 0."""
    return (x > 0).to(x.dtype)


def bin_relative_levels(x: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Bin each cell's non-zero values by their quantile within that cell, scaled to ``(0, 1]``.

    Zero stays 0; non-zero values get bins ``1 .. n_bins - 1`` from ``n_bins - 1`` per-cell quantile edges of
    the cell's non-zero values (as in scGPT / scMamba), returned as ``bin / (n_bins - 1)``. Only the rank of a
    value within its cell matters, so binning raw counts or normalised log counts gives the same result.
    """
    if n_bins < 2:
        raise ValueError(f"n_bins must be at least 2, got {n_bins}.")
    n_features = x.shape[-1]
    n_nonzero = (x > 0).sum(dim=-1, keepdim=True)  # (cells, 1)
    sorted_x = torch.sort(x, dim=-1).values  # zeros first
    q = torch.linspace(0, 1, n_bins - 1, device=x.device)
    # nearest-rank quantiles of the non-zero values, which occupy the last n_nonzero sorted positions
    pos = n_features - n_nonzero + torch.floor(q * (n_nonzero - 1).clamp_min(0)).long()
    edges = torch.gather(sorted_x, -1, pos.clamp(0, n_features - 1)).contiguous()
    bins = torch.searchsorted(edges, x.contiguous(), right=True).clamp(1, n_bins - 1)
    return torch.where(x > 0, bins.to(x.dtype) / (n_bins - 1), torch.zeros_like(x))


def encode_values(x: torch.Tensor, modality: str, n_bins: int | None) -> torch.Tensor:
    """Encode raw counts of one modality as the model's input values.

    ``'atac'``: presence/absence. ``'rna'``: relative-level bins (``n_bins``), or normalised ``log1p`` values when
    ``n_bins`` is ``None``. ``'protein'``: relative-level bins, or ``log1p`` of raw counts when ``n_bins`` is ``None``.
    """
    if modality == "atac":
        return binarize(x)
    if n_bins is not None:
        return bin_relative_levels(x, n_bins)
    if modality == "rna":
        return normalize_log1p(x)
    return torch.log1p(x)
