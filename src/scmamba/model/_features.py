"""Feature names: unique, the same as a model's, or aligned to a model's (missing ones zero-filled)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from .._constants import MODALITY_REGISTRY_KEYS
from .._counts import canonical_counts, iter_row_blocks
from ._modalities import layer_matrix

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


def check_unique_features(var_names: pd.Index, name: str) -> None:
    """Duplicated feature names would make reordering and query alignment ambiguous."""
    if var_names.has_duplicates:
        dups = var_names[var_names.duplicated()].unique()
        raise ValueError(
            f"{name} has {len(dups)} duplicated feature names (e.g. {list(dups[:5])}); make them unique first "
            "(adata.var_names_make_unique())."
        )


def features_differ(given: pd.Index, reference: pd.Index) -> str | None:
    """``None`` when ``given`` is exactly ``reference`` (same names, same order), else what differs."""
    if given.equals(reference):
        return None
    missing = int((~reference.isin(given)).sum())
    extra = int((~given.isin(reference)).sum())
    if not missing and not extra:
        return f"the model's {len(reference)} features in another order"
    return (
        f"{len(given)} features where the model has {len(reference)} ({missing} of the model's missing, {extra} extra)"
    )


class FeatureAligner:
    """Maps columns of data with ``var_names`` onto ``reference``; reference features it lacks are zero-filled."""

    def __init__(self, var_names: pd.Index, reference: pd.Index, *, name: str, stacklevel: int = 3):
        check_unique_features(pd.Index(var_names), name)
        self.name, self.n_reference = name, len(reference)
        idx = pd.Index(var_names).get_indexer(reference)
        present = idx >= 0
        if not present.any():
            raise ValueError(
                f"{name} shares no feature with the {len(reference)} features the model was trained on "
                f"(e.g. reference {list(reference[:3])}, given {list(var_names[:3])}). Use the same naming "
                "(symbols vs. IDs) as the reference."
            )
        n_missing = int((~present).sum())
        if n_missing:
            warnings.warn(
                f"{name}: {n_missing} of {len(reference)} reference features are missing and are zero-filled "
                f"({present.sum()} present; {len(var_names) - present.sum()} extra features ignored).",
                UserWarning,
                stacklevel=stacklevel,
            )
        self.identity = not n_missing and len(var_names) == len(reference) and np.array_equal(idx, np.arange(len(idx)))
        cols = np.flatnonzero(present)
        self.selection = sparse.csr_matrix(
            (np.ones(len(cols), dtype=np.float32), (idx[cols], cols)), shape=(len(var_names), len(reference))
        )

    def apply(self, block) -> sparse.csr_matrix:
        """A block of rows with the reference's columns, as canonical float32 CSR (:func:`canonical_counts`)."""
        block = canonical_counts(block, name=self.name)
        if self.identity:
            return block
        out = (block @ self.selection.astype(block.dtype)).tocsr()
        out.sort_indices()
        return out


def align_features(adata: AnnData, reference: pd.Index, layer: str | None, *, name: str) -> sparse.csr_matrix:
    """Columns of ``adata`` reordered to ``reference`` (missing ones zero-filled, warned), read in row blocks."""
    X = layer_matrix(adata, layer, what=name)
    aligner = FeatureAligner(adata.var_names, reference, name=name, stacklevel=4)
    return sparse.vstack([aligner.apply(block) for _, block in iter_row_blocks(X, name=name)], format="csr")


def registered_features(registry: Mapping, modality: str) -> pd.Index:
    """Feature names a registry holds for a modality (the model's features, in the model's order)."""
    field = registry["field_registries"][MODALITY_REGISTRY_KEYS[modality]]
    return pd.Index(field["state_registry"]["column_names"])


def features_message(mod: str, modality: str, difference: str, *, retrain: bool = False) -> str:
    """Error text for a modality whose features are not the model's: what differs and how to fix it.

    The one message for a query, a ``load`` onto other data and data changed after set-up (``retrain``: also say
    how to train on the changed data).
    """
    text = (
        f"Modality {mod!r} ({modality}) has different features from the model: {difference}. Align it with "
        "SCMAMBA.prepare_query_mudata(mdata, model) (model: the trained model or its saved folder; the model's "
        "features in its order, missing ones zero-filled), or embed one modality with "
        f"model.get_latent_representation(mdata[{mod!r}], modality={modality!r})."
    )
    if retrain:
        text += " To train on the changed MuData, run SCMAMBA.setup_mudata on it and build a new model."
    return text
