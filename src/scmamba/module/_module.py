"""ScMambaModule: one Mamba2 encoder per modality, trained with a contrastive objective."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn

from .._constants import MODALITIES, MODALITY_REGISTRY_KEYS
from ..data._preprocess import encode_values
from ..nn import MambaEncoder
from ._loss import contrastive_loss

__all__ = ["ScMambaModule"]


def _per_modality(value, modalities: Sequence[str], name: str) -> dict:
    if isinstance(value, Mapping):
        missing = [m for m in modalities if m not in value]
        if missing:
            raise ValueError(f"`{name}` has no value for modality {missing}; give one per modality or a single value.")
        return {m: value[m] for m in modalities}
    return dict.fromkeys(modalities, value)


class ScMambaModule(BaseModuleClass):
    """Contrastive two-encoder module on raw counts (no AnnData in here).

    Each minibatch of raw counts is reordered into genomic order (``feature_orders``), value-encoded
    (RNA/protein relative-level bins, ATAC presence) and encoded by that modality's
    :class:`~scmamba.nn.MambaEncoder`; embeddings are L2-normalised.

    Parameters
    ----------
    n_features
        Features per modality, e.g. ``{"rna": 1677, "atac": 24744}``.
    feature_orders
        Column permutation into genomic order per modality (stored as buffers, so saved with the weights).
    n_latent
        Embedding size.
    d_model, n_layers, patch_size, d_state, headdim, expand, mlp_hidden, chunk_size
        Encoder sizes; ``n_layers`` and ``patch_size`` may be dicts per modality.
    dropout
        Dropout in the encoders.
    feature_dropout
        Fraction of each cell's features zeroed at random in every training step (augmentation against
        memorising cells; 0 turns it off); one value, or a dict per modality.
    pooling
        ``'last'`` token (the paper) or ``'mean'`` of the tokens as the cell summary.
    projection
        Patch projection shared by all patches (``'shared'``) or one per genomic region (``'per_region'``).
    bin_size
        Consecutive features sharing part of their per-region projection (:class:`~scmamba.nn.PatchEmbedding`);
        ``None`` (off), an int, or a dict per modality (modalities left out: off).
    n_bins
        Relative-level bins for RNA and protein values (``None``: log-normalised values).
    temperature_init
        Initial InfoNCE temperature (CLIP: 0.07); learnable, clamped to ``[1 / max_logit_scale, 1]``.
    learn_temperature
        Learn the temperature, or keep it fixed.
    max_logit_scale
        Upper bound of ``1 / temperature``.
    lambda_con, lambda_sim
        Weights of the InfoNCE and cosine terms.
    use_fused_kernels
        Passed to :class:`~scmamba.nn.Mamba2`.
    """

    def __init__(
        self,
        n_features: Mapping[str, int],
        feature_orders: Mapping[str, np.ndarray] | None = None,
        *,
        n_latent: int = 32,
        d_model: int = 64,
        n_layers: int | Mapping[str, int] = 2,
        patch_size: int | Mapping[str, int] = 64,
        d_state: int = 32,
        headdim: int = 32,
        expand: int = 2,
        mlp_hidden: int | None = None,
        chunk_size: int = 64,
        dropout: float = 0.1,
        feature_dropout: float | Mapping[str, float] = 0.0,
        pooling: str = "last",
        projection: str = "shared",
        bin_size: int | Mapping[str, int | None] | None = None,
        n_bins: int | None = 51,
        temperature_init: float = 0.07,
        learn_temperature: bool = True,
        max_logit_scale: float = 100.0,
        lambda_con: float = 1.0,
        lambda_sim: float = 1.0,
        use_fused_kernels: bool | None = None,
    ):
        super().__init__()
        self.modalities = [m for m in MODALITIES if m in n_features]
        if len(self.modalities) < 1:
            raise ValueError(f"n_features needs at least one of {MODALITIES}.")
        self.n_latent = n_latent
        self.n_bins = n_bins
        self.feature_dropout = {
            m: float(p) for m, p in _per_modality(feature_dropout, self.modalities, "feature_dropout").items()
        }
        bad = {m: p for m, p in self.feature_dropout.items() if not 0.0 <= p < 1.0}
        if bad:
            raise ValueError(f"feature_dropout must be in [0, 1), got {bad}.")
        self.lambda_con = lambda_con
        self.lambda_sim = lambda_sim
        self.max_log_scale = math.log(max_logit_scale)
        layers = _per_modality(n_layers, self.modalities, "n_layers")
        patches = _per_modality(patch_size, self.modalities, "patch_size")
        bins = {m: bin_size.get(m) for m in self.modalities} if isinstance(bin_size, Mapping) else None
        bins = bins or dict.fromkeys(self.modalities, bin_size)
        self.encoders = nn.ModuleDict()
        for m in self.modalities:
            order = None if feature_orders is None else feature_orders.get(m)
            order = (
                torch.arange(n_features[m]) if order is None else torch.as_tensor(np.asarray(order), dtype=torch.long)
            )
            if order.numel() != n_features[m]:
                raise ValueError(f"feature order for {m!r} has {order.numel()} entries, expected {n_features[m]}.")
            self.register_buffer(f"order_{m}", order)
            self.encoders[m] = MambaEncoder(
                n_features[m],
                n_latent,
                patch_size=patches[m],
                d_model=d_model,
                n_layers=layers[m],
                mlp_hidden=mlp_hidden,
                dropout=dropout,
                pooling=pooling,
                projection=projection,
                bin_size=bins[m],
                d_state=d_state,
                headdim=headdim,
                expand=expand,
                chunk_size=chunk_size,
                use_fused_kernels=use_fused_kernels,
            )
        log_scale = torch.tensor(math.log(1.0 / temperature_init))
        if learn_temperature:
            self.log_logit_scale = nn.Parameter(log_scale)
            self.log_logit_scale._no_weight_decay = True
        else:
            self.register_buffer("log_logit_scale", log_scale)

    @property
    def logit_scale(self) -> torch.Tensor:
        """``1 / temperature``, clamped."""
        return self.log_logit_scale.clamp(0.0, self.max_log_scale).exp()

    def embed(self, modality: str, counts: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Embed raw counts of one modality (columns in the registered feature order)."""
        order = getattr(self, f"order_{modality}")
        counts = counts.float()
        p_drop = self.feature_dropout.get(modality, 0.0)
        if self.training and p_drop > 0:
            # augmentation: each training step sees a random subset of each cell's measured features
            counts = counts * (torch.rand_like(counts) >= p_drop)
        x = encode_values(counts.index_select(-1, order), modality, self.n_bins)
        z = self.encoders[modality](x)
        return F.normalize(z.float(), dim=-1) if normalize else z

    def _get_inference_input(self, tensors: dict[str, torch.Tensor], modalities: Sequence[str] | None = None):
        mods = self.modalities if modalities is None else modalities
        return {f"x_{m}": tensors[MODALITY_REGISTRY_KEYS[m]] for m in mods if MODALITY_REGISTRY_KEYS[m] in tensors}

    @auto_move_data
    def inference(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Embeddings ``z_<modality>`` (L2-normalised) for every ``x_<modality>`` given."""
        return {f"z_{key[2:]}": self.embed(key[2:], x) for key, x in inputs.items()}

    def _get_generative_input(self, tensors, inference_outputs):
        return {}

    def generative(self):
        """Contrastive model: nothing is generated."""
        return {}

    def loss(
        self,
        tensors,
        inference_outputs: dict[str, torch.Tensor],
        generative_outputs,
        gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> LossOutput:
        """Contrastive loss between the first two modalities' embeddings.

        ``gather`` (set by the training plan under DDP) concatenates a tensor across processes, so that
        negatives span the global batch.
        """
        if len(self.modalities) < 2:
            raise RuntimeError("Training needs two modalities; this module encodes only one.")
        z_a, z_b = (inference_outputs[f"z_{m}"] for m in self.modalities[:2])
        n_obs = z_a.shape[0]
        if gather is not None:
            z_a, z_b = gather(z_a), gather(z_b)
        parts = contrastive_loss(z_a, z_b, self.logit_scale, lambda_con=self.lambda_con, lambda_sim=self.lambda_sim)
        return LossOutput(
            loss=parts["loss"],
            n_obs_minibatch=n_obs,
            extra_metrics={
                "infonce": parts["infonce"].detach(),
                "cosine_loss": parts["cosine"].detach(),
                "temperature": (1.0 / self.logit_scale).detach(),
                "n_contrast": torch.tensor(float(z_a.shape[0])),  # cells contrasted (all processes under DDP)
            },
        )
