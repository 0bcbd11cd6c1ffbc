"""One modality of the module: its feature order, feature dropout, encoder (with its linear view) and decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import CompositionDecoder, MambaEncoder
from ..nn._sparse import SparseRows, encode_values

__all__ = ["ModalityLayer", "upgrade_state_key"]

#: Old state-dict prefixes (one container per part, before :class:`ModalityLayer`) -> the part's new name.
_OLD_CONTAINERS = {
    "encoders": "encoder",
    "decoders": "decoder",
    "linear_views": "linear_view",
    "view_projections": "view_projection",
}


def upgrade_state_key(key: str) -> str:
    """A state-dict key (or parameter name) of a model saved before :class:`ModalityLayer` under its current name.

    ``encoders.rna.x`` -> ``layers.rna.encoder.x`` (likewise ``decoders``, ``linear_views``, ``view_projections``);
    ``order_rna`` -> ``layers.rna.order``. Current keys are returned unchanged.
    """
    head, _, rest = key.partition(".")
    if head in _OLD_CONTAINERS and rest:
        modality, _, tail = rest.partition(".")
        return f"layers.{modality}.{_OLD_CONTAINERS[head]}" + (f".{tail}" if tail else "")
    if head.startswith("order_") and not rest:
        return f"layers.{head[len('order_') :]}.order"
    return key


class ModalityLayer(nn.Module):
    """Everything SCMAMBA holds for one modality, from raw counts to its embedding and back to its profile.

    Parameters
    ----------
    modality
        ``'rna'``, ``'atac'`` or ``'protein'`` (decides the value encoding).
    order
        Column permutation into genomic order (a buffer, saved with the weights); its inverse, which puts the
        non-zeros of a minibatch in that order, is computed once here (and after loading weights).
    encoder
        The modality's :class:`~scmamba.nn.MambaEncoder`; ``None``: the layer is embedded by its linear view and
        the view's trained projection alone.
    feature_dropout
        Fraction of each cell's non-zero features dropped in every training step.
    n_bins
        Relative-level bins of the value encoding (``None``: log-normalised values).
    decoder
        :class:`~scmamba.nn.CompositionDecoder` of the modality's profile (``None`` without reconstruction term).
    linear_view, view_projection
        The fixed classic reduction (:class:`~scmamba.nn.LinearView`) and its trained projection, added to the
        encoder's output (both or neither).
    """

    def __init__(
        self,
        modality: str,
        order: torch.Tensor,
        encoder: MambaEncoder | None,
        *,
        feature_dropout: float,
        n_bins: int | None,
        decoder: CompositionDecoder | None = None,
        linear_view: nn.Module | None = None,
        view_projection: nn.Module | None = None,
    ):
        super().__init__()
        if not 0.0 <= feature_dropout < 1.0:
            raise ValueError(f"feature_dropout must be in [0, 1), got {feature_dropout} for {modality!r}.")
        if (linear_view is None) != (view_projection is None):
            raise ValueError("A linear view needs its projection (and a projection its view).")
        if encoder is None and linear_view is None:
            raise ValueError(f"The {modality!r} layer needs an encoder, a linear view or both.")
        self.modality = modality
        self.feature_dropout = float(feature_dropout)
        self.n_bins = n_bins
        self.register_buffer("order", order)
        self.register_buffer("position", self._inverse(order), persistent=False)
        self.encoder = encoder
        self.decoder = decoder
        self.linear_view = linear_view
        self.view_projection = view_projection

    @staticmethod
    def _inverse(order: torch.Tensor) -> torch.Tensor:
        return torch.empty_like(order).scatter_(0, order, torch.arange(order.numel(), device=order.device))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.position = self._inverse(self.order)  # the loaded order's inverse

    def drop_features(self, counts: SparseRows) -> SparseRows:
        """Feature dropout (training only): each training step sees a random subset of each cell's features."""
        if self.training and self.feature_dropout > 0:
            counts = counts.select(torch.rand_like(counts.values) >= self.feature_dropout)
        return counts

    def encoder_input(self, counts: SparseRows) -> SparseRows:
        """Raw counts (after :meth:`drop_features`) -> encoder input: genomic order, value encoding."""
        return encode_values(counts.permute_cols(self.position), self.modality, self.n_bins)

    def embed(self, counts: SparseRows, normalize: bool = True) -> torch.Tensor:
        """Embedding of raw counts in registered column order (feature dropout while training)."""
        counts = self.drop_features(counts)
        z = None if self.encoder is None else self.encoder(self.encoder_input(counts)).float()
        if self.linear_view is not None:
            view = self.view_projection(self.linear_view(counts))
            z = view if z is None else z + view
        return F.normalize(z, dim=-1) if normalize else z
