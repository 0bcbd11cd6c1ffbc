"""SCMAMBA: contrastive integration of paired single-cell modalities with Mamba2 encoders."""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from mudata import MuData
from scipy import sparse
from scvi import REGISTRY_KEYS
from scvi.data import fields
from scvi.model.base import ArchesMixin, BaseModelClass, UnsupervisedTrainingMixin

from .._constants import MODALITY_LAYER_ARGS, MODALITY_REGISTRY_KEYS, find_modality
from .._malloc import reuse_freed_memory
from ..dataloaders import embedding_loader, training_datamodule, write_latent
from ..module import ScMambaModule
from ..nn import SparseRows
from ..nn._encoder import Pooling, Projection
from ..train import ContrastiveTrainingPlan
from ._data import PairedMuDataManager, SparseDataSplitter
from ._presets import (
    DEFAULT_BATCH_SIZE,
    EMBED_BATCH_SIZE,
    PER_MODALITY_DEFAULTS,
    default_max_epochs,
    encoder_dropout,
    paper_config,
    small_config,
)
from ._validation import (
    CountChecker,
    FeatureAligner,
    check_modalities_and_layers,
    check_paired,
    features_differ,
    features_message,
    iter_row_blocks,
    layer_matrix,
    read_rows,
    registered_modalities,
    resolve_modalities,
    row_indices,
    row_readable,
)

logger = logging.getLogger(__name__)

Modality = Literal["joint", "rna", "atac", "protein"]


def _per_modality(name: str, value, modalities: Sequence[str]) -> dict:
    """One value per modality from an int/float, a dict or ``None``.

    Modalities a dict leaves out take the per-modality default (``PER_MODALITY_DEFAULTS``); where the argument has
    none (its default is one value for all modalities), a dict must name every modality.
    """
    default = PER_MODALITY_DEFAULTS.get(name, {})
    if value is None:
        return {m: default.get(m) for m in modalities}
    if isinstance(value, Mapping):
        unknown = set(value) - set(MODALITY_LAYER_ARGS)
        if unknown:
            raise ValueError(f"{name} has values for unknown modalities {sorted(unknown)}; use {list(modalities)}.")
        missing = [m for m in modalities if m not in value and m not in default]
        if missing:
            raise ValueError(f"{name} has no value for {missing}: give one per modality of {list(modalities)}.")
        return {m: value.get(m, default.get(m)) for m in modalities}
    return dict.fromkeys(modalities, value)


def _patch_sizes(patch_size, max_tokens: int | None, n_features: Mapping[str, int]) -> dict[str, int]:
    """Features per token of each modality: ``patch_size``, grown where it would give more than ``max_tokens``."""
    sizes = _per_modality("patch_size", patch_size, list(n_features))
    if max_tokens is None:
        return sizes
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive integer or None, got {max_tokens}.")
    return {m: max(size, math.ceil(n_features[m] / max_tokens)) for m, size in sizes.items()}


