"""Reference embeddings that integrated embeddings are compared with."""

from __future__ import annotations

import numpy as np
from anndata import AnnData


def rna_pca(adata: AnnData, *, layer: str | None = None, n_comps: int = 30, seed: int = 0) -> np.ndarray:
    """The usual RNA-only embedding: ``normalize_total`` + ``log1p`` + PCA of raw counts (scanpy defaults).

    Parameters
    ----------
    adata
        RNA counts (cells x genes); not modified (a copy is normalised).
    layer
        Layer with raw counts (``None``: ``.X``).
    n_comps
        Principal components.
    seed
        Random state of the PCA solver.

    Returns
    -------
    ``(cells, n_comps)`` array.
    """
    import scanpy as sc

    X = adata.X if layer is None else adata.layers[layer]
    work = AnnData(X=X.copy() if hasattr(X, "copy") else np.array(X))
    work.X = work.X.astype(np.float32)
    sc.pp.normalize_total(work)
    sc.pp.log1p(work)
    sc.pp.pca(work, n_comps=min(n_comps, min(work.shape) - 1), random_state=seed)
    return np.asarray(work.obsm["X_pca"])
