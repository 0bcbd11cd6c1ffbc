"""Adversarial batch classifier: removes from an embedding what tells batches apart."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

__all__ = ["BatchClassifier"]


class BatchClassifier(nn.Module):
    """MLP that predicts each cell's batch from its embedding, and the term that trains the encoders to fool it.

    :meth:`loss` has two parts, for one optimiser step: the classifier's cross-entropy on the detached embedding
    (it learns to tell batches apart), and, through the classifier with its weights detached, the cross-entropy of
    the embedding against a target spread evenly over the *other* batches (the encoders learn to make the batch
    unpredictable). Reversing the classifier's gradient instead lets the encoders maximise an unbounded
    cross-entropy by swapping batches, which keeps them apart. scvi-tools' ``AdversarialTrainingPlan`` uses the
    same targets with a second optimiser and manual optimisation; this keeps SCMAMBA's single-optimiser plan (and
    its DDP gathering) as it is.

    Parameters
    ----------
    n_input
        Embedding size.
    n_batch
        Batches to tell apart (at least 2).
    n_hidden
        Hidden width.
    """

    def __init__(self, n_input: int, n_batch: int, n_hidden: int = 64):
        super().__init__()
        if n_batch < 2:
            raise ValueError(f"A batch classifier needs at least 2 batches, got {n_batch}.")
        self.n_batch = n_batch
        self.net = nn.Sequential(nn.Linear(n_input, n_hidden), nn.ReLU(), nn.Linear(n_hidden, n_batch))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Batch logits ``(cells, n_batch)``."""
        return self.net(z)

    def loss(self, z: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """Classifier cross-entropy (on ``z`` detached) + the encoders' fooling term (classifier detached)."""
        classifier = F.cross_entropy(self.net(z.detach()).float(), batch)
        frozen = {name: p.detach() for name, p in self.net.named_parameters()}
        log_p = F.log_softmax(functional_call(self.net, frozen, (z,)).float(), dim=-1)
        others = (1.0 - F.one_hot(batch, self.n_batch).to(log_p.dtype)) / (self.n_batch - 1)
        fool = -(log_p * others).sum(-1).mean()
        return classifier + fool
