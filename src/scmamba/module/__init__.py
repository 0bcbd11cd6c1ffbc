"""Torch modules (no AnnData): the contrastive two-encoder module, its per-modality layers and its loss."""

from ._layer import ModalityLayer
from ._loss import contrastive_loss
from ._module import ScMambaModule

__all__ = ["ModalityLayer", "ScMambaModule", "contrastive_loss"]
