"""Cross-modal prediction: a layer a cell was not measured in, predicted from a layer it was.

SCMAMBA trains a decoder per layer (:class:`~scmamba.nn.CompositionDecoder`) that predicts the composition of that
layer's profile from any layer's embedding (the reconstruction term). :class:`PredictionMixin` exposes it in
scvi-tools' conventions (``get_normalized_expression`` as in SCVI/TOTALVI/MULTIVI): protein levels of RNA-only
cells, accessible peaks of cells whose chromatin was never measured, denoised expression.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from mudata import MuData
from scipy import sparse
from scvi import REGISTRY_KEYS

from .._constants import MODALITY_REGISTRY_KEYS
from .._counts import iter_row_blocks, row_indices
from ._pairing import row_positions
from ._presets import EMBED_BATCH_SIZE

if TYPE_CHECKING:
    from ..module import ScMambaModule

logger = logging.getLogger(__name__)

__all__ = ["PredictionMixin"]

#: Reference cells averaged per cell by ``get_normalized_expression(method='neighbors')`` (as Seurat's
#: ``TransferData(k.weight=50)``; 15, 30 and 50 measured on held-out Abseq donors: ``benchmarks/README.md``).
N_NEIGHBORS = 50

#: ``get_normalized_expression(method=None)`` per predicted layer (others: the decoder). Held-out cells given as
#: RNA (``benchmarks/prediction.py``): protein of new Abseq donors, median per-protein Spearman 0.55 with the
#: neighbours vs 0.48 with the decoder; SNARE-seq peaks, median per-cell AUROC 0.83 with the decoder vs 0.69 with the
#: neighbours (most of a cell's 24,744 peaks are closed in all its neighbours: ties at 0).
DEFAULT_METHOD = {"protein": "neighbors", "atac": "decoder", "rna": "decoder"}

#: ``get_normalized_expression(peak_prior=None)`` for ATAC from the decoder: the exponent of each peak's detection
#: rate in the reference cells by which the decoder's shares are weighted. Held-out SNARE-seq cells given as RNA
#: (``benchmarks/prediction.py``, seeds 0 and 1): median per-cell AUPRC 0.025 with the decoder alone (0), 0.030 with
#: 1 (MULTIVI 0.027); 2, 3 and a shrinkage of the decoder's cell-specific logits by half score the same (the RNA
#: embedding's peak logits spread the peaks too far from their common ranking; the peaks' rates alone give 0.028).
PEAK_PRIOR = 1.0


class PredictionMixin:
    """Predicted profiles of every layer the model decodes, for paired, mosaic and single-layer cells."""

    module: ScMambaModule

    @torch.inference_mode()
    def get_normalized_expression(
        self,
        adata_or_mdata: MuData | AnnData | None = None,
        *,
        modality_in: Literal["rna", "atac", "protein", "joint"] = "rna",
        modality_out: Literal["rna", "atac", "protein"] = "rna",
        indices: Sequence[int] | np.ndarray | None = None,
        batch_size: int | None = None,
        transform_batch: str | Sequence[str] | None = None,
        library_size: float | None = None,
        top_k: int | None = None,
        threshold: float | None = None,
        layer: str | None = None,
        return_numpy: bool = False,
        method: Literal["decoder", "neighbors"] | None = None,
        n_neighbors: int = N_NEIGHBORS,
        reference: MuData | None = None,
        peak_prior: float | None = None,
    ) -> pd.DataFrame | np.ndarray | sparse.csr_matrix:
        """Each cell's ``modality_out`` profile predicted from its ``modality_in`` embedding.

        With ``method='decoder'``, the decoder of ``modality_out`` (trained by the reconstruction term,
        ``lambda_rec``) is applied to the cell's embedding of ``modality_in``: ``softmax(W z + b + offset[batch])``,
        the share of the layer's counts each feature gets; with ``method='neighbors'`` (the default for protein),
        the measured profiles of the reference cells nearest to it are averaged. So protein levels of cells
        measured by RNA alone (an scRNA-seq query mapped onto a CITE-seq/Abseq reference), accessibility of cells
        whose chromatin was never measured, or denoised expression (``modality_in == modality_out``).

        Parameters
        ----------
        adata_or_mdata
            ``None``: the registered MuData. A MuData like the training data (query cells, a mosaic), or an AnnData
            of the ``modality_in`` layer alone (e.g. RNA-only cells; its features are aligned to the model's, as in
            :meth:`get_latent_representation`).
        modality_in
            The layer whose embedding predicts: ``'rna'``, ``'atac'``, ``'protein'`` or ``'joint'`` (each cell's
            weighted mean of the layers it was measured in; paired and mosaic MuData only). Cells not measured in
            ``modality_in`` get NaN rows (empty rows with ``top_k`` / ``threshold``), with a warning.
        modality_out
            The layer to predict; the output's columns are its features (the model's, in registered order).
        indices
            Cells (integer positions or a boolean mask over the rows of ``adata_or_mdata``), default all.
        batch_size
            Cells per block (default 256). Each block holds ``batch_size * n_features`` float32 values a few times
            over while it is decoded.
        transform_batch
            Batch categories (of the model's ``batch_key``) whose decoder offsets are used, as in scvi-tools: one
            category, or a list whose predictions are averaged. ``None``: each cell's own batch where the data
            carry one the model knows, else (an AnnData, a batch new to the model) the mean of the batches'
            offsets.
        library_size
            RNA and protein: the predicted shares are multiplied by it (``None``: 1, the composition, rows sum to
            1; e.g. 1e4 for counts per 10,000). ATAC: the number of open peaks of a cell, turning shares ``p`` into
            probabilities of a peak being accessible ``1 - exp(-library_size * p)`` (``None``: the median number
            of open peaks of the registered cells). The order of features within a cell does not depend on it.
        top_k
            Keep only the ``top_k`` highest values of each cell (others are 0) and return a sparse matrix: for
            ~150,000 peaks, where a dense result for many cells does not fit in memory.
        threshold
            Keep only values ``>= threshold`` (sparse result), e.g. ``0.5`` for the peaks more likely open than not.
            With ``top_k`` too: the ``top_k`` highest of those.
        layer
            For an AnnData input: its layer of raw counts (``None``: ``.X``).
        return_numpy
            Return a numpy array (a :class:`scipy.sparse.csr_matrix` with ``top_k`` / ``threshold``) instead of
            a DataFrame.
        method
            ``'decoder'``: the decoder of ``modality_out`` applied to the cell's embedding (above).
            ``'neighbors'``: the mean measured ``modality_out`` profile of the cell's ``n_neighbors`` nearest
            reference cells, found by the cell's ``modality_in`` embedding among the reference cells' joint
            embeddings (which the training aligns each layer's embedding to; Seurat's ``TransferData`` idea in
            SCMAMBA's space, with scikit-learn's :class:`~sklearn.neighbors.NearestNeighbors`). RNA: the mean of
            the neighbours' shares of their counts (times ``library_size``); protein: the mean of their CLR
            profiles (muon's ``prot.pp.clr``: ``log1p`` minus the cell's mean; ``library_size`` does not apply);
            ATAC: the share of the neighbours in which the peak is open. Reference cells are those of
            ``reference`` (default: the registered data) measured in ``modality_out`` (and of the
            ``transform_batch`` batches, if given). ``None`` (default): ``'neighbors'`` for protein,
            ``'decoder'`` for RNA and ATAC, the better of the two on held-out cells of each kind (Abseq donors:
            median per-protein Spearman 0.55 vs 0.48; SNARE-seq peaks: median per-cell AUROC 0.83 with the
            decoder vs 0.70; ``benchmarks/README.md``). The neighbours need the reference's measured profiles:
            a model made by :meth:`load_query_data` predicts protein with ``reference=`` or
            ``method='decoder'``.
        n_neighbors
            Reference cells per cell for ``method='neighbors'`` (default 50, as Seurat's ``k.weight``).
        reference
            For ``method='neighbors'``: a MuData like the training data whose cells, with their measured
            ``modality_out`` profiles, are the neighbours (default: the model's registered data; a model made by
            :meth:`load_query_data` needs it, since its registered data are the query cells). For ATAC from the
            decoder: the cells whose peaks' detection rates ``peak_prior`` uses.
        peak_prior
            ATAC with ``method='decoder'``: the decoder's shares are multiplied by each peak's detection rate
            (the share of the reference cells in which it is open, ``(open + 0.5) / (cells + 1)``) raised to
            ``peak_prior`` and normalised again, before ``library_size`` turns them into probabilities. ``None``:
            1.0 (``PEAK_PRIOR``), which ranks the peaks of held-out SNARE-seq cells given as RNA better than the
            decoder alone (``0``): median per-cell AUPRC 0.030 vs 0.025, AUROC 0.834 vs 0.824
            (``benchmarks/README.md``). Not used for other layers or ``method='neighbors'`` (an error if given).
            Without reference cells measured in ATAC (a model made by :meth:`load_query_data` from RNA-only
            cells, no ``reference``) the decoder's shares are used alone, with a warning.

        Returns
        -------
        ``(cells, features)`` DataFrame indexed by the cells' ``obs_names`` (MuData rows follow ``mdata.obs_names``)
        with the ``modality_out`` features as columns; sparse-valued (``DataFrame.sparse``) with ``top_k`` /
        ``threshold``. :meth:`get_predicted_anndata` writes it into an AnnData for scanpy and muon.

        Notes
        -----
        ``method='neighbors'`` holds the reference cells' embeddings and their ``modality_out`` profiles (as
        sparse rows: 12 bytes per measured value) beside the query; each block of ``batch_size`` cells is averaged
        into a dense ``batch_size x features`` block, the same bound as the decoder's. It embeds the reference
        cells on every call.

        Memory: the dense result takes ``4 * cells * features`` bytes (10,000 cells x 150,000 peaks: 6 GB); with
        ``top_k`` it takes about ``12 * cells * top_k`` bytes, with ``threshold`` 12 bytes per kept value, plus
        the embeddings (``4 * cells * n_latent``) and one block being decoded (``~12 * batch_size * features``
        bytes; 0.5 GB at 150,000 peaks and the default 256 cells).
        """
        if method is None:
            method = DEFAULT_METHOD.get(modality_out, "decoder")
        if method not in ("decoder", "neighbors"):
            raise ValueError(f"method must be 'decoder', 'neighbors' or None, got {method!r}.")
        if top_k is not None and (int(top_k) != top_k or top_k < 1):
            raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}.")
        if peak_prior is not None and (modality_out != "atac" or method != "decoder"):
            raise ValueError(
                "peak_prior weights the decoder's ATAC shares by the peaks' detection rates; it does not apply to "
                f"modality_out={modality_out!r} with method={method!r}. Leave peak_prior=None."
            )
        if peak_prior is not None and not (np.isfinite(peak_prior) and peak_prior >= 0):
            raise ValueError(f"peak_prior must be a finite number >= 0 or None, got {peak_prior!r}.")
        z, names = self._prediction_embedding(adata_or_mdata, modality_in, modality_out, indices, batch_size, layer)
        if method == "neighbors":
            blocks_of = self._neighbor_blocks(
                z, modality_in, modality_out, n_neighbors, reference, transform_batch, library_size, batch_size
            )
        else:
            prior = None
            if modality_out == "atac":
                weight = PEAK_PRIOR if peak_prior is None else float(peak_prior)
                prior = self._peak_prior(reference, weight) if weight > 0 else None
            blocks_of = self._decoder_blocks(
                z, adata_or_mdata, indices, modality_out, transform_batch, library_size, batch_size, prior
            )
        n_features = self.module.decoders[modality_out].linear.out_features
        if top_k is not None:
            top_k = min(int(top_k), n_features)
        keep_sparse = top_k is not None or threshold is not None
        step = batch_size or EMBED_BATCH_SIZE
        blocks = []
        dense = None if keep_sparse else np.empty((len(z), n_features), dtype=np.float32)
        for start, values in blocks_of(step):
            if keep_sparse:
                blocks.append(_sparse_block(values, top_k, threshold))
            else:
                dense[start : start + len(values)] = values.cpu().numpy()
        columns = self._prediction_features(modality_out)
        if keep_sparse:
            result = sparse.vstack(blocks, format="csr") if blocks else sparse.csr_matrix((0, n_features))
            return result if return_numpy else pd.DataFrame.sparse.from_spmatrix(result, index=names, columns=columns)
        return dense if return_numpy else pd.DataFrame(dense, index=names, columns=columns)

    def get_predicted_anndata(
        self,
        adata_or_mdata: MuData | AnnData | None = None,
        *,
        modality_in: Literal["rna", "atac", "protein", "joint"] = "rna",
        modality_out: Literal["rna", "atac", "protein"] = "rna",
        key: str | None = None,
        **kwargs,
    ) -> AnnData:
        """:meth:`get_normalized_expression` as a new AnnData for scanpy and muon.

        The predictions are the layer ``key`` (default ``'scmamba_<modality_in>_to_<modality_out>'``; ``X`` is
        left empty, so nothing normalises or logs them by accident); ``obs`` are the cells' (of the MuData, or of
        the AnnData given), ``var`` the registered ``modality_out`` layer's. E.g.
        ``sc.pl.umap(pred, color="CD34", layer=key)`` after copying ``obsm`` over, or
        ``mdata.mod["predicted_protein"] = pred`` to keep it in the MuData. Other keyword arguments as in
        :meth:`get_normalized_expression` (``indices``, ``transform_batch``, ``top_k`` ...).
        """
        values = self.get_normalized_expression(
            adata_or_mdata, modality_in=modality_in, modality_out=modality_out, return_numpy=True, **kwargs
        )
        data = self.adata if adata_or_mdata is None else adata_or_mdata
        rows = slice(None) if kwargs.get("indices") is None else row_indices(kwargs["indices"], data.n_obs)
        obs = data.obs.iloc[rows].copy()
        features = self._prediction_features(modality_out)
        var = self.adata.mod[self.modality_mods_[modality_out]].var
        var = var.reindex(features).copy() if features.isin(var.index).all() else pd.DataFrame(index=features)
        key = key or f"scmamba_{modality_in}_to_{modality_out}"
        return AnnData(obs=obs, var=var, layers={key: values})

    # ----------------------------------------------------------------------------------------------- helpers

    def _decoder_blocks(self, z, data, indices, modality_out, transform_batch, library_size, batch_size,
                        prior=None):  # fmt: skip
        """``blocks(step)``: ``(start, values)`` of the decoder's predictions, ``step`` cells at a time.

        ``prior``: per-feature weights the shares are multiplied by (then normalised again), or ``None``.
        """
        codes = self._prediction_batches(data, indices, transform_batch, len(z))
        scale = self._prediction_scale(modality_out, library_size)
        device = next(self.module.parameters()).device
        if prior is not None:
            prior = torch.as_tensor(prior, dtype=torch.float32, device=device)

        def blocks(step: int):
            for start in range(0, len(z), step):
                zb = torch.as_tensor(z[start : start + step], device=device)
                values = sum(
                    self.module.predict_profile(
                        modality_out, zb, torch.as_tensor(c[start : start + step], device=device)
                    )
                    for c in codes
                ) / len(codes)
                if prior is not None:
                    values = values * prior
                    values = values / values.sum(dim=1, keepdim=True)
                yield start, scale(values)

        return blocks

    def _neighbor_blocks(self, z, modality_in, modality_out, n_neighbors, reference, transform_batch, library_size,
                         batch_size):  # fmt: skip
        """``blocks(step)``: ``(start, values)`` of the neighbours' weighted mean profiles, ``step`` cells at a time."""
        from sklearn.neighbors import NearestNeighbors

        if int(n_neighbors) != n_neighbors or n_neighbors < 1:
            raise ValueError(f"n_neighbors must be a positive integer, got {n_neighbors!r}.")
        if modality_out != "rna" and library_size is not None:
            what = "the share of the neighbours in which a peak is open" if modality_out == "atac" else "CLR values"
            raise ValueError(
                f"library_size does not apply to method='neighbors' for {modality_out!r}: the prediction is {what}, "
                "whatever the cell's depth. Leave library_size=None."
            )
        factor = 1.0 if library_size is None else float(library_size)
        if not factor > 0:
            raise ValueError(f"library_size must be positive or None, got {library_size!r}.")
        z_ref, profiles = self._neighbor_reference(reference, modality_out, transform_batch, batch_size)
        k = min(int(n_neighbors), len(z_ref))
        index = NearestNeighbors(n_neighbors=k).fit(z_ref)
        measured = np.flatnonzero(np.isfinite(z).all(axis=1))  # cells without the input layer: NaN rows
        n_features = profiles.shape[1]

        def blocks(step: int):
            for start in range(0, len(z), step):
                stop = min(start + step, len(z))
                rows = measured[(measured >= start) & (measured < stop)]
                values = np.full((stop - start, n_features), np.nan, dtype=np.float32)
                if len(rows):
                    dist, nn = index.kneighbors(z[rows])
                    weights = neighbor_weights(dist)
                    mix = sparse.csr_matrix(
                        (weights.ravel(), nn.ravel(), np.arange(0, weights.size + 1, k)),
                        shape=(len(rows), profiles.shape[0]),
                    )
                    values[rows - start] = (mix @ profiles).toarray() * factor
                yield start, torch.from_numpy(values)

        return blocks

    def _neighbor_reference(self, reference, modality_out, transform_batch, batch_size):
        """Joint embeddings and measured profiles of the reference cells the neighbours come from.

        Profiles: RNA as shares of the cell's counts (rows sum to 1), protein CLR, ATAC binarised (1: open).
        """
        if reference is None and getattr(self, "from_reference_", False):
            raise ValueError(
                "method='neighbors' draws each cell's neighbours from reference cells with a measured "
                f"{modality_out!r} profile, and this model was made by load_query_data: its registered data are the "
                "query cells. Pass the reference: get_normalized_expression(..., method='neighbors', "
                "reference=ref_mdata), with ref_mdata the MuData the reference model was trained on."
            )
        if reference is not None:
            if not isinstance(reference, MuData):
                raise TypeError(f"reference must be a MuData like the training data, got {type(reference).__name__}.")
            self._check_mudata_features(reference, self.modalities)
        data, mosaic = self._registered_data(reference)
        use = mosaic.observed[modality_out].copy()
        manager = self.get_anndata_manager(data, required=True)
        if transform_batch is not None:
            mapping = list(manager.get_state_registry(REGISTRY_KEYS.BATCH_KEY).categorical_mapping)
            wanted = [transform_batch] if isinstance(transform_batch, str) else list(transform_batch)
            unknown = [b for b in wanted if b not in mapping]
            if unknown or not wanted:
                raise ValueError(f"transform_batch {unknown or wanted} not among the model's batches {mapping}.")
            codes = np.asarray(manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY)).ravel()
            use &= np.isin(codes, [mapping.index(b) for b in wanted])
        cells = np.flatnonzero(use)
        if not len(cells):
            which = "the reference given" if reference is not None else "the model's registered data"
            batches = "" if transform_batch is None else f" of the batches {transform_batch!r}"
            raise ValueError(
                f"method='neighbors' needs reference cells{batches} measured in {modality_out!r}, and {which} "
                f"({mosaic.describe()}) has none. Pass the reference: "
                "get_normalized_expression(..., method='neighbors', reference=ref_mdata), with ref_mdata a MuData "
                f"of cells measured in {modality_out!r} (e.g. the model's training data), or use method='decoder'."
            )
        z_ref = self.get_latent_representation(
            data, modality="joint", indices=cells, batch_size=batch_size, batch_corrected=False
        )
        X = manager.get_from_registry(MODALITY_REGISTRY_KEYS[modality_out])
        pos = row_positions(data, self.modality_mods_[modality_out])
        rows = cells if pos is None else pos[cells]
        parts = []
        for _, block in iter_row_blocks(X, rows):
            if modality_out == "atac":
                block = (block > 0).astype(np.float32)
            elif modality_out == "protein":  # muon's prot.pp.clr: log1p, minus the cell's mean (dense: ~100 proteins)
                logs = np.log1p(block.toarray())
                block = logs - logs.mean(axis=1, keepdims=True)
            else:
                totals = np.asarray(block.sum(axis=1)).ravel()
                block = sparse.diags(np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)) @ block
            parts.append(sparse.csr_matrix(block, dtype=np.float32))
        return z_ref, sparse.vstack(parts, format="csr")

    def _prediction_embedding(self, data, modality_in, modality_out, indices, batch_size, layer):
        """Embeddings of the cells (``modality_in``) and their names; checks the modality arguments."""
        decoded = list(self.module.decoders)
        if not decoded:
            raise ValueError(
                "This model has no decoders (it was built with lambda_rec=0), so it predicts no layer. Build it "
                "with lambda_rec > 0 (the default, 1.0) and train it to predict layers."
            )
        if modality_out not in decoded:
            raise ValueError(f"modality_out must be one of the model's layers {decoded}, got {modality_out!r}.")
        allowed = [*self.modalities] + ([] if isinstance(data, AnnData) else ["joint"])
        if modality_in not in allowed:
            hint = " (an AnnData holds one layer: name it)" if isinstance(data, AnnData) else ""
            raise ValueError(f"modality_in must be one of {allowed}{hint}, got {modality_in!r}.")
        source = self.adata if data is None else data
        rows = None if indices is None else row_indices(indices, source.n_obs)
        # the decoders were trained on the embeddings before the donor correction: predict from those
        z = self.get_latent_representation(
            data, modality=modality_in, indices=rows, batch_size=batch_size, batch_corrected=False,
            **({"layer": layer} if isinstance(data, AnnData) else {}),
        )  # fmt: skip
        names = source.obs_names if rows is None else source.obs_names[rows]
        return z, pd.Index(names)

    def _prediction_batches(self, data, indices, transform_batch, n_cells: int) -> list[np.ndarray]:
        """Decoder batch codes per cell, one array per batch to average over (-1: mean of the batches' offsets)."""
        mapping = list(self.adata_manager.get_state_registry(REGISTRY_KEYS.BATCH_KEY).categorical_mapping)
        if transform_batch is not None:
            wanted = [transform_batch] if isinstance(transform_batch, str) else list(transform_batch)
            unknown = [b for b in wanted if b not in mapping]
            if unknown or not wanted:
                raise ValueError(f"transform_batch {unknown or wanted} not among the model's batches {mapping}.")
            return [np.full(n_cells, mapping.index(b), dtype=np.int64) for b in wanted]
        if isinstance(data, AnnData):  # one layer, no registered batch: the mean offset
            return [np.full(n_cells, -1, dtype=np.int64)]
        manager = self.adata_manager if data is None else self.get_anndata_manager(data, required=True)
        codes = np.asarray(manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY)).ravel().astype(np.int64)
        if indices is not None:
            codes = codes[row_indices(indices, len(codes))]
        codes[codes >= self.module.n_batch] = -1  # a batch the decoders have no offset for
        return [codes]

    def _prediction_scale(self, modality_out: str, library_size: float | None):
        """The transform from predicted shares to the returned values (see ``library_size``)."""
        if library_size is not None and not library_size > 0:
            raise ValueError(f"library_size must be positive or None, got {library_size!r}.")
        if modality_out != "atac":
            factor = 1.0 if library_size is None else float(library_size)
            return lambda p: p * factor
        n_open = self._median_open_peaks() if library_size is None else float(library_size)
        return lambda p: -torch.expm1(-n_open * p)

    def _peak_prior(self, reference, weight: float) -> np.ndarray | None:
        """Each peak's detection rate in the reference cells, ``(open + 0.5) / (cells + 1)``, to the ``weight``.

        Reference: ``reference`` or the registered data (computed once); cells with no open peak are not counted
        (not measured in ATAC). ``None`` (with a warning) when no cell is measured in ATAC.
        """
        if reference is None and getattr(self, "_peak_log_rates", None) is not None:
            log_rates = self._peak_log_rates
        else:
            if reference is not None:
                if not isinstance(reference, MuData):
                    raise TypeError(
                        f"reference must be a MuData like the training data, got {type(reference).__name__}."
                    )
                self._check_mudata_features(reference, self.modalities)
            data, _ = self._registered_data(reference)
            X = self.get_anndata_manager(data, required=True).get_from_registry(MODALITY_REGISTRY_KEYS["atac"])
            n_peaks = self.module.decoders["atac"].linear.out_features
            n_open, n_cells = np.zeros(n_peaks), 0
            for _, block in iter_row_blocks(X):
                n_open += np.bincount(block.indices[block.data > 0], minlength=n_peaks)[:n_peaks]
                n_cells += int((np.diff(block.indptr) > 0).sum())
            if n_cells == 0:
                logger.warning(
                    "peak_prior: no reference cell is measured in ATAC, so the decoder's shares are used alone. "
                    "Pass reference= (a MuData of cells measured in ATAC, e.g. the training data) for the prior."
                )
                return None
            log_rates = np.log((n_open + 0.5) / (n_cells + 1.0))
            if reference is None:
                self._peak_log_rates = log_rates
        return np.exp(weight * log_rates).astype(np.float32)

    def _median_open_peaks(self) -> float:
        """Median number of open peaks per registered cell (the default ATAC ``library_size``), computed once."""
        if getattr(self, "_n_open_peaks", None) is None:
            X = self.adata_manager.get_from_registry(MODALITY_REGISTRY_KEYS["atac"])
            per_cell = [np.diff(block.indptr)[: block.shape[0]] for _, block in iter_row_blocks(X)]
            counts = np.concatenate(per_cell)
            self._n_open_peaks = float(np.median(counts[counts > 0])) if (counts > 0).any() else 1.0
        return self._n_open_peaks

    def _prediction_features(self, modality: str) -> pd.Index:
        return self._reference_features(modality)


