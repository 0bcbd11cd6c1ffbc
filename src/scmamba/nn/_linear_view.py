"""A layer's classic linear reduction (RNA PCA, ATAC LSI, protein CLR-PCA) computed from raw counts, in a module.

Why by hand: the reductions are scanpy's / Signac's recipes, but the encoders need them per minibatch, on the
non-zeros of raw counts (:class:`~scmamba.nn.SparseRows`), on the model's device, saved with its weights and
applied to query cells exactly as to the training cells; no library offers a fitted PCA as a torch module.
"""

from __future__ import annotations

import torch
from torch import nn

from ._sparse import SparseRows

__all__ = ["LinearView", "view_values"]

TARGET_SUM = 1e4


def view_values(x: SparseRows, kind: str, idf: torch.Tensor | None = None) -> SparseRows:
    """Raw counts -> the values the reduction of ``kind`` projects (sparse; zeros stay zero).

    ``'rna'``: scanpy's ``normalize_total(1e4)`` + ``log1p``; ``'atac'``: TF-IDF of presence, ``log1p(tf * idf *
    1e4)`` (Signac / muon's LSI); ``'protein'``: ``log1p`` of counts (its per-cell centring, CLR, is done on the
    projection, where it is one rank-one term).
    """
    if kind == "rna":
        total = x.row_sums().clamp_min(1e-12)
        return x.with_values(torch.log1p(x.values * (TARGET_SUM / total[x.rows])))
    if kind == "atac":
        ones = torch.ones_like(x.values)
        n_open = x.with_values(ones).row_sums().clamp_min(1.0)
        return x.with_values(torch.log1p(ones / n_open[x.rows] * idf[x.cols] * TARGET_SUM))
    return x.with_values(torch.log1p(x.values))


class LinearView(nn.Module):
    """Fixed linear reduction of one layer, fitted on the training cells when the model is built.

    ``forward`` gives ``(values - center) @ components / scale`` for the values of :func:`view_values` (protein:
    each cell's values centred on their mean over all proteins first, the CLR), ``(cells, n_components)``, about unit
    total variance over the training cells. Every tensor is a buffer: saved with the model, never trained.
    """

    def __init__(self, kind: str, components: torch.Tensor, center: torch.Tensor, scale: float, idf=None):
        super().__init__()
        self.kind = kind
        self.register_buffer("components", torch.as_tensor(components, dtype=torch.float32))  # (features, k)
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float32))  # (features,)
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("idf", torch.as_tensor(idf if idf is not None else center * 0, dtype=torch.float32))

    @property
    def n_components(self) -> int:
        return int(self.components.shape[1])

    def forward(self, x: SparseRows) -> torch.Tensor:
        """Raw counts of the registered features (registered column order) -> ``(cells, n_components)``."""
        v = view_values(x, self.kind, self.idf)
        comps = self.components
        out = v.values.new_zeros(v.n_rows, comps.shape[1])
        out.index_add_(0, v.rows, v.values[:, None] * comps[v.cols])
        if self.kind == "protein":  # CLR: subtract each cell's mean log1p over all proteins (zeros included)
            cell_mean = v.row_sums() / v.n_cols
            out = out - cell_mean[:, None] * comps.sum(0)[None, :]
        out = out - (self.center @ comps)[None, :]
        return out / self.scale
