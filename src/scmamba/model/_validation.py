"""Checks of user data with errors that say what to fix. Nothing here modifies the data."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData
from scipy import sparse

from .._constants import DEFAULT_MOD_NAMES, MODALITY_LAYER_ARGS

logger = logging.getLogger(__name__)


def resolve_modalities(mdata: MuData, modalities: Mapping[str, str] | None, layers: Mapping[str, str | None]) -> dict:
    """Map setup arguments to MuData modality names, inferring them from common names when not given."""
    if not isinstance(mdata, MuData):
        raise TypeError(
            f"SCMAMBA.setup_mudata expects a mudata.MuData with paired modalities, got {type(mdata).__name__}. "
            "Build one with mudata.MuData({'rna': adata_rna, 'atac': adata_atac})."
        )
    available = list(mdata.mod.keys())
    if modalities is None:
        modalities = {}
        for modality, arg in MODALITY_LAYER_ARGS.items():
            found = [name for name in DEFAULT_MOD_NAMES[modality] if name in mdata.mod]
            if found:
                modalities[arg] = found[0]
        logger.info("Inferred modalities %s from the MuData modality names %s.", modalities, available)
    else:
        modalities = dict(modalities)
    data_args = [arg for arg in MODALITY_LAYER_ARGS.values() if arg in modalities]
    if len(data_args) < 2:
        raise ValueError(
            f"SCMAMBA needs two paired modalities, got {data_args or 'none'} from modalities={modalities!r}. "
            f"The MuData has modalities {available}; pass e.g. "
            "modalities={'rna_layer': 'rna', 'atac_layer': 'atac'} or {'rna_layer': 'rna', 'protein_layer': 'prot'}."
        )
    for arg, mod in modalities.items():
        if mod is not None and mod not in mdata.mod:
            raise ValueError(
                f"modalities[{arg!r}] = {mod!r}, but the MuData has no modality {mod!r}; it has {available}."
            )
    for arg in MODALITY_LAYER_ARGS.values():
        layer = layers.get(arg)
        if arg in modalities and layer is not None and layer not in mdata.mod[modalities[arg]].layers:
            raise ValueError(
                f"{arg}={layer!r} is not a layer of modality {modalities[arg]!r}; its layers are "
                f"{list(mdata.mod[modalities[arg]].layers.keys())} (use None for .X)."
            )
    return modalities


def check_paired(mdata: MuData, mod_names: Sequence[str]) -> None:
    """Every cell of the MuData must be measured in every registered modality, in the same order."""
    if mdata.n_obs == 0:
        raise ValueError("The MuData has no cells (an empty selection?); SCMAMBA needs paired cells to train on.")
    for mod in mod_names:
        names = mdata.mod[mod].obs_names
        if names.has_duplicates:
            raise ValueError(f"Modality {mod!r} has duplicated cell names; make them unique (obs_names_make_unique).")
        if len(names) != mdata.n_obs or not np.array_equal(names.values, mdata.obs_names.values):
            missing = mdata.n_obs - int(mdata.obs_names.isin(names).sum())
            raise ValueError(
                f"Cells are not paired across modalities: modality {mod!r} has {len(names)} cells, the MuData has "
                f"{mdata.n_obs} ({missing} missing from {mod!r}). SCMAMBA trains on cells measured in all "
                "modalities: keep the shared cells with muon.pp.intersect_obs(mdata) (in place) first."
            )


def layer_matrix(adata: AnnData, layer: str | None):
    """The count matrix of a layer (``None``: ``.X``)."""
    X = adata.X if layer is None else adata.layers[layer]
    if X is None:
        raise ValueError("The modality has no data matrix (.X is None); pass the layer holding counts.")
    return X


def _values(X) -> np.ndarray:
    if sparse.issparse(X):
        return np.asarray(X.data)
    return np.asarray(X)


def check_counts(X, *, name: str, modality: str, n_check: int = 2_000_000) -> None:
    """Raise on NaN/inf, negative values and cells without counts; warn on non-integer RNA/protein values.

    Only stored values are inspected for sparse matrices; dense matrices are read in row blocks.
    """
    n_rows = X.shape[0]
    block = max(1, n_check // max(X.shape[1], 1))
    row_sums = np.zeros(n_rows)
    non_integer = False
    for start in range(0, n_rows, block if not sparse.issparse(X) else n_rows):
        part = X[start : start + block] if not sparse.issparse(X) else X
        values = _values(part)
        if not np.issubdtype(values.dtype, np.number):
            raise ValueError(f"{name} holds non-numeric values ({values.dtype}); counts are expected.")
        if np.issubdtype(values.dtype, np.floating):
            if not np.all(np.isfinite(values)):
                bad = int(np.size(values) - np.isfinite(values).sum())
                raise ValueError(f"{name} contains {bad} NaN or infinite values; replace or remove them first.")
            if not non_integer:
                sample = values[: min(values.size, n_check)]
                non_integer = bool(np.any(np.abs(sample - np.round(sample)) > 1e-6))
        if values.size and values.min() < 0:
            raise ValueError(
                f"{name} contains negative values (minimum {values.min():.3g}); SCMAMBA expects raw counts. "
                "Pass the layer with raw counts (e.g. rna_layer='counts')."
            )
        sums = np.asarray(part.sum(axis=1)).ravel()
        row_sums[start : start + len(sums)] = sums
    empty = np.flatnonzero(row_sums == 0)
    if empty.size:
        raise ValueError(
            f"{name}: {empty.size} cells have no counts at all (e.g. index {empty[:3].tolist()}); an empty profile "
            "cannot be embedded. Remove them first, e.g. keep = counts.sum(1) > 0 in every modality and subset "
            "the MuData (muon.pp.filter_obs)."
        )
    if non_integer and modality in ("rna", "protein"):
        warnings.warn(
            f"{name} holds non-integer values: it looks normalised. SCMAMBA bins values within each cell, "
            "which is robust to this, but raw counts are expected; pass the raw-count layer if you have one.",
            UserWarning,
            stacklevel=3,
        )


def check_unique_features(var_names: pd.Index, name: str) -> None:
    """Duplicated feature names would make reordering and query alignment ambiguous."""
    if var_names.has_duplicates:
        dups = var_names[var_names.duplicated()].unique()
        raise ValueError(
            f"{name} has {len(dups)} duplicated feature names (e.g. {list(dups[:5])}); make them unique first "
            "(adata.var_names_make_unique())."
        )


def align_features(adata: AnnData, reference: pd.Index, layer: str | None, *, name: str) -> sparse.csr_matrix:
    """Columns of ``adata`` reordered to ``reference``; reference features it lacks are zero-filled (warned)."""
    check_unique_features(adata.var_names, name)
    X = layer_matrix(adata, layer)
    idx = pd.Index(adata.var_names).get_indexer(reference)
    present = idx >= 0
    if not present.any():
        raise ValueError(
            f"{name} shares no feature with the {len(reference)} features the model was trained on "
            f"(e.g. reference {list(reference[:3])}, given {list(adata.var_names[:3])}). Use the same naming "
            "(symbols vs. IDs) as the reference."
        )
    n_missing = int((~present).sum())
    if n_missing:
        warnings.warn(
            f"{name}: {n_missing} of {len(reference)} reference features are missing and are zero-filled "
            f"({present.sum()} present; {adata.n_vars - present.sum()} extra features ignored).",
            UserWarning,
            stacklevel=3,
        )
    X = sparse.csr_matrix(X)
    cols = np.where(present, idx, 0)
    out = X[:, cols].tocsr()
    if n_missing:
        keep = sparse.diags(present.astype(X.dtype if np.issubdtype(X.dtype, np.floating) else np.float32))
        out = (out @ keep).tocsr()
        out.eliminate_zeros()
    return out