def neighbor_weights(dist: np.ndarray) -> np.ndarray:
    """Weights of each cell's neighbours (rows sum to 1) from their distances: uniform."""
    return np.full(dist.shape, 1.0 / dist.shape[1], dtype=np.float32)


def _sparse_block(values: torch.Tensor, top_k: int | None, threshold: float | None) -> sparse.csr_matrix:
    """The ``top_k`` largest values per row (of those ``>= threshold``) of a dense block, as CSR."""
    n_rows, n_cols = values.shape
    values = values.nan_to_num(nan=-1.0)  # rows of cells without the input layer: kept empty
    if top_k is not None:
        kept, cols = torch.topk(values, top_k, dim=1)
        rows = torch.arange(n_rows, device=values.device)[:, None].expand_as(cols)
        keep = kept >= threshold if threshold is not None else kept > 0  # zeros are the implicit value
        kept, cols, rows = kept[keep], cols[keep], rows[keep]
    else:
        keep = values >= threshold
        rows, cols = keep.nonzero(as_tuple=True)
        kept = values[rows, cols]
    block = sparse.csr_matrix(
        (kept.cpu().numpy(), (rows.cpu().numpy(), cols.cpu().numpy())), shape=(n_rows, n_cols), dtype=np.float32
    )
    block.sort_indices()
    return block
