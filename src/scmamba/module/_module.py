"""ScMambaModule: one Mamba2 encoder per modality, trained contrastively and by reconstructing each modality."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scvi import REGISTRY_KEYS
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn

from .._constants import MODALITIES, MODALITY_REGISTRY_KEYS, OBSERVED_KEY
from ..nn import BatchClassifier, CompositionDecoder, LatentCorrection, MambaEncoder, PatchEmbedding
from ..nn._sparse import SparseRows
from ._layer import ModalityLayer, upgrade_state_key
from ._loss import contrastive_loss

__all__ = ["ScMambaModule"]


class ScMambaModule(BaseModuleClass):
    """Two-encoder module on raw counts (no AnnData in here).

    Each minibatch arrives as the non-zeros of the raw counts (:class:`~scmamba.nn.SparseRows`); they are put in
    genomic order (``feature_orders``), value-encoded (RNA/protein relative-level bins, ATAC presence) and encoded
    by that modality's :class:`~scmamba.nn.MambaEncoder` into an L2-normalised embedding (:meth:`inference`).
    Everything of one modality (order, feature dropout, encoder, linear view, decoder) is one
    :class:`~scmamba.module.ModalityLayer` in :attr:`layers`.

    The objective has two parts:

    * **cross-modal**: symmetric InfoNCE and a cosine term between the two modalities' embeddings of a cell
      (``lambda_con``, ``lambda_sim``), which aligns the modalities cell by cell;
    * **reconstruction** (``lambda_rec``): from each modality's embedding, a linear multinomial decoder per
      modality (:class:`~scmamba.nn.CompositionDecoder`) predicts the composition of both of the cell's
      profiles. Predicting its own modality keeps in the embedding what distinguishes cells in that modality,
      not only what the two share; predicting the other modality is a second alignment. The decoders have a
      per-batch offset for every feature, so differences between batches need not be encoded. They run in
      :meth:`generative`, which returns the logits of every (embedding, profile) pair, so that the model can
      also ask for predictions (``SCMAMBA.get_normalized_expression``).

    Parameters
    ----------
    n_features
        Features per modality, e.g. ``{"rna": 1677, "atac": 24744}``.
    feature_orders
        Column permutation into genomic order per modality (stored as buffers, so saved with the weights).
    n_batch
        Batches of the decoders' offsets (1: no batch covariate).
    n_latent, d_model, n_layers, patch_size, d_state, headdim, expand, mlp_hidden, head_hidden, chunk_size
        Architecture, see :class:`~scmamba.SCMAMBA`; ``n_layers`` and ``patch_size`` are dicts per modality.
    dropout, feature_dropout, pooling, projection, bin_size, n_bins
        Tokens and regularisation, see :class:`~scmamba.SCMAMBA`; ``feature_dropout`` and ``bin_size`` per modality,
        ``dropout`` one value or per modality.
    temperature_init, learn_temperature, lambda_con, lambda_sim, lambda_rec, lambda_adv, batch_negatives
        Objective, see :class:`~scmamba.SCMAMBA`.
    use_fused_kernels
        See :class:`~scmamba.SCMAMBA`.
    feature_log_frequency
        Per modality, the log of each feature's share of all counts (initial decoder biases).
    max_logit_scale
        Upper bound of ``1 / temperature``.
    linear_views
        Per modality, a fixed :class:`~scmamba.nn.LinearView` (the layer's classic reduction) added to its
        embedding through a trained projection; the encoder's output layer then starts at zero.
    mamba_layers
        The modalities with a Mamba2 encoder (``None``: all). The others are embedded by their linear view and its
        trained projection alone, so they need one in ``linear_views``.
    """

    def __init__(
        self,
        n_features: Mapping[str, int],
        feature_orders: Mapping[str, np.ndarray] | None = None,
        *,
        n_batch: int,
        n_latent: int,
        d_model: int,
        n_layers: Mapping[str, int],
        patch_size: Mapping[str, int],
        d_state: int,
        headdim: int,
        expand: int,
        mlp_hidden: int,
        head_hidden: int,
        chunk_size: int,
        dropout: float | Mapping[str, float],
        feature_dropout: Mapping[str, float],
        pooling: str,
        projection: str,
        bin_size: Mapping[str, int | None],
        n_bins: int | None,
        temperature_init: float,
        learn_temperature: bool,
        lambda_con: float,
        lambda_sim: float,
        lambda_rec: float,
        lambda_adv: float,
        batch_negatives: bool,
        use_fused_kernels: bool | None,
        feature_log_frequency: Mapping[str, np.ndarray] | None = None,
        max_logit_scale: float = 100.0,
        linear_views: Mapping[str, nn.Module] | None = None,
        mamba_layers: Sequence[str] | None = None,
    ):
        super().__init__()
        self.modalities = [m for m in MODALITIES if m in n_features]
        if len(self.modalities) < 1:
            raise ValueError(f"n_features needs at least one of {MODALITIES}.")
        mamba_layers = set(self.modalities if mamba_layers is None else mamba_layers)
        unviewed = [m for m in self.modalities if m not in mamba_layers and m not in (linear_views or {})]
        if unviewed:
            raise ValueError(f"A layer without a Mamba2 encoder is embedded by its linear view; {unviewed} have none.")
        self.n_latent = n_latent
        self.n_bins = n_bins
        self.n_batch = n_batch
        feature_dropout = {m: float(feature_dropout.get(m, 0.0)) for m in self.modalities}
        bad = {m: p for m, p in feature_dropout.items() if not 0.0 <= p < 1.0}
        if bad:
            raise ValueError(f"feature_dropout must be in [0, 1), got {bad}.")
        self.lambda_con = lambda_con
        self.lambda_sim = lambda_sim
        self.lambda_rec = lambda_rec
        self.lambda_adv = lambda_adv
        self.batch_negatives = batch_negatives
        self.max_log_scale = math.log(max_logit_scale)
        # the parts are built in the order of the models saved before ModalityLayer (all encoders, then the view
        # projections, then the decoders), so that a seed gives the same initial weights as it did
        orders, encoders = {}, {}
        for m in self.modalities:
            order = None if feature_orders is None else feature_orders.get(m)
            order = (
                torch.arange(n_features[m]) if order is None else torch.as_tensor(np.asarray(order), dtype=torch.long)
            )
            if order.numel() != n_features[m]:
                raise ValueError(f"feature order for {m!r} has {order.numel()} entries, expected {n_features[m]}.")
            orders[m] = order
            if m not in mamba_layers:
                encoders[m] = None
                continue
            encoders[m] = MambaEncoder(
                n_features[m],
                n_latent,
                patch_size=patch_size[m],
                d_model=d_model,
                n_layers=n_layers[m],
                mlp_hidden=mlp_hidden,
                head_hidden=head_hidden,
                dropout=float(dropout[m] if isinstance(dropout, Mapping) else dropout),
                pooling=pooling,
                projection=projection,
                bin_size=bin_size.get(m),
                d_state=d_state,
                headdim=headdim,
                expand=expand,
                chunk_size=chunk_size,
                use_fused_kernels=use_fused_kernels,
            )
        # each layer's classic linear reduction (fixed) enters its embedding through a trained projection; the
        # encoder's output layer starts at zero, so training starts from the classic embedding and adds to it
        views, projections = dict(linear_views or {}), {}
        for m, view in views.items():
            proj = nn.Linear(view.n_components, n_latent, bias=False)
            nn.init.orthogonal_(proj.weight)
            projections[m] = proj
            if encoders[m] is not None:
                nn.init.zeros_(encoders[m].out.weight)
                nn.init.zeros_(encoders[m].out.bias)
        decoders = {}
        if lambda_rec > 0:
            log_frequency = feature_log_frequency or {}
            for m in self.modalities:
                decoders[m] = CompositionDecoder(n_latent, n_features[m], n_batch, log_frequency.get(m))
        #: One :class:`~scmamba.module.ModalityLayer` per modality.
        self.layers = nn.ModuleDict()
        for m in self.modalities:
            self.layers[m] = ModalityLayer(
                m, orders[m], encoders[m], feature_dropout=feature_dropout[m], n_bins=n_bins,
                decoder=decoders.get(m), linear_view=views.get(m), view_projection=projections.get(m),
            )  # fmt: skip
        # each layer's weight in the joint embedding (fuse); equal until the model sets them after training
        self.register_buffer("layer_weights", torch.full((len(self.modalities),), 1.0 / len(self.modalities)))
        # the donor correction of the embeddings; the identity until the model fits it after training
        self.latent_correction = LatentCorrection(n_latent)
        if lambda_adv > 0 and n_batch > 1:  # one classifier for every modality's embedding: they share a space
            self.batch_classifier = BatchClassifier(n_latent, n_batch)
        log_scale = torch.tensor(math.log(1.0 / temperature_init))
        if learn_temperature:
            self.log_logit_scale = nn.Parameter(log_scale)
            self.log_logit_scale._no_weight_decay = True
        else:
            self.register_buffer("log_logit_scale", log_scale)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # models saved before ModalityLayer kept each part of a modality in its own container: rename their keys
        for key in [k for k in state_dict if k.startswith(prefix)]:
            new = prefix + upgrade_state_key(key[len(prefix) :])
            if new != key:
                state_dict[new] = state_dict.pop(key)
        # models saved before layer weights existed combine their layers with equal weights, as they were trained
        state_dict.setdefault(prefix + "layer_weights", self.layer_weights.detach().clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def encoders(self) -> dict[str, MambaEncoder]:
        """Each modality's Mamba2 encoder (a view of :attr:`layers`; a layer embedded by its linear view has none)."""
        return {m: layer.encoder for m, layer in self.layers.items() if layer.encoder is not None}

    @property
    def decoders(self) -> dict[str, CompositionDecoder]:
        """Each decoded modality's decoder (none with ``lambda_rec=0``; a view of :attr:`layers`)."""
        return {m: layer.decoder for m, layer in self.layers.items() if layer.decoder is not None}

    @property
    def linear_views(self) -> dict[str, nn.Module]:
        """Each modality's fixed linear view, where it has one (a view of :attr:`layers`)."""
        return {m: layer.linear_view for m, layer in self.layers.items() if layer.linear_view is not None}

    @property
    def feature_dropout(self) -> dict[str, float]:
        """Each modality's feature dropout rate."""
        return {m: layer.feature_dropout for m, layer in self.layers.items()}

    @property
    def logit_scale(self) -> torch.Tensor:
        """``1 / temperature``, clamped."""
        return self.log_logit_scale.clamp(0.0, self.max_log_scale).exp()

    @contextlib.contextmanager
    def frozen_tokenizers(self) -> Iterator[None]:
        """Build every token projection once for the forward passes inside (embedding, no gradients)."""
        with contextlib.ExitStack() as stack:
            for module in self.modules():
                if isinstance(module, PatchEmbedding):
                    stack.enter_context(module.frozen())
            yield

    def drop_features(self, modality: str, counts: SparseRows) -> SparseRows:
        """Feature dropout (training only), see :meth:`ModalityLayer.drop_features`."""
        return self.layers[modality].drop_features(counts)

    def encoder_input(self, modality: str, counts: SparseRows) -> SparseRows:
        """Raw counts (after :meth:`drop_features`) -> encoder input: genomic order, value encoding."""
        return self.layers[modality].encoder_input(counts)

    def embed(self, modality: str, counts: torch.Tensor | SparseRows, normalize: bool = True) -> torch.Tensor:
        """Embed raw counts of one modality (dense, sparse or :class:`~scmamba.nn.SparseRows`; registered columns)."""
        if not isinstance(counts, SparseRows):
            counts = SparseRows.from_tensor(counts)
        return self.layers[modality].embed(counts, normalize=normalize)

    def _get_inference_input(self, tensors: dict[str, torch.Tensor], modalities: Sequence[str] | None = None):
        mods = self.modalities if modalities is None else modalities
        out = {f"x_{m}": tensors[MODALITY_REGISTRY_KEYS[m]] for m in mods if MODALITY_REGISTRY_KEYS[m] in tensors}
        for m in mods:
            if OBSERVED_KEY.format(m) in tensors:
                out[f"observed_{m}"] = tensors[OBSERVED_KEY.format(m)]
        return out

    @auto_move_data
    def inference(self, **inputs: torch.Tensor) -> dict:
        """Per modality: embeddings ``z_<m>`` (L2-normalised), raw non-zeros ``counts_<m>``, ``observed_<m>`` mask.

        ``observed_<m>`` (``(cells, 1)``, optional) marks the cells measured in modality ``m`` (mosaic data); the
        rows of the others are empty: only the measured rows go through the encoder (so that the empty rows neither
        cost compute nor enter the encoder's BatchNorm statistics), and the others get a zero embedding, which the
        loss does not use.
        """
        out = {}
        for key, x in inputs.items():
            if not key.startswith("x_"):
                continue
            m = key[2:]
            counts = SparseRows.from_tensor(x)
            observed = inputs.get(f"observed_{m}")
            observed = (
                torch.ones(counts.n_rows, dtype=torch.bool, device=x.device)
                if observed is None
                else observed.view(-1).bool()
            )
            n_observed = int(observed.sum())
            # BatchNorm cannot train on a single row: then every row is encoded (the empty ones too), as without masks
            if n_observed == counts.n_rows or (self.training and n_observed < 2):
                out[f"z_{m}"] = self.embed(m, counts)
            else:
                z = self.embed(m, counts.take_rows(observed)) if n_observed else None
                full = torch.zeros(counts.n_rows, self.n_latent, device=x.device, dtype=torch.float32)
                out[f"z_{m}"] = full if z is None else full.index_put((observed,), z.to(full.dtype))
            out[f"counts_{m}"] = counts
            out[f"observed_{m}"] = observed
        return out

    def fuse(self, inference_outputs: dict, modalities: Sequence[str] | None = None) -> torch.Tensor:
        """Joint embedding: per cell, the weighted mean of the embeddings of the layers it was measured in (unit norm).

        ``inference_outputs`` as from :meth:`inference`; ``modalities`` the layers to combine (default all), with
        the weights :attr:`layer_weights`. A cell measured in one of them gets that layer's embedding; a cell
        measured in none of them gets NaN.
        """
        mods = list(self.modalities if modalities is None else modalities)
        zs = torch.stack([inference_outputs[f"z_{m}"] for m in mods])  # (layers, cells, latent)
        observed = torch.stack([inference_outputs[f"observed_{m}"] for m in mods]).to(zs.dtype)  # (layers, cells)
        weights = self.layer_weights[[self.modalities.index(m) for m in mods]].to(zs.dtype).clamp_min(1e-6)
        z = F.normalize((weights[:, None, None] * observed.unsqueeze(-1) * zs).sum(0), dim=-1)
        return z.masked_fill(observed.sum(0).unsqueeze(-1) == 0, float("nan"))

    def _get_generative_input(self, tensors, inference_outputs):
        batch = tensors.get(REGISTRY_KEYS.BATCH_KEY)
        targets = [m for m in self.decoders if f"counts_{m}" in inference_outputs]
        z = {k: v for k, v in inference_outputs.items() if k.startswith("z_")}
        return {"batch": None if batch is None else batch.view(-1).long(), "targets": targets, **z}

    def generative(
        self, batch: torch.Tensor | None = None, targets: Sequence[str] | None = None, **z: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Every decoded profile from every embedding given: ``logits_<source>_to_<target>`` ``(cells, features)``.

        ``z_<source>`` are embeddings as from :meth:`inference` (unit norm; any layer, or a fused one), ``batch``
        the cells' batch codes for the decoders' per-batch offsets (-1: the mean offset; ``None``: none),
        ``targets`` the profiles to decode (default all decoded modalities). The logits are those of the
        multinomial composition of the target's counts (``softmax`` gives the shares).
        """
        out = {}
        for target in self.decoders if targets is None else targets:
            decoder = self.layers[target].decoder
            for key, value in z.items():
                out[f"logits_{key[2:]}_to_{target}"] = decoder.logits(value, batch)
        return out

    def predict_profile(self, target: str, z: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted composition of ``target`` (rows sum to 1) from unit-norm embeddings ``z`` of any layer.

        ``batch``: the cells' batch codes for the decoder's offsets (-1: the mean of the batches' offsets).
        """
        return torch.softmax(self.generative(batch, [target], z_input=z)[f"logits_input_to_{target}"], dim=-1)

    def reconstruction_losses(self, inference_outputs: dict, generative_outputs: dict) -> dict[str, torch.Tensor]:
        """Multinomial NLL per count of every modality's profile from every available embedding.

        Per (source, target) pair, over the cells measured in both (mosaic data), from the logits of
        :meth:`generative`.
        """
        out = {}
        for target in self.decoders:
            if f"counts_{target}" not in inference_outputs:
                continue
            counts = inference_outputs[f"counts_{target}"]
            if target == "atac":
                counts = counts.with_values(torch.ones_like(counts.values))  # accessibility is presence
            for source in self.modalities:
                key = f"logits_{source}_to_{target}"
                if key not in generative_outputs:
                    continue
                logits = generative_outputs[key]
                both = inference_outputs[f"observed_{target}"] & inference_outputs[f"observed_{source}"]
                if not bool(both.any()):
                    continue
                if not bool(both.all()):
                    logits, part = logits[both], counts.take_rows(both)
                else:
                    part = counts
                out[f"rec_{source}_to_{target}"] = CompositionDecoder.multinomial_nll(logits, part)
        return out

    def loss(
        self,
        tensors,
        inference_outputs: dict,
        generative_outputs,
        gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> LossOutput:
        """Cross-modal (InfoNCE + cosine) and reconstruction terms.

        The reconstruction term is, per target modality, the mean NLL over the embeddings that predict it, summed
        over modalities. ``gather`` (set by the training plan under DDP) concatenates a tensor across processes,
        so that negatives span the global batch.
        """
        if len(self.modalities) < 2:
            raise RuntimeError("Training needs two modalities; this module encodes only one.")
        mod_a, mod_b = self.modalities[:2]
        z_a, z_b = inference_outputs[f"z_{mod_a}"], inference_outputs[f"z_{mod_b}"]
        n_obs = z_a.shape[0]
        batch = tensors.get(REGISTRY_KEYS.BATCH_KEY)
        batch = batch.view(-1).long() if batch is not None else None
        rec = self.reconstruction_losses(inference_outputs, generative_outputs)
        paired = inference_outputs[f"observed_{mod_a}"] & inference_outputs[f"observed_{mod_b}"]
        groups = batch
        if gather is not None:
            z_a, z_b, paired = gather(z_a), gather(z_b), gather(paired.float()).bool().view(-1)
            groups = gather(batch) if batch is not None else None
        if not bool(paired.all()):  # mosaic data: only cells measured in both modalities are pairs
            z_a, z_b = z_a[paired], z_b[paired]
            groups = None if groups is None else groups[paired]
        same_batch = groups[:, None] == groups[None, :] if self.batch_negatives and groups is not None else None
        if z_a.shape[0] >= 2:
            parts = contrastive_loss(
                z_a, z_b, self.logit_scale, lambda_con=self.lambda_con, lambda_sim=self.lambda_sim,
                same_group=same_batch,
            )  # fmt: skip
        else:  # fewer than two pairs in this minibatch: nothing to contrast
            zero = z_a.new_zeros(()) + 0.0 * self.log_logit_scale
            parts = {"loss": zero, "infonce": zero, "cosine": zero}
        loss = parts["loss"]
        if rec:
            per_target = {}
            for key, value in rec.items():
                per_target.setdefault(key.rsplit("_to_", 1)[1], []).append(value)
            loss = loss + self.lambda_rec * sum(torch.stack(v).mean() for v in per_target.values())
        adversarial = {}
        if hasattr(self, "batch_classifier") and batch is not None:
            for m in self.modalities:
                observed = inference_outputs[f"observed_{m}"]
                if bool(observed.any()):
                    adversarial[f"batch_adv_{m}"] = self.batch_classifier.loss(
                        inference_outputs[f"z_{m}"][observed], batch[observed]
                    )
            if adversarial:
                loss = loss + self.lambda_adv * torch.stack(list(adversarial.values())).mean()
        return LossOutput(
            loss=loss,
            n_obs_minibatch=n_obs,
            extra_metrics={
                "infonce": parts["infonce"].detach(),
                "cosine_loss": parts["cosine"].detach(),
                "temperature": (1.0 / self.logit_scale).detach(),
                "n_contrast": torch.tensor(float(z_a.shape[0])),  # cells contrasted (all processes under DDP)
                **{k: v.detach() for k, v in rec.items()},
                **{k: v.detach() for k, v in adversarial.items()},
            },
        )
