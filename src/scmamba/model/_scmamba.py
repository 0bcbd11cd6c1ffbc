"""SCMAMBA: contrastive integration of paired single-cell modalities with Mamba2 encoders."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData
from scipy import sparse
from scvi import REGISTRY_KEYS
from scvi.data import fields
from scvi.model.base import ArchesMixin, BaseModelClass, UnsupervisedTrainingMixin

from .._constants import MODALITY_LAYER_ARGS, MODALITY_REGISTRY_KEYS, find_modality
from .._counts import iter_row_blocks
from ..module import ScMambaModule
from ..nn._encoder import Pooling, Projection
from ..train import ContrastiveTrainingPlan
from ._arguments import _patch_sizes, _per_modality, resolve_encoders
from ._batch_correction import check_batch_correction
from ._data import PairedMuDataManager, SparseDataSplitter
from ._embedding import EmbeddingMixin
from ._features import registered_features
from ._modalities import registered_modalities, resolve_modalities
from ._prediction import PredictionMixin
from ._presets import (
    encoder_dropout,
    paper_config,
    small_config,
)
from ._query import QueryMixin
from ._saving import SaveLoadMixin
from ._training import TrainingMixin

logger = logging.getLogger(__name__)


class SCMAMBA(
    EmbeddingMixin,
    PredictionMixin,
    QueryMixin,
    SaveLoadMixin,
    TrainingMixin,
    ArchesMixin,
    UnsupervisedTrainingMixin,
    BaseModelClass,
):
    """Single-cell multi-omics integration with Mamba2 (SSD) encoders over genome-ordered feature patches.

    Features of a modality with a Mamba2 encoder (by default ATAC and protein; ``encoder``) are put in genomic
    order, cut into patches (tokens) and encoded by Mamba2 + MLP blocks; the tokens are pooled and an MLP head gives
    the modality's cell embedding (unit length). RNA is by default embedded by its classic reduction (PCA) through a
    trained projection (``linear_view``, ``encoder``), the anchor the other layer's encoder learns to meet. Training
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
    encoder
        How each layer is embedded: ``'mamba'``, a Mamba2 encoder over genome-ordered patch tokens (plus the
        layer's ``linear_view`` through a trained projection); ``'linear'``, the ``linear_view`` through its
        trained projection alone. One value or a dict per modality. ``None``: ``'linear'`` for RNA, ``'mamba'`` for
        ATAC and protein; RNA also ``'mamba'`` beside a protein panel from 2,000 paired cells on
        (``RNA_ENCODER_WITH_PROTEIN_CELLS``), and every layer with ``linear_view=None``. Measured on the regime table
        (``benchmarks/README.md``): a Mamba2 encoder on top of RNA's PCA fitted the training cells at the cost of
        cell-type structure, and the joint embedding's Leiden ARI was higher without it on every set and size, from
        500 cells to 9,663; the sparse ATAC layer, whose LSI alone carries almost nothing on a few hundred cells,
        needs its encoder, which learns from the pairing what RNA separates; with proteins linear too, RNA and
        protein aligned three times worse (FOSCTTM). RNA thus anchors the alignment, up to the point where a panel of
        antibodies can no longer tell a cell's RNA partner from thousands of others against a linear RNA embedding:
        RNA-protein FOSCTTM on Abseq grew from 0.015 (1,000 cells) to 0.027 (2,000), 0.047 (3,000) and 0.16
        (9,663), against 0.002 with RNA's Mamba2 encoder. A peak layer pairs cells at any size (FOSCTTM < 0.001 on
        10,309 SNARE-seq cells with RNA linear). The encoders chosen are logged and kept in ``init_params_``.
        :meth:`paper_config` gives every layer a Mamba2 encoder, as in the paper.
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
    batch_correction
        How donors are mixed when ``setup_mudata(batch_key=...)`` names two or more batches. ``'harmony'``: after
        training, Harmony (harmonypy, its default strength ``theta=2``) is fitted on the joint embedding of the
        registered cells and kept as a function of the embedding (:class:`~scmamba.nn.LatentCorrection`: per soft
        cluster, per batch, an offset), which :meth:`get_latent_representation` applies to every embedding of a cell
        of those batches, joint or per layer, so that they stay in one space. A dict of Harmony settings changes
        the strength, e.g. ``{'theta': 1.0}`` for less mixing, ``{'theta': 4.0}`` for more; ``None``: no
        correction (the decoders' batch offsets and the batch adversary, ``lambda_adv``, still act in training).
        ``get_latent_representation(batch_corrected=False)`` gives the embedding before it.

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
        encoder: Literal["mamba", "linear"] | Mapping[str, str] | None = None,
        layer_weights: Literal["reliability", "equal"] | Mapping[str, float] = "reliability",
        batch_correction: Literal["harmony"] | Mapping[str, float] | None = "harmony",
    ):
        if not isinstance(mdata, MuData):
            raise TypeError(
                f"SCMAMBA needs the MuData its encoders are built for (registered with SCMAMBA.setup_mudata), got "
                f"{type(mdata).__name__}."
            )
        try:
            super().__init__(mdata)
        except ValueError as error:  # scvi-tools' message names setup_anndata, which SCMAMBA does not have
            raise ValueError(
                "This MuData is not set up for SCMAMBA. Call SCMAMBA.setup_mudata(mdata, modalities={...}) first."
            ) from error
        self.adata_manager.check_data()  # a model built on data changed after set-up would not match its registry
        setup_args = self.adata_manager.registry["setup_args"]
        modality_names = setup_args["modalities"]
        self.modality_mods_ = registered_modalities(modality_names)
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
        n_paired = self._n_paired_cells()
        if dropout is None:  # resolved here, so that init_params_ (saved with the model) hold the rate used
            dropout = encoder_dropout(n_paired)
            logger.info("Encoder dropout %s (%d cells measured in both layers).", dropout, n_paired)
        # resolved here, so that init_params_ (saved with the model) hold the encoders built
        encoder = resolve_encoders(encoder, modalities, bool(linear_view), n_paired)
        logger.info("Encoders: %s (%d cells measured in both layers).", encoder, n_paired)
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
            mamba_layers=[m for m, kind in encoder.items() if kind == "mamba"],
        )
        self._set_layer_weights_arg(layer_weights)
        self.batch_correction_ = check_batch_correction(batch_correction)
        n_params = sum(p.numel() for p in self.module.parameters())
        tokens = {m: enc.tokenizer.n_patches for m, enc in self.module.encoders.items()}
        self._model_summary_string = (
            f"SCMAMBA: modalities {n_features}, encoders {encoder}, Mamba2 tokens {tokens}, n_latent {n_latent}, "
            f"d_model {d_model}, "
            f"n_layers {n_layers}, pooling {pooling!r}, lambda_rec {lambda_rec}, {n_params / 1e6:.2f}M parameters."
        )
        self._model_summary_string += self._mosaic_summary()
        self.init_params_ = self._get_init_params(locals())

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
        return int(mosaic.paired().sum())

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

        ``modalities``: the modality kinds (e.g. ``('rna', 'protein')``), or a MuData (the kinds its modality names
        stand for: ``rna``/``gex``, ``atac``/``peaks``, ``prot``/``adt``...); ``None``: values for every kind, so the
        dict fits any pair. Pass the kinds where the MuData's modality names are your own.
        """
        if isinstance(modalities, MuData):
            modalities = [m for m in MODALITY_LAYER_ARGS if find_modality(modalities.mod, m) is not None]
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

        registered = registered_modalities(mods)
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
    def setup_anndata(cls, adata: AnnData, **kwargs):
        """Not supported: SCMAMBA needs paired modalities; use :meth:`setup_mudata`."""
        raise NotImplementedError(
            "SCMAMBA integrates paired modalities: put them in a MuData and call SCMAMBA.setup_mudata. "
            "To embed RNA-only cells with a trained model use model.get_latent_representation(adata, modality='rna')."
        )

    def _reference_features(self, modality: str) -> pd.Index:
        return registered_features(self.adata_manager.registry, modality)

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
