"""Torch modules (no AnnData): the contrastive two-encoder module and its loss."""

from ._loss import contrastive_loss
from ._module import ScMambaModule

__all__ = ["ScMambaModule", "contrastive_loss"]
