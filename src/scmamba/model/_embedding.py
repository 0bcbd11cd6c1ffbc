"""Cell embeddings of a SCMAMBA model (:class:`EmbeddingMixin`): MuData, mosaic and one-modality AnnData inputs."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS

from .._counts import CountChecker, iter_row_blocks, read_rows, row_indices, row_readable
from .._malloc import reuse_freed_memory
from ..dataloaders import embedding_loader, write_latent
from ..nn import SparseRows
from ._features import FeatureAligner, features_differ, features_message
from ._modalities import check_modalities_and_layers, layer_matrix, registered_layers
from ._pairing import check_paired
from ._presets import (
    EMBED_BATCH_SIZE,
)

logger = logging.getLogger(__name__)

Modality = Literal["joint", "rna", "atac", "protein"]


class EmbeddingMixin:
    """Embedding: :meth:`get_latent_representation` and :meth:`get_latent_layers`."""

    def _check_mudata_features(self, mdata: MuData, modalities: Sequence[str]) -> None:
        setup_args = self.adata_manager.registry["setup_args"]
        layers = registered_layers(setup_args)
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
        batch_corrected: bool = True,
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
        batch_corrected
            Apply the donor correction fitted after training (``SCMAMBA(batch_correction='harmony')``, the default
            when ``batch_key`` names two or more batches) to the cells of the batches it was fitted on. ``False``:
            the embedding before it. Cells of an AnnData (which carries no registered batch) and of batches a query
            added are never corrected.
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
                                layer=layer, batch_corrected=batch_corrected)  # fmt: skip
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
        adata, mosaic = self._registered_data(adata)
        z, _ = self._embed_registered(adata, mods, indices=indices, batch_size=batch_size, corrected=batch_corrected)
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

    def _registered_data(self, adata: MuData | None):
        """``adata`` (``None``: the training data) checked against its registry, registered if new, and its mosaic.

        A MuData registered before is checked for changes since (``PairedMuDataManager.check_data``) first, so
        that its error names what changed; a new one gets the checks of set-up when it is registered.
        """
        adata = self.adata if adata is None else adata
        manager = self.get_anndata_manager(adata)
        if manager is None:
            # new data: the training data's registry transferred to it (AnnDataManager.transfer_fields, public),
            # kept by this model; scvi-tools registers such data only through a private method
            manager = self.adata_manager.transfer_fields(adata)
            self.__dict__.setdefault("_scmamba_new_managers", []).append(manager)
        else:
            manager.check_data()
        return adata, manager.mosaic

    def get_anndata_manager(self, adata, required: bool = False):
        """The :class:`~scvi.data.AnnDataManager` of ``adata`` for this model.

        Includes data registered after set-up (a MuData first embedded or predicted for).
        """
        for manager in self.__dict__.get("_scmamba_new_managers", ()):
            if manager.adata is adata:
                return manager
        return super().get_anndata_manager(adata, required=required)

    @torch.inference_mode()
    def _embed_registered(
        self, adata, mods: Sequence[str], *, indices=None, batch_size: int | None = None, corrected: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of registered cells (the weighted mean over ``mods``) and their batch codes."""
        self.module.eval()
        # streamed in contiguous reads when the data are backed (``scmamba.dataloaders``)
        loader = embedding_loader(self, adata, indices=indices, batch_size=batch_size or EMBED_BATCH_SIZE)
        chunks, batches = [], []
        for tensors in self._embedding_run(loader):
            out = self.module.inference(**self.module._get_inference_input(tensors, modalities=mods))
            z = self.module.fuse(out, mods)
            batch = tensors.get(REGISTRY_KEYS.BATCH_KEY)
            if corrected:
                z = self.module.latent_correction(z, None if batch is None else batch.to(z.device))
            chunks.append(z.cpu())
            batches.append(torch.zeros(len(z), dtype=torch.long) if batch is None else batch.reshape(-1).long().cpu())
        return torch.cat(chunks).numpy(), torch.cat(batches).numpy()

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
        adata, mosaic = self._registered_data(adata)
        if mosaic is None:  # registered before mosaic support: fully paired by construction
            mosaic = check_paired(adata, self.modality_mods_)
        rows = slice(None) if indices is None else np.asarray(indices)
        layers = mosaic.layers(mods)
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