class SCMAMBA(ArchesMixin, UnsupervisedTrainingMixin, BaseModelClass):
    """Single-cell multi-omics integration with one Mamba2 (SSD) encoder per modality.

    Features of each modality are put in genomic order, cut into patches (tokens) and encoded by Mamba2 + MLP
    blocks; the tokens are pooled and an MLP head gives the modality's cell embedding (unit length). Training
    aligns the two modalities of each cell (symmetric InfoNCE + a cosine term) and asks every embedding to
    predict the composition of both of the cell's profiles through linear decoders with a per-batch offset
    (:class:`~scmamba.module.ScMambaModule`). All features are used; no highly variable feature selection.

    The model is scMamba of Yuan, Jiao, Xiao & Peng, "scMamba: A Scalable Foundation Model for Single-Cell
    Multi-Omics Integration Beyond Highly Variable Feature Selection" (arXiv:2506.20697, 2025), written anew for
    scvi-tools (not one of the other single-cell models named scMamba); :meth:`paper_config` gives that paper's
    sizes and choices, and the defaults differ where ``benchmarks/`` measured better.

    What the Mamba2 blocks add is small next to the per-region tokens, the flattened head and the reconstruction
    term. On the shipped demo (2,500 SNARE-seq cells, 20 epochs, seed 0; ``benchmarks/design.py``) the joint
    embedding's Leiden ARI / NMI was 0.466 / 0.524 with ``n_layers=0`` (no block: tokens straight into the head),
    0.457 / 0.493 with one randomly initialised block and 0.482 / 0.541 with one block that starts as the identity
    (the construction used here), with FOSCTTM 0.014-0.015 in all three; one seed, and ARI varies by about 0.03
    across seeds. ``n_layers=0`` is kept as a baseline (``python -m benchmarks.regime --methods scmamba_no_block``).

    Parameters
    ----------
    mdata
        MuData registered with :meth:`setup_mudata`.
    n_latent
        Embedding size.
    d_model
        Token width of the encoders.
    n_layers
        (Mamba2, MLP) blocks per encoder; an int, or a dict with a value for every modality.
    patch_size
        Features per token; an int, or a dict per modality (``None``: 128 genes, 1,024 peaks, 8 proteins).
    max_tokens
        Most tokens per modality: where ``patch_size`` would give more, the patches grow to
        ``ceil(n_features / max_tokens)`` features. The encoder blocks cost time per token, so at full
        transcriptome and peak width (36,601 genes, ~150,000 peaks) this keeps a step as cheap as at a few thousand
        features; each feature keeps its own projection weights, so a larger patch adds features to a token
        without averaging them. ``None``: exactly ``patch_size``.
    d_state, headdim, expand, chunk_size
        Mamba2 state size, head width, inner expansion and SSD chunk length (the chunk length changes speed only:
        the scan is exact for any chunking).
    mlp_hidden
        Hidden width of the block MLPs (``None``: ``2 * d_model``).
    head_hidden
        Hidden width of the encoder heads.
    dropout
        Dropout in the encoders (on the tokens and in the block MLPs); a float, or a dict with a value for every
        modality. ``None``: 0.2 when fewer than 5,000 cells are measured in both layers, else 0.1: the alignment is
        learned from the paired cells, and with few of them the encoders need more regularisation to embed new
        cells (and, in a mosaic, the single-layer cells) where their partners would be. The value chosen is kept
        with the model (saved, and reused by :meth:`load_query_data`).
    feature_dropout
        Fraction of each cell's measured features dropped at random in every training step: an augmentation that
        keeps the encoders from memorising individual cells. One value, or a dict per modality (``None``: 0.3 RNA,
        0.5 ATAC, 0 protein: panels of tens of antibodies lose rare cell types when markers are dropped); a dict
        without some modality gives it that default.
    pooling
        How the tokens become one vector for the head: ``'flatten'`` (all tokens side by side, so every genomic
        region keeps its own weights up to the head), ``'mean'`` of the tokens, or the ``'last'`` token of the
        causal scan (the paper's choice).
    projection
        ``'per_region'``: a projection per feature, so tokens carry which features they hold; ``'shared'``: one
        patch projection for all regions (the paper).
    bin_size
        With ``'per_region'``: each feature's projection also has a part shared with the ``bin_size`` consecutive
        genome-ordered features of its bin, so rarely non-zero features (most ATAC peaks) borrow strength from their
        neighbours. An int, or a dict per modality (``None``: 8 for ATAC, none for genes and proteins).
    n_bins
        Relative-level bins for RNA and protein values (``None``: log-normalised values).
    temperature_init
        Initial InfoNCE temperature (learnable unless ``learn_temperature=False``).
    learn_temperature
        Learn the temperature.
    lambda_con, lambda_sim
        Weights of the InfoNCE and the cosine-similarity terms (the cross-modal alignment).
    lambda_rec
        Weight of the reconstruction term: each embedding predicts both profiles of its cell. It keeps in each
        embedding what distinguishes cells in its own modality, not only what the modalities share (0: the
        paper's contrastive objective alone).
    lambda_adv
        Weight of an adversarial batch classifier on the embeddings (:class:`~scmamba.nn.BatchClassifier`): the
        encoders are trained to make the batch unpredictable from the embedding, which removes batch effects the
        decoders' per-batch offsets leave in it (the contrastive term otherwise keeps them: they help tell cells
        apart). Used only with ``batch_key`` and at least two batches; without, the model has no classifier.
        0: off.
    batch_negatives
        Contrast each cell only with cells of its own batch (needs ``batch_key``), so that what differs between
        batches cannot help the contrastive task.
    use_fused_kernels
        ``None``: mamba-ssm's fused SSD kernel on CUDA when it is installed, else the PyTorch SSD; ``False``:
        always the PyTorch path.
    linear_view
        Components of each layer's classic linear reduction (RNA: PCA of ``normalize_total`` + ``log1p``; ATAC:
        TF-IDF + LSI; protein: PCA of CLR values), fitted on the registered cells when the model is built and kept
        fixed (:class:`~scmamba.nn.LinearView`; saved with the weights, applied to query cells as to the training
        cells). It enters each layer's embedding through a trained projection, and the encoder's output layer starts
        at zero, so training starts from the classic embedding and the Mamba2 encoder adds what the objective finds
        beyond it. On a few hundred cells the classic reduction is what keeps cell types apart (the encoders alone
        fell below RNA PCA there); at a few thousand cells it still adds (``benchmarks/README.md``, regime table).
        ``None`` or 0: the encoders alone.
    layer_weights
        Each layer's weight in the joint embedding (``get_latent_representation()``, ``modality='joint'``).
        ``'reliability'``: measured after training from the split-half reliability of each layer's embedding (each
        cell's counts thinned into two independent halves; the agreement of the Leiden clusterings of the two
        halves' embeddings, on up to 2,000 cells), weights proportional to the squared odds ``(r / (1 - r))**2``,
        so a layer that says little about the cells (a sparse peak panel, a noisy antibody panel) weighs little and
        the joint embedding does not fall below the better layer. ``'equal'``: the plain mean of the layers.
        A dict, e.g. ``{'rna': 0.7, 'atac': 0.3}``: fixed weights. The weights are in :attr:`layer_weights_`
        (saved with the model; a query model from :meth:`load_query_data` keeps its reference's). Per-layer
        embeddings (``modality='rna'`` ...) are unaffected and stay in the same space.

    Examples
    --------
    >>> import scmamba
    >>> mdata = scmamba.datasets.snareseq_cortex_demo()
    >>> scmamba.SCMAMBA.setup_mudata(mdata, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac"})
    >>> model = scmamba.SCMAMBA(mdata)
    >>> model.train()
    >>> mdata.obsm["X_scmamba"] = model.get_latent_representation()

    Notes
    -----
    The defaults are chosen on held-out cells and are sized to train on a CPU; ``benchmarks/README.md`` has the
    measurements behind each choice. :meth:`paper_config` gives the sizes and choices of the scMamba paper
    (``SCMAMBA(mdata, **SCMAMBA.paper_config())``), which want a GPU.
    """

    _module_cls = ScMambaModule
    _data_splitter_cls = SparseDataSplitter
    _training_plan_cls = ContrastiveTrainingPlan

    def __init__(
        self,
        mdata: MuData,
        *,
        n_latent: int = 64,
        d_model: int = 64,
        n_layers: int | Mapping[str, int] = 1,
        patch_size: int | Mapping[str, int] | None = None,
        max_tokens: int | None = 64,
        d_state: int = 32,
        headdim: int = 32,
        expand: int = 2,
        chunk_size: int = 64,
        mlp_hidden: int | None = None,
        head_hidden: int = 256,
        dropout: float | Mapping[str, float] | None = None,
        feature_dropout: float | Mapping[str, float] | None = None,
        pooling: Pooling = "flatten",
        projection: Projection = "per_region",
        bin_size: int | Mapping[str, int | None] | None = None,
        n_bins: int | None = 51,
        temperature_init: float = 0.07,
        learn_temperature: bool = True,
        lambda_con: float = 0.1,
        lambda_sim: float = 0.1,
        lambda_rec: float = 1.0,
        lambda_adv: float = 1.0,
        batch_negatives: bool = False,
        use_fused_kernels: bool | None = None,
        linear_view: int | None = 50,
        layer_weights: Literal["reliability", "equal"] | Mapping[str, float] = "reliability",
    ):
        if not isinstance(mdata, MuData):
            raise TypeError(
                f"SCMAMBA needs the MuData its encoders are built for (registered with SCMAMBA.setup_mudata), got "
                f"{type(mdata).__name__}."
            )
        if self._get_most_recent_anndata_manager(mdata) is None:
            raise ValueError(
                "This MuData is not set up for SCMAMBA. Call SCMAMBA.setup_mudata(mdata, modalities={...}) first."
            )
        super().__init__(mdata)
        setup_args = self.adata_manager.registry["setup_args"]
        modality_names = setup_args["modalities"]
        self.modality_mods_ = {
            m: modality_names[arg] for m, arg in MODALITY_LAYER_ARGS.items() if modality_names.get(arg) is not None
        }
        n_features, orders = {}, {}
        for modality, mod in self.modality_mods_.items():
            var = self.adata.mod[mod].var
            order = self.adata_manager.genome_order(modality)
            n_features[modality], orders[modality] = var.shape[0], order.order
            logger.info(
                "%s: %d features in genomic order (from %s), %d without coordinates placed last.",
                modality, var.shape[0], order.source, order.n_unplaced,
            )  # fmt: skip
        modalities = list(n_features)
        if dropout is None:  # resolved here, so that init_params_ (saved with the model) hold the rate used
            n_paired = self._n_paired_cells()
            dropout = encoder_dropout(n_paired)
            logger.info("Encoder dropout %s (%d cells measured in both layers).", dropout, n_paired)
        bins = _per_modality("bin_size", bin_size, modalities)
        if projection != "per_region":
            bins = dict.fromkeys(modalities) if bin_size is None else bins
        self.module = self._module_cls(
            n_features,
            orders,
            n_batch=self.summary_stats.n_batch,
            n_latent=n_latent,
            d_model=d_model,
            n_layers=_per_modality("n_layers", n_layers, modalities),
            patch_size=_patch_sizes(patch_size, max_tokens, n_features),
            d_state=d_state,
            headdim=headdim,
            expand=expand,
            mlp_hidden=mlp_hidden or 2 * d_model,
            head_hidden=head_hidden,
            chunk_size=chunk_size,
            dropout=_per_modality("dropout", dropout, modalities),
            feature_dropout=_per_modality("feature_dropout", feature_dropout, modalities),
            pooling=pooling,
            projection=projection,
            bin_size=bins,
            n_bins=n_bins,
            temperature_init=temperature_init,
            learn_temperature=learn_temperature,
            lambda_con=lambda_con,
            lambda_sim=lambda_sim,
            lambda_rec=lambda_rec,
            lambda_adv=lambda_adv,
            batch_negatives=batch_negatives,
            use_fused_kernels=use_fused_kernels,
            feature_log_frequency=self._feature_log_frequency() if lambda_rec > 0 else None,
            linear_views=self._linear_views(linear_view) if linear_view else None,
        )
        self._set_layer_weights_arg(layer_weights)
        n_params = sum(p.numel() for p in self.module.parameters())
        tokens = {m: enc.tokenizer.n_patches for m, enc in self.module.encoders.items()}
        self._model_summary_string = (
            f"SCMAMBA: modalities {n_features}, tokens {tokens}, n_latent {n_latent}, d_model {d_model}, "
            f"n_layers {n_layers}, pooling {pooling!r}, lambda_rec {lambda_rec}, {n_params / 1e6:.2f}M parameters."
        )
        self._model_summary_string += self._mosaic_summary()
        self.init_params_ = self._get_init_params(locals())

    def _set_layer_weights_arg(self, layer_weights) -> None:
        """Fixed weights from a dict now; ``'reliability'`` weights are measured after training (:meth:`train`)."""
        if isinstance(layer_weights, Mapping):
            unknown = set(layer_weights) - set(self.modalities)
            missing = set(self.modalities) - set(layer_weights)
            values = np.array([float(layer_weights.get(m, 0.0)) for m in self.modalities])
            if unknown or missing or not (np.all(values >= 0) and values.sum() > 0):
                raise ValueError(
                    f"layer_weights as a dict needs a non-negative weight for each of {self.modalities} (not all "
                    f"zero), got {dict(layer_weights)}."
                )
            self.module.layer_weights.copy_(torch.as_tensor(values / values.sum()))
        elif layer_weights not in ("reliability", "equal"):
            raise ValueError(
                f"layer_weights must be 'reliability', 'equal' or a dict of weights per layer, got {layer_weights!r}."
            )
        self.layer_weights_mode_ = "fixed" if isinstance(layer_weights, Mapping) else layer_weights
        self._sync_layer_weights()

    def _sync_layer_weights(self) -> None:
        #: Each layer's weight in the joint embedding (``modality='joint'``), e.g. ``{'rna': 0.9, 'atac': 0.1}``;
        #: a copy of the module's buffer ``layer_weights``, which the embedding uses.
        self.layer_weights_ = dict(zip(self.modalities, self.module.layer_weights.tolist(), strict=True))

    def _measure_layer_weights(self) -> None:
        """Set the joint embedding's layer weights from each layer's split-half reliability (``_layer_weights.py``)."""
        from ._layer_weights import measure_layer_weights

        matrices = {m: self.adata_manager.get_from_registry(MODALITY_REGISTRY_KEYS[m]) for m in self.modality_mods_}
        self.layer_reliability_ = measure_layer_weights(self.module, matrices, EMBED_BATCH_SIZE)
        self._sync_layer_weights()
        logger.info("Layer reliability %s; joint embedding weights %s.", self.layer_reliability_, self.layer_weights_)

    def _linear_views(self, n_components: int) -> dict:
        """Each layer's classic reduction, fitted on the cells measured in it (``model/_linear_views.py``)."""
        from ._linear_views import fit_linear_view

        views = {}
        for modality in self.modality_mods_:  # a modality's matrix holds exactly the cells measured in it
            X = self.adata_manager.get_from_registry(MODALITY_REGISTRY_KEYS[modality])
            views[modality] = fit_linear_view(X, modality, n_components)
        return views

    def _n_paired_cells(self) -> int:
        """Cells measured in both (the first two) registered layers: all cells unless the MuData is a mosaic."""
        mosaic = getattr(self.adata_manager, "mosaic", None)
        if mosaic is None or len(mosaic.modalities) < 2:
            return self.adata.n_obs
        mod_a, mod_b = mosaic.modalities[:2]
        return int((mosaic.observed[mod_a] & mosaic.observed[mod_b]).sum())

    def _mosaic_summary(self) -> str:
        mosaic = getattr(self.adata_manager, "mosaic", None)
        if mosaic is None or not mosaic.is_mosaic:
            return ""
        return f" Mosaic data, {mosaic.describe()}."

    def _feature_log_frequency(self) -> dict[str, np.ndarray]:
        """Log share of all counts per feature (ATAC: of all open peaks), read in row blocks; initial decoder biases."""
        out = {}
        for modality in self.modality_mods_:
            X = self.adata_manager.get_from_registry(MODALITY_REGISTRY_KEYS[modality])
            total = np.zeros(X.shape[1])
            for _, block in iter_row_blocks(X):
                block = sparse.csr_matrix(block)
                if modality == "atac":
                    block.data = (block.data > 0).astype(block.data.dtype)
                total += np.asarray(block.sum(axis=0)).ravel()
            freq = total + 1.0
            out[modality] = np.log(freq / freq.sum()).astype(np.float32)
        return out

    @classmethod
    def paper_config(cls, modalities: Sequence[str] | MuData | None = None) -> dict:
        """Keyword arguments with the sizes and choices of the scMamba paper (:func:`~scmamba.model.paper_config`).

        ``modalities``: the modality kinds (e.g. ``('rna', 'protein')``), or the MuData (its set-up's modalities,
        or those its modality names stand for); ``None``: values for every kind, so the dict fits any pair.
        """
        if isinstance(modalities, MuData):
            manager = cls._get_most_recent_anndata_manager(modalities)
            if manager is not None:
                registered = registered_modalities(manager.registry["setup_args"]["modalities"])
            else:
                found = {m: find_modality(modalities.mod, m) for m in MODALITY_LAYER_ARGS}
                registered = {m: mod for m, mod in found.items() if mod is not None}
            modalities = list(registered)
        return paper_config(modalities)

    @staticmethod
    def small_config() -> dict:
        """Keyword arguments of a tiny architecture for smoke tests (:func:`~scmamba.model.small_config`)."""
        return small_config()

    @property
    def modalities(self) -> list[str]:
        """Encoded modalities, e.g. ``['rna', 'atac']``."""
        return list(self.module.modalities)

    @classmethod
    def setup_mudata(
        cls,
        mdata: MuData,
        rna_layer: str | None = None,
        atac_layer: str | None = None,
        protein_layer: str | None = None,
        batch_key: str | None = None,
        rna_annotation: str | os.PathLike | pd.DataFrame | None = None,
        atac_annotation: str | os.PathLike | pd.DataFrame | None = None,
        modalities: dict[str, str] | None = None,
        **kwargs,
    ):
        """Register a paired or partially paired (mosaic) MuData (RNA+ATAC, RNA+protein or ATAC+protein) for SCMAMBA.

        Parameters
        ----------
        mdata
            MuData with raw counts. A cell may be missing from one registered modality (measured in the other only:
            a mosaic of paired and single-modality cells, see Notes).
        rna_layer, atac_layer, protein_layer
            Layer with raw counts of each modality (``None``: ``.X``).
        batch_key
            Optional ``obs`` column of batches (libraries, donors). The model uses it in training: the decoders'
            per-batch offsets, the adversarial batch classifier (``lambda_adv``) and ``batch_negatives``;
            :meth:`load_query_data` adds a query's new batches.
        rna_annotation, atac_annotation
            Where genomic coordinates come from when ``var`` has none: a genome name of the shipped tables
            (``'GRCh38'``, ``'GRCh37'``, ``'GRCm38'``), a table/GTF path or a DataFrame. By default coordinates are
            read from ``var`` (``chrom``/``start`` columns, a 10x ``interval`` column) or parsed from peak names.
        modalities
            Setup argument -> modality name, e.g. ``{'rna_layer': 'rna', 'atac_layer': 'atac', 'batch_key': 'rna'}``.
            ``None`` infers the modality names from common ones (``rna``/``gex``, ``atac``/``peaks``,
            ``prot``/``adt``/``protein``).

        Notes
        -----
        **Pairing.** Cells are matched across modalities by ``obs_names``, not by row position: the modalities may
        hold the same cells in different row orders (e.g. read from separate files), and every result (embeddings,
        training minibatches) follows ``mdata.obs_names``. Other modalities of the MuData (e.g. hashtags measured
        on some cells) are not used and need not be paired.

        **Mosaic data.** A cell absent from a registered modality's ``obs`` was not measured in it (the MuData
        convention): e.g. ``MuData({'rna': rna, 'atac': atac})`` built from a multiome sample plus an scRNA-seq and
        an scATAC-seq experiment. Such a MuData is accepted and reported (``logging`` at INFO, and in the model's
        summary: how many cells are paired and how many have one layer only). Training uses every cell: paired
        cells through the cross-modal terms (contrastive alignment, each layer predicting the other) and every
        cell through the reconstruction of its own measured layers from its own embedding; the cells of one layer
        only reach the shared space through the paired ones. Set-up fails, with what to fix, when no cell is
        measured in both layers, when a registered modality has no cells, when a cell of ``mdata.obs`` is in no
        registered modality, or when ``batch_key`` is read from a modality that lacks some cells (put it into
        ``mdata.obs``). :meth:`get_latent_representation` gives one row per cell (:meth:`get_latent_layers` says
        from which layers). Fully paired data is trained exactly as before (no masks).

        **Checks.** The same checks run for this set-up and for every query (``get_latent_representation`` on a new
        MuData, :meth:`load`, :meth:`load_query_data`): modality and layer names, unique cell and feature names,
        pairing, values (no NaN/inf/negative values, no empty cells), the ``batch_key`` column (no missing values)
        and, here, genomic coordinates (an ``rna_annotation`` that places fewer than half of the genes is an
        error naming a better one). Training and embedding check first that the registered modalities, layers,
        features and cells are still there (a matrix replaced after set-up is checked again).

        **What is changed.** Nothing in ``mdata``'s data; scvi-tools' registration adds ``uns['_scvi_uuid']``,
        ``uns['_scvi_manager_uuid']`` and the code columns ``_scvi_batch`` / ``_scvi_labels`` to ``obs`` (of
        the modality holding ``batch_key``, or ``mdata.obs``).
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        layers = {"rna_layer": rna_layer, "atac_layer": atac_layer, "protein_layer": protein_layer}
        modalities = resolve_modalities(mdata, modalities, layers)
        setup_method_args["setup_args"]["modalities"] = dict(modalities)
        mods = cls._create_modalities_attr_dict(modalities, setup_method_args)

        registered = {m: mods[arg] for m, arg in MODALITY_LAYER_ARGS.items() if mods.get(arg) is not None}
        mudata_fields = [
            fields.MuDataLayerField(
                MODALITY_REGISTRY_KEYS[modality],
                layers[MODALITY_LAYER_ARGS[modality]],
                mod_key=mod,
                # values are checked by validate_mudata (scvi-tools' check fails on scipy sparse arrays)
                is_count_data=False,
                mod_required=True,
            )
            for modality, mod in registered.items()
        ]
        mudata_fields += [
            fields.MuDataCategoricalObsField(REGISTRY_KEYS.BATCH_KEY, batch_key, mod_key=mods.batch_key),
            fields.MuDataCategoricalObsField(REGISTRY_KEYS.LABELS_KEY, None, mod_key=None),
        ]
        # the manager validates the data (set-up and queries alike) and pairs modalities by obs_names
        adata_manager = PairedMuDataManager(fields=mudata_fields, setup_method_args=setup_method_args)
        adata_manager.register_fields(mdata, **kwargs)
        cls.register_manager(adata_manager)

    @classmethod
    def _get_most_recent_anndata_manager(cls, adata, required: bool = False):
        # a model built on data changed after set-up would not match its registry: check before using it
        manager = super()._get_most_recent_anndata_manager(adata, required=required)
        if isinstance(manager, PairedMuDataManager):
            manager.check_data()
        return manager

    @classmethod
    def setup_anndata(cls, adata: AnnData, **kwargs):
        """Not supported: SCMAMBA needs paired modalities; use :meth:`setup_mudata`."""
        raise NotImplementedError(
            "SCMAMBA integrates paired modalities: put them in a MuData and call SCMAMBA.setup_mudata. "
            "To embed RNA-only cells with a trained model use model.get_latent_representation(adata, modality='rna')."
        )

    def train(
        self,
        max_epochs: int | None = None,
        *,
        lr: float = 1e-3,
        batch_size: int | None = None,
        train_size: float | None = None,
        validation_size: float | None = None,
        early_stopping: bool = False,
        precision: str | int | None = None,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        datasplitter_kwargs: dict | None = None,
        plan_kwargs: dict | None = None,
        data_source: Literal["auto", "memory", "stream"] = "auto",
        **trainer_kwargs,
    ):
        """Train the encoders contrastively.

        Parameters
        ----------
        max_epochs
            Passes over the training cells. ``None``: one per 50 training cells, between 10 and 50 (10 for 500
            cells, 20 for 1,000, 50 from 2,500 cells on). Training starts from each layer's classic reduction
            (``linear_view``), and on a few hundred cells more passes let the encoders fit the cells they see at the
            cost of the cell-type structure (on 500-cell sets Leiden ARI fell from 0.36 after 10 passes to 0.18 after
            50), while from a few thousand cells on 50 passes are what the defaults were chosen with
            (``benchmarks/README.md``, regime table). A 100k-cell atlas gets 50 passes, tens of thousands of steps.
        lr
            Peak learning rate (AdamW, linear warm-up then cosine decay).
        batch_size
            Cells per minibatch (per process under DDP); larger batches give more negatives. ``None``: about 128,
            evened out so that the minibatches of an epoch hold every training cell (``n_train // ceil(n_train /
            128)`` cells each; fewer cells than minibatches are left out of an epoch, a different few each time): with
            exactly 128 and ``drop_last``, 116 of 500 cells would sit out every epoch.
        train_size, validation_size
            Split of the cells; the validation cells give ``validation_loss``. By default (``None``) every cell is
            trained on (``1.0``), or 0.9 of them (scvi-tools' split) with ``early_stopping`` or a
            ``validation_size``, which need validation cells. The contrastive objective fits the pairs it
            trains on, so cells held out for a validation loss would be embedded as new cells, less faithfully
            than the rest, into the neighbour graph and clusters of the same data. With no validation cells there
            is no validation loop, as in scvi-tools.
        early_stopping
            Stop when ``validation_loss`` stops improving (``early_stopping_patience`` etc. go to trainer kwargs).
        precision
            Lightning precision, e.g. ``'bf16-mixed'`` (bf16 autocast on CPU or GPU; SSD decays and state passing
            stay in float32). ``'bf16'`` is accepted as a shorthand.
        accelerator, devices
            Lightning accelerator and devices, e.g. ``accelerator='gpu', devices=4, strategy='ddp'``.
        datasplitter_kwargs
            Passed to :class:`~scvi.dataloaders.DataSplitter` (``drop_last=True`` by default: every training
            minibatch has ``batch_size`` cells, so the contrastive task has a constant number of negatives). With
            ``drop_last=False``, a last minibatch of a single cell (which BatchNorm cannot train on) is still
            dropped, with a warning.
        plan_kwargs
            Passed to :class:`~scmamba.train.ContrastiveTrainingPlan` (``weight_decay``, ``warmup_fraction`` ...).
        data_source
            ``'stream'``: minibatches read in contiguous chunks, shuffled in memory buffers, by a reader thread
            (:class:`~scmamba.dataloaders.StreamingDataModule`; ``datasplitter_kwargs`` then also take
            ``chunk_size``, ``buffer_cells``, ``prefetch``, ``pin_memory``): for data on disk, larger than memory.
            ``'memory'``: scvi-tools' loader of random rows. ``'auto'``: streaming when the MuData is backed.
        **trainer_kwargs
            Passed to :class:`~scvi.train.Trainer` / Lightning (``strategy``, ``gradient_clip_val`` ...).

        Notes
        -----
        With glibc (Linux), training and :meth:`get_latent_representation` keep freed memory in the process for the
        next minibatch instead of returning it to the kernel, and return it at the end (``scmamba._malloc``); set
        the environment variable ``SCMAMBA_MALLOC_TUNING=0`` to leave malloc's settings alone.
        """
        self.adata_manager.check_data()  # registry vs data, before Lightning starts
        n_obs = self.adata.n_obs
        if train_size is None:
            train_size = 0.9 if early_stopping or validation_size is not None else 1.0
        fraction = float(train_size)
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"train_size must be in (0, 1], got {train_size}.")
        n_train = math.ceil(fraction * n_obs)  # as scvi-tools' DataSplitter
        n_val = n_obs - n_train if validation_size is None else math.floor(n_obs * validation_size)
        if n_train < 2:
            raise ValueError(
                f"SCMAMBA needs at least 2 training cells (its loss contrasts the cells of a minibatch); {n_obs} cells "
                f"with train_size={train_size} leave {n_train}."
            )
        if max_epochs is None:
            max_epochs = default_max_epochs(n_train)
        if batch_size is None:
            batch_size = n_train // math.ceil(n_train / DEFAULT_BATCH_SIZE)
        batch_size = max(2, min(batch_size, n_train))
        plan_kwargs = {"lr": lr, **(plan_kwargs or {})}
        datasplitter_kwargs = {"drop_last": True, **(datasplitter_kwargs or {})}
        if not datasplitter_kwargs["drop_last"] and n_train % batch_size == 1:
            warnings.warn(
                f"The last training minibatch would hold 1 cell ({n_train} training cells, batch_size={batch_size}), "
                "which BatchNorm cannot train on: it is dropped in every epoch (drop_last=True; minibatches are "
                "shuffled, so a different cell each epoch).",
                UserWarning,
                stacklevel=2,
            )
            datasplitter_kwargs["drop_last"] = True
        if precision is not None:
            trainer_kwargs["precision"] = {"bf16": "bf16-mixed", "16": "16-mixed"}.get(str(precision), precision)
        trainer_kwargs.setdefault("early_stopping_monitor", "validation_loss")
        trainer_kwargs.setdefault("gradient_clip_val", 1.0)
        if n_val > 0:
            trainer_kwargs.setdefault("check_val_every_n_epoch", 1)
        else:  # no validation cells: no validation loop (scvi-tools' default), whatever was asked
            if early_stopping:
                raise ValueError(
                    f"early_stopping monitors validation_loss, but train_size={train_size} leaves no validation "
                    f"cells of {n_obs}; lower train_size or train without early stopping."
                )
            trainer_kwargs.pop("check_val_every_n_epoch", None)
            trainer_kwargs["limit_val_batches"] = 0
        # Lightning keeps the modules' train/eval modes as it finds them; after get_latent_representation or
        # load_query_data they are in eval mode (dropout off, BatchNorm frozen), which must not carry into training.
        self.module.train()
        datamodule = training_datamodule(self.adata_manager, data_source, train_size=train_size,
                                         validation_size=validation_size, batch_size=batch_size,
                                         datasplitter_kwargs=datasplitter_kwargs)  # fmt: skip
        with reuse_freed_memory():
            result = super().train(
                datamodule=datamodule,
                load_sparse_tensor=True,
                max_epochs=max_epochs,
                accelerator=accelerator,
                devices=devices,
                train_size=train_size,
                validation_size=validation_size,
                batch_size=batch_size,
                early_stopping=early_stopping,
                datasplitter_kwargs=datasplitter_kwargs,
                plan_kwargs=plan_kwargs,
                **trainer_kwargs,
            )
        # a query model keeps its reference's weights, so that its joint embedding stays in the reference's space
        if self.layer_weights_mode_ == "reliability" and len(self.modalities) > 1 and not self._is_query_model():
            self._measure_layer_weights()
        return result

    def _is_query_model(self) -> bool:
        return bool(getattr(self, "from_reference_", False))

    def _reference_features(self, modality: str) -> pd.Index:
        return pd.Index(self.adata_manager.get_state_registry(MODALITY_REGISTRY_KEYS[modality])["column_names"])

    def get_var_names(self, legacy_mudata_format: bool = False):
        """Feature names per modality; for the encoded modalities the model's own (registered) features.

        :meth:`save` records these, so a saved model always lists the features it was built for, even when the
        MuData was changed after set-up.
        """
        names = super().get_var_names(legacy_mudata_format=legacy_mudata_format)
        if isinstance(names, dict):
            for modality, mod in self.modality_mods_.items():
                names[mod] = np.asarray(self._reference_features(modality))
        return names

    def _check_mudata_features(self, mdata: MuData, modalities: Sequence[str]) -> None:
        setup_args = self.adata_manager.registry["setup_args"]
        layers = {arg: setup_args.get(arg) for arg in MODALITY_LAYER_ARGS.values()}
        check_modalities_and_layers(mdata, self.modality_mods_, layers)
        for modality in modalities:
            mod = self.modality_mods_[modality]
            difference = features_differ(mdata.mod[mod].var_names, self._reference_features(modality))
            if difference is not None:
                raise ValueError(features_message(mod, modality, difference))

    @torch.inference_mode()
    def get_latent_representation(
        self,
        adata: MuData | AnnData | None = None,
        *,
        modality: Modality = "joint",
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
        layer: str | None = None,
        out: str | os.PathLike | None = None,
    ) -> np.ndarray:
        """Cell embeddings (L2-normalised), as numpy.

        Parameters
        ----------
        adata
            A MuData like the training data (``None``: the training data), or an AnnData of one modality
            (e.g. RNA-only query cells) whose features are aligned to the reference's (missing ones zero-filled,
            with a warning). Either gets the checks of :meth:`setup_mudata` (values, layers, names); backed
            (``backed='r'``) data are read in blocks.
        modality
            ``'joint'``: the mean of the modality embeddings with the weights :attr:`layer_weights_`, normalised
            (one vector per cell, for neighbours, UMAP, clustering); ``'rna'``, ``'atac'`` or ``'protein'``: that
            modality's encoder alone.
        indices
            Cells to embed (default all).
        batch_size
            Cells per minibatch (default 256, ``EMBED_BATCH_SIZE``).
        layer
            For an AnnData input: the layer with raw counts (``None``: ``.X``).
        out
            A ``.npy`` or ``.h5ad`` file to write the embedding to, block by block, for more cells than memory holds
            (:func:`~scmamba.dataloaders.write_latent`); returned as a memory-mapped array or an AnnData with it in
            ``obsm['X_scmamba']`` (``'X_scmamba_<modality>'``), for scanpy and :func:`~scmamba.tl.match_cells`.

        Returns
        -------
        ``(cells, n_latent)`` array; rows in ``mdata.obs_names`` order for a MuData (cells are paired across
        modalities by ``obs_names``, whatever each modality's row order, for every ``modality``), in the AnnData's
        row order for an AnnData; ``indices`` refer to those rows.

        On a mosaic MuData (cells measured in one layer only, see :meth:`setup_mudata`) every cell gets a row, in
        the same space: ``'joint'`` is the weighted mean over the layers the cell was measured in (the joint
        embedding for paired cells, the one layer's embedding otherwise); a modality's embedding is NaN for the
        cells not measured in it (with a warning). :meth:`get_latent_layers` gives, per row, the layers used. Data to
        embed need not have pairs: a selection such as ``mdata[atac_only].copy()`` (no cell in the RNA layer) works.
        """
        if out is not None:
            return write_latent(self, out, adata=adata, modality=modality, indices=indices, batch_size=batch_size,
                                layer=layer)  # fmt: skip
        if not getattr(self, "from_reference_", False):  # a query model embeds with the reference's weights
            self._check_if_trained(warn=True)
        batch_size = batch_size or EMBED_BATCH_SIZE
        self.module.eval()
        if isinstance(adata, AnnData):
            if modality == "joint":
                raise ValueError("An AnnData holds one modality: pass modality='rna', 'atac' or 'protein'.")
            return self._embed_anndata(adata, modality, indices=indices, batch_size=batch_size, layer=layer)
        mods = self._latent_modalities(modality)
        if adata is not None:
            if not isinstance(adata, MuData):
                raise TypeError(f"Expected a MuData or AnnData, got {type(adata).__name__}.")
            self._check_mudata_features(adata, mods)
        adata = self._validate_anndata(adata)
        mosaic = self.get_anndata_manager(adata, required=True).mosaic
        loader = embedding_loader(self, adata, indices=indices, batch_size=batch_size)  # streamed when backed
        chunks = []
        for tensors in self._embedding_run(loader):
            out = self.module.inference(**self.module._get_inference_input(tensors, modalities=mods))
            chunks.append(self.module.fuse(out, mods).cpu())
        z = torch.cat(chunks).numpy()
        if mosaic is not None and mosaic.is_mosaic:
            n_none = int(np.isnan(z[:, 0]).sum())
            if n_none:
                warnings.warn(
                    f"{n_none:,} of the {len(z):,} cells embedded were not measured in {modality!r}: their rows are "
                    f"NaN. Use modality='joint' for one embedding of every cell (each from the layers it has), or keep "
                    f"the measured cells: model.get_latent_layers(mdata, modality={modality!r}) != 'none'.",
                    UserWarning,
                    stacklevel=3,
                )
        return z

    def _embedding_run(self, minibatches: Iterable) -> Iterator:
        """Yield from ``minibatches`` with the token projections built once and freed memory kept for reuse."""
        with reuse_freed_memory(), self.module.frozen_tokenizers():
            yield from minibatches

    def _latent_modalities(self, modality: str) -> list[str]:
        if modality != "joint" and modality not in self.modalities:
            raise ValueError(f"modality must be 'joint' or one of {self.modalities}, got {modality!r}.")
        return self.modalities if modality == "joint" else [modality]

    def get_latent_layers(
        self,
        adata: MuData | None = None,
        *,
        modality: Modality = "joint",
        indices: Sequence[int] | None = None,
    ) -> pd.Series:
        """Which layers each row of :meth:`get_latent_representation` (same arguments) was computed from.

        Parameters
        ----------
        adata
            A MuData like the training data (``None``: the training data).
        modality
            As in :meth:`get_latent_representation`.
        indices
            Cells (rows of ``mdata.obs_names``), default all.

        Returns
        -------
        Categorical Series indexed by ``obs_names``: the layers joined by ``'+'`` (``'rna+atac'`` for a paired cell
        with ``modality='joint'``, ``'rna'`` for an RNA-only cell), ``'none'`` where the row is NaN (a cell not
        measured in ``modality``). ``series.value_counts()`` reports the mosaic. Nothing is written to ``adata``;
        to keep it, e.g. ``mdata.obs['scmamba_layers'] = model.get_latent_layers(mdata)``.
        """
        mods = self._latent_modalities(modality)
        if adata is not None and not isinstance(adata, MuData):
            raise TypeError(
                f"get_latent_layers needs a MuData, got {type(adata).__name__}; an AnnData's rows all come from its "
                "one layer."
            )
        adata = self._validate_anndata(adata)
        mosaic = self.get_anndata_manager(adata, required=True).mosaic
        if mosaic is None:  # registered before mosaic support: fully paired by construction
            mosaic = check_paired(adata, self.modality_mods_)
        rows = slice(None) if indices is None else np.asarray(indices)
        layers = np.full(adata.n_obs, "", dtype=object)
        for m in mods:
            obs = mosaic.observed[m]
            layers[obs] = np.where(layers[obs] == "", m, layers[obs] + "+" + m)
        layers[layers == ""] = "none"
        layers = layers[rows]
        names = adata.obs_names[rows]
        order = [c for c in mosaic.counts() if set(c.split("+")) <= set(mods)]
        categories = list(dict.fromkeys([*order, *sorted(set(layers)), "none"]))
        values = pd.Categorical(layers, categories=categories).remove_unused_categories()
        return pd.Series(values, index=names, name="scmamba_layers")

    def _embed_anndata(self, adata: AnnData, modality: str, *, indices, batch_size: int, layer: str | None):
        if modality not in self.modalities:
            raise ValueError(f"This model encodes {self.modalities}; it has no {modality!r} encoder.")
        if adata.n_obs == 0:
            raise ValueError("The AnnData has no cells (an empty selection?).")
        name = f"AnnData given for modality {modality!r} (layer {layer or 'X'})"
        # every storage (dense, CSR, CSC, sparse arrays, any dtype, duplicate entries) is read as canonical float32 CSR
        X = row_readable(layer_matrix(adata, layer, what=f"the AnnData given for modality {modality!r}"))
        aligner = FeatureAligner(adata.var_names, self._reference_features(modality), name=name, stacklevel=5)
        rows = None if indices is None else row_indices(indices, adata.n_obs)
        n_rows = X.shape[0] if rows is None else len(rows)
        if n_rows == 0:
            raise ValueError("indices select no cells of the AnnData.")
        # the checks of set-up, on the aligned blocks, before anything is embedded
        counts = "X" if layer is None else f"layers[{layer!r}]"
        empty = (
            f"no counts in the model's {aligner.n_reference:,} "
            f"{modality} features (any counts they have are in features the model was not trained on), so nothing to "
            "embed. Embed the other cells: keep = np.asarray(adata[:, adata.var_names.isin(model.get_var_names()"
            f"[{self.modality_mods_[modality]!r}])].{counts}.sum(1)).ravel() > 0, then "
            f"model.get_latent_representation(adata, modality={modality!r}, indices=keep"
            + ("" if layer is None else f", layer={layer!r}")
            + ")"
        )
        checker = CountChecker(name=name, modality=modality, n_rows=n_rows, empty=empty)
        for offset, block in iter_row_blocks(X, rows, name=name):
            checker.update(aligner.apply(block), offset)
        checker.finish(stacklevel=5)
        device = next(self.module.parameters()).device
        chunks = []
        for start in self._embedding_run(range(0, n_rows, batch_size)):
            part = slice(start, start + batch_size) if rows is None else rows[start : start + batch_size]
            x = aligner.apply(read_rows(X, part, name=name))
            counts = SparseRows.from_scipy(x, device=device)
            chunks.append(self.module.embed(modality, counts).cpu())
        return torch.cat(chunks).numpy()

    @classmethod
    def prepare_query_mudata(cls, mdata: MuData, reference_model: SCMAMBA) -> MuData:
        """A copy of ``mdata`` whose modalities have exactly the reference model's features, in its order.

        Features the query lacks are zero-filled (with a warning saying how many); extra features are dropped.
        Cells are paired by ``obs_names``: every modality of the copy holds its cells in ``mdata.obs_names`` order
        (all of them for paired data; a mosaic stays a mosaic). ``obs`` and modality names are kept; modalities the
        model does not use are left out. The query gets the checks of :meth:`setup_mudata` (layers, names, pairing,
        values); backed (``backed='r'``) data are read in blocks and the copy is in memory. The input is not modified.
        """
        from ._query import prepare_query_mudata

        return prepare_query_mudata(mdata, reference_model)

    @classmethod
    def load_query_data(
        cls,
        mdata: MuData,
        reference_model: SCMAMBA | str | os.PathLike,
        *,
        trainable: str | Sequence[str] = "norms",
        unfrozen: bool = False,
        accelerator: str = "auto",
        device: int | str = "auto",
        trust_pickle: bool = False,
    ) -> SCMAMBA:
        """A model for query cells (a new donor or batch) in the reference model's embedding space, scArches-style.

        The query is registered with the reference's setup (new batch categories are added) and the model starts
        from the reference weights, so before any training it embeds cells exactly as the reference does. Calling
        :meth:`train` on it then fine-tunes only the ``trainable`` parameter groups on the query's own pairs
        (plus the decoders' per-batch offsets and the batch classifier, which enter the training loss but never the
        embedding); everything else stays frozen at the reference values, which keeps the query in the reference space
        (reference embeddings and labels stay valid). Without training the query model is a plain mapping, the
        better default for label transfer: fine-tuning moves the query away from the reference embeddings a
        classifier is fitted on (``benchmarks/README.md``, label transfer, has the measurements).

        Parameters
        ----------
        mdata
            Query MuData with the reference's modalities and features in the reference order (use
            :meth:`prepare_query_mudata` to align it); raw counts in the reference's layers. It gets the checks of
            :meth:`setup_mudata`; cells are paired across modalities by ``obs_names`` and the query model's results
            follow ``mdata.obs_names``.
        reference_model
            Trained model, or the folder it was saved to.
        trainable
            Groups trained when the query model is fine-tuned: ``'norms'`` (default: RMSNorm/BatchNorm scales
            and biases; a few thousand parameters), ``'embedding'`` (patch projections and position embeddings,
            for shifted input distributions), ``'head'`` (MLP heads), ``'all'``, or a list of these.
        unfrozen
            Train every parameter (same as ``trainable='all'``), as in scvi-tools.
        accelerator, device
            Where the query model lives (Lightning style; ``'auto'``: the GPU if there is one).
        trust_pickle
            Read a reference folder that needs unpickling (see :meth:`load`); only for folders you trust.

        Returns
        -------
        The query model (``is_trained_`` False until :meth:`train` is called; it embeds right away, with the
        reference's weights, without the untrained-model warning; ``from_reference_`` is True). Its freeze
        (``trainable_parameters_``, ``trainable_groups_``) is saved with it: :meth:`load` restores it.

        Notes
        -----
        scvi-tools' :meth:`~scvi.model.base.ArchesMixin.load_query_data` freezes by the naming rules of
        ``FCLayers``; SCMAMBA has none, so those rules would freeze every parameter. This override keeps the same
        call pattern with a freezing policy that fits the Mamba2 encoders.
        """
        from ._io import SavedModel, build_model, read_folder
        from ._query import freeze_for_query

        if not isinstance(mdata, MuData):
            raise TypeError(
                f"load_query_data needs a MuData with the reference's modalities, got {type(mdata).__name__}. "
                "For cells measured in one modality use reference_model.get_latent_representation(adata, "
                "modality='rna')."
            )
        if isinstance(reference_model, SCMAMBA):
            saved = SavedModel.from_model(reference_model)
        elif isinstance(reference_model, str | os.PathLike):
            saved = read_folder(reference_model, trust_pickle=trust_pickle)  # weights only unless trusted
        else:
            raise TypeError(f"reference_model must be a SCMAMBA or its saved folder, not {reference_model!r}.")
        if saved.registry.get("model_name", cls.__name__) != cls.__name__:
            raise ValueError(f"The reference model is a {saved.registry['model_name']}, not a {cls.__name__}.")
        # as scvi-tools' ArchesMixin: registration with the reference's setup (new batch categories added; the
        # checks of setup_mudata), reference weights, new rows for new batches in the decoders' batch offsets
        # (zero, as a new model's). Its FCLayers freezing rules do not fit SCMAMBA: SCMAMBA's own policy instead.
        model = build_model(cls, saved, mdata, accelerator=accelerator, device=device, query=True)
        groups = ["all"] if unfrozen else sorted({trainable} if isinstance(trainable, str) else set(trainable))
        model.trainable_parameters_ = freeze_for_query(model.module, groups)
        model.trainable_groups_ = groups  # saved with the model: load re-applies the freeze
        model.from_reference_ = True  # trained weights: it embeds before (and without) fine-tuning, no warning
        return model

    def save(
        self,
        dir_path: str | os.PathLike,
        prefix: str | None = None,
        overwrite: bool = False,
        save_anndata: bool = False,
        save_kwargs: dict | None = None,
        legacy_mudata_format: bool = False,
        **anndata_write_kwargs,
    ) -> None:
        """Save the model to a folder that loads without unpickling (no code in it can run on :meth:`load`).

        scvi-tools pickles a model into ``model.pt``, and loading a pickle runs any code the file carries; model
        folders are exchanged (supplements, hubs, collaborators), so SCMAMBA writes the weights alone to
        ``model.pt`` (read with ``torch.load(weights_only=True)``) and everything else (registry and set-up
        arguments, init parameters, var names, attributes such as ``history_``, ``trainable_parameters_`` and
        ``from_reference_``) to ``model.json``. The optimizer state is not saved.

        Parameters
        ----------
        dir_path
            Folder to write (created; an existing one only with ``overwrite=True``).
        prefix
            Prefix of the file names.
        overwrite
            Write into an existing folder.
        save_anndata
            Also write the MuData (``mdata.h5mu``), so that :meth:`load` needs no data.
        save_kwargs
            Passed to :func:`torch.save`.
        legacy_mudata_format
            Record the var names as one flat array (scvi-tools' legacy MuData format) instead of one per modality.
        **anndata_write_kwargs
            Passed to :meth:`mudata.MuData.write_h5mu`.
        """
        from ._io import write_folder

        write_folder(
            self, dir_path, prefix=prefix, overwrite=overwrite, save_anndata=save_anndata, save_kwargs=save_kwargs,
            legacy_mudata_format=legacy_mudata_format, **anndata_write_kwargs,
        )  # fmt: skip

    @classmethod
    def load(
        cls,
        dir_path: str | os.PathLike,
        adata: MuData | None = None,
        *,
        accelerator: str = "auto",
        device: int | str = "auto",
        prefix: str | None = None,
        trust_pickle: bool = False,
    ) -> SCMAMBA:
        """Load a saved model; ``adata`` must have the saved features per modality (else a ValueError says which).

        The folder is read once and without unpickling: ``model.pt`` with ``torch.load(weights_only=True)``, the
        rest from ``model.json`` (:meth:`save`). A ``model.pt`` that needs unpickling (a folder written by
        scvi-tools' ``save`` or an older scmamba, or a crafted file) could run arbitrary code: it is refused with
        :class:`~scmamba.model.UntrustedPickleError` unless ``trust_pickle=True``. Batches of ``adata`` the
        model has not seen (a new library) are added to the registry, as :meth:`load_query_data` does: the
        encoders embed any library (they do not use the batch); the decoders get zero offsets for the new batches.
        A query model saved after :meth:`load_query_data` keeps its freeze (only ``trainable_parameters_`` train).

        Parameters
        ----------
        dir_path
            Folder written by :meth:`~scmamba.SCMAMBA.save`.
        adata
            MuData to attach (``None``: the one saved with ``save_anndata=True``). It gets the checks of
            :meth:`setup_mudata`; cells are paired across modalities by ``obs_names`` and results follow
            ``adata.obs_names``.
        accelerator, device
            Where the model lives (Lightning style; ``'auto'``: the GPU if there is one).
        prefix
            Prefix of the file names (as given to :meth:`save`).
        trust_pickle
            Unpickle a ``model.pt`` that needs it. Unpickling runs any code the file carries: only for folders
            whose origin you trust; ``model.save(new_folder)`` then writes a folder that loads without it.
        """
        from ._io import build_model, read_folder

        if adata is not None and not isinstance(adata, MuData):
            raise TypeError(
                f"SCMAMBA.load needs a MuData with the saved model's modalities, got {type(adata).__name__}. For "
                "cells measured in one modality, load the model with its MuData (or save it with "
                "save_anndata=True and load without data), then call model.get_latent_representation(adata, "
                "modality='rna')."
            )
        saved = read_folder(dir_path, prefix=prefix, trust_pickle=trust_pickle)
        return build_model(cls, saved, adata, accelerator=accelerator, device=device)

    @staticmethod
    def load_registry(dir_path: str | os.PathLike, prefix: str | None = None, *, trust_pickle: bool = False) -> dict:
        """The registry saved with a model (set-up arguments, categories, features), read without unpickling.

        ``trust_pickle``: as in :meth:`load`, for a trusted folder whose ``model.pt`` needs unpickling.
        """
        from ._io import read_folder

        return read_folder(dir_path, prefix=prefix, trust_pickle=trust_pickle, weights=False).registry

    @staticmethod
    def view_setup_args(dir_path: str | os.PathLike, prefix: str | None = None, *, trust_pickle: bool = False) -> None:
        """Print the arguments a saved model was set up with, read without unpickling (see :meth:`load_registry`).

        (scvi-tools' version names ``setup_anndata`` for every model and needs ``rich.pretty`` imported.)
        """
        import rich
        import rich.pretty

        registry = SCMAMBA.load_registry(dir_path, prefix, trust_pickle=trust_pickle)
        method = registry.get("setup_method_name", "setup_mudata")
        rich.print(f"Setup via `{registry.get('model_name', 'SCMAMBA')}.{method}` with arguments:")
        rich.pretty.pprint(registry.get("setup_args"))

    @classmethod
    def prepare_query_anndata(cls, adata, reference_model, return_reference_var_names=False, inplace=True):
        """Not supported: SCMAMBA queries are MuData (:meth:`prepare_query_mudata`)."""
        raise NotImplementedError(
            "SCMAMBA queries are MuData: use SCMAMBA.prepare_query_mudata(mdata, reference_model). For cells "
            "measured in one modality use reference_model.get_latent_representation(adata, modality='rna')."
        )

    @classmethod
    def convert_legacy_save(cls, dir_path, output_dir_path, overwrite=False, prefix=None, **save_kwargs):
        """Not supported: no SCMAMBA folder has scvi-tools' pre-0.15 layout.

        A folder in scvi-tools' current layout (one pickled ``model.pt``) is converted with
        ``SCMAMBA.load(folder, mdata, trust_pickle=True).save(new_folder)``, for folders you trust.
        """
        raise NotImplementedError(
            "SCMAMBA folders never had scvi-tools' pre-0.15 layout. To convert a folder written by scvi-tools' save "
            "(a pickled model.pt) that you trust: SCMAMBA.load(folder, mdata, trust_pickle=True).save(new_folder)."
        )
