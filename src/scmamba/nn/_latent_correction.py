"""A Harmony correction of the embedding that can be applied to cells it was not fitted on.

Harmony (Korsunsky et al., *Nat Methods* 2019) removes donor effects from an embedding locally: it clusters the cells
softly, and within each cluster regresses the embedding on the batch and subtracts each batch's offset. harmonypy
fits it but keeps only the corrected coordinates of the cells it was given; what it does not keep is the correction
as a function that new cells (query cells, cells embedded again after loading) can go through. This module is that
function, the way Symphony (Kang et al., *Nat Commun* 2021) maps query cells onto a Harmony reference: the clusters'
centroids, their bandwidths and each cluster's per-batch offsets (fitted by :func:`scmamba.model.fit_latent_correction`
from harmonypy's result), applied to a cell from its soft cluster memberships. Written by hand because neither
harmonypy nor scanpy keeps the fitted correction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Rounds of "assign to clusters, correct": Harmony assigns cells to clusters in the corrected space; starting from
#: the uncorrected embedding, two more rounds settle the memberships (the change after the third is < 1e-3).
CORRECTION_ROUNDS = 3


class LatentCorrection(nn.Module):
    """Per-cluster, per-batch offsets subtracted from unit-norm embeddings; the identity until fitted.

    Buffers (saved with the model's weights): ``centroids`` ``(clusters, latent)`` (unit norm), ``sigma``
    ``(clusters,)`` (Harmony's soft-clustering bandwidth) and ``offsets`` ``(clusters, batches, latent)``. A cell of
    batch ``b`` with embedding ``z`` gets the soft memberships ``r_k ∝ exp(-2 (1 - <z, centroid_k>) / sigma_k)`` and
    the corrected embedding ``normalize(z - sum_k r_k offsets[k, b])``; memberships are recomputed from the corrected
    embedding :data:`CORRECTION_ROUNDS` times, as Harmony clusters in the corrected space. Cells of a batch the
    correction was not fitted on (a batch added by a query) are left as they are.
    """

    def __init__(self, n_latent: int):
        super().__init__()
        self.register_buffer("centroids", torch.zeros(0, n_latent))
        self.register_buffer("sigma", torch.zeros(0))
        self.register_buffer("offsets", torch.zeros(0, 0, n_latent))

    @property
    def fitted(self) -> bool:
        """Whether a correction was fitted (otherwise :meth:`forward` returns its input)."""
        return self.centroids.shape[0] > 0

    def set(self, centroids: torch.Tensor, sigma: torch.Tensor, offsets: torch.Tensor) -> None:
        """Install a fitted correction (shapes as in the class docstring); an empty ``centroids`` removes it."""
        like = self.centroids
        self.centroids = torch.as_tensor(centroids, dtype=like.dtype, device=like.device).clone()
        self.sigma = torch.as_tensor(sigma, dtype=like.dtype, device=like.device).clone()
        self.offsets = torch.as_tensor(offsets, dtype=like.dtype, device=like.device).clone()

    def memberships(self, z: torch.Tensor) -> torch.Tensor:
        """Soft cluster memberships ``(cells, clusters)`` of unit-norm embeddings (Harmony's kernel, no penalty)."""
        distance = 2.0 * (1.0 - F.normalize(z, dim=-1) @ self.centroids.T)
        return torch.softmax(-distance / self.sigma, dim=-1)

    def forward(self, z: torch.Tensor, batch: torch.Tensor | None) -> torch.Tensor:
        """Corrected embeddings (unit norm) of ``z`` ``(cells, latent)`` from cells of batches ``batch`` ``(cells,)``.

        NaN rows (cells measured in none of the layers asked for) stay NaN; ``batch=None`` returns ``z``.
        """
        if not self.fitted or batch is None:
            return z
        batch = batch.reshape(-1).long()
        known = batch < self.offsets.shape[1]
        finite = torch.isfinite(z).all(-1)
        rows = known & finite
        if not bool(rows.any()):
            return z
        zs = z[rows].to(self.centroids.dtype)
        offsets = self.offsets[:, batch[rows]].transpose(0, 1)  # (cells, clusters, latent)
        corrected = zs
        for _ in range(CORRECTION_ROUNDS):
            r = self.memberships(corrected)
            corrected = F.normalize(zs - torch.einsum("nk,nkd->nd", r, offsets), dim=-1)
        out = z.clone()
        out[rows] = corrected.to(z.dtype)
        return out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the buffers' sizes follow the fitted correction (clusters, batches), not the constructor: take the saved
        # sizes before the values are copied in
        for name in ("centroids", "sigma", "offsets"):
            saved = state_dict.get(prefix + name)
            if saved is not None:
                setattr(self, name, torch.empty_like(saved, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
