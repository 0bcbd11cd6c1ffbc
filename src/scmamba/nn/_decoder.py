"""Linear count decoder: the composition of a cell's profile predicted from its embedding."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ._sparse import SparseRows

__all__ = ["CompositionDecoder"]


class CompositionDecoder(nn.Module):
    """Multinomial decoder ``softmax(W z + b + offset[batch])`` over the features of one modality.

    A linear decoder of a cell's composition (which features its counts fall on) asks the embedding to keep what
    distinguishes cells in that modality, much as PCA does for log counts, and a per-batch offset per feature (as
    in scVI's batch-conditioned decoder) lets batch-specific shifts be explained without the embedding.

    Parameters
    ----------
    n_input
        Embedding size.
    n_features
        Features of the modality.
    n_batch
        Batches (libraries, donors); each has its own per-feature offset, added when ``batch`` is given.
    log_frequency
        Initial bias: the log of each feature's share of all counts, so training starts at the mean composition.
    """

    def __init__(self, n_input: int, n_features: int, n_batch: int = 1, log_frequency: np.ndarray | None = None):
        super().__init__()
        self.scale = n_input**0.5  # unit-norm embeddings -> unit-variance coordinates
        self.linear = nn.Linear(n_input, n_features)
        if log_frequency is not None:
            with torch.no_grad():
                self.linear.bias.copy_(torch.as_tensor(np.asarray(log_frequency), dtype=torch.float32))
        self.n_batch = n_batch
        # one row per batch, also for a single batch (a second bias then): a query can add batches to any
        # reference, and every parameter is used in every step (DDP)
        self.batch_offset = nn.Parameter(torch.zeros(n_batch, n_features))

    def logits(self, z: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """Unnormalised log-probabilities ``(cells, n_features)``.

        ``batch``: each cell's batch code; a code of -1 (a cell of no batch the decoder knows, e.g. an RNA-only
        query) takes the mean of the batches' offsets. ``None``: no offset (the training loss without a batch key).
        """
        logits = self.linear(z * self.scale)
        if batch is not None:
            if bool((batch < 0).any()):
                offset = torch.where(
                    (batch < 0)[:, None], self.batch_offset.mean(0, keepdim=True), self.batch_offset[batch.clamp_min(0)]
                )
            else:
                offset = self.batch_offset[batch]
            logits = logits + offset
        return logits.float()

    def nll(self, z: torch.Tensor, target: SparseRows, batch: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over cells of the multinomial negative log-likelihood per count of ``target`` (its non-zeros).

        ``-sum_j x_j log p_j / sum_j x_j = logsumexp(logits) - sum_j x_j logit_j / sum_j x_j``: only the non-zeros
        of the target are read.
        """
        return self.multinomial_nll(self.logits(z, batch), target)

    @staticmethod
    def multinomial_nll(logits: torch.Tensor, target: SparseRows) -> torch.Tensor:
        """:meth:`nll` from logits ``(cells, features)`` already computed (e.g. by the module's ``generative``)."""
        picked = logits[target.rows, target.cols] * target.values
        weighted = picked.new_zeros(target.n_rows).index_add_(0, target.rows, picked)
        total = target.row_sums()
        has_counts = total > 0
        nll = torch.logsumexp(logits, dim=-1) - weighted / total.clamp_min(1e-12)
        return nll[has_counts].mean() if bool(has_counts.any()) else logits.sum() * 0.0
