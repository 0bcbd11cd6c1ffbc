"""Fit each layer's classic linear reduction (RNA PCA, ATAC LSI, protein CLR-PCA) on the registered cells."""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse

from .._counts import iter_row_blocks
from ..nn._linear_view import LinearView, view_values
from ..nn._sparse import SparseRows

#: Cells the reductions are fitted on, at most (a random subset beyond): the top components of tens of thousands
#: of cells are those of the whole atlas, and the fit stays seconds and a bounded amount of memory.
MAX_FIT_CELLS = 20_000
#: Values (cells x genes) above which the RNA PCA is fitted on the sparse matrix instead of a dense copy (~400 MB of
#: float32); below it the dense randomized PCA (the numbers every measured model was fitted with).
DENSE_FIT_VALUES = 100_000_000


def fit_linear_view(X, kind: str, n_components: int, rows: np.ndarray | None = None, seed: int = 0) -> LinearView:
    """The :class:`~scmamba.nn.LinearView` of one layer, fitted on the rows ``rows`` of its raw counts ``X``.

    RNA: PCA of ``normalize_total`` + ``log1p`` values (scanpy's recipe); ATAC: TF-IDF + truncated SVD with its
    first component (sequencing depth) dropped (LSI, as Signac and muon); protein: PCA of CLR values.
    """
    from sklearn.decomposition import PCA, TruncatedSVD

    rows = np.arange(X.shape[0]) if rows is None else np.asarray(rows)
    rng = np.random.default_rng(seed)
    if len(rows) > MAX_FIT_CELLS:
        rows = np.sort(rng.choice(rows, MAX_FIT_CELLS, replace=False))
    counts = sparse.vstack([block for _, block in iter_row_blocks(X, rows)]).tocsr()
    n_cells, n_features = counts.shape
    idf = None
    if kind == "atac":
        doc_freq = np.asarray((counts > 0).sum(axis=0)).ravel()
        idf = (n_cells / (1.0 + doc_freq)).astype(np.float32)
    x = SparseRows.from_scipy(counts)
    v = view_values(x, kind, None if idf is None else torch.as_tensor(idf))
    V = sparse.csr_matrix(
        (v.values.numpy(), (v.rows.numpy(), v.cols.numpy())), shape=(n_cells, n_features), dtype=np.float32
    )
    k = int(max(1, min(n_components, n_cells - 2, n_features - 2)))
    if kind == "atac":
        svd = TruncatedSVD(k + 1, random_state=seed).fit(V)
        components, center = svd.components_[1:].T, np.zeros(n_features, dtype=np.float32)
    elif kind == "rna" and n_cells * n_features > DENSE_FIT_VALUES:
        # full-width RNA (20,000 cells x 36,601 genes is 2.9 GB dense, several times that inside PCA): PCA on the
        # sparse matrix, centred implicitly (scikit-learn's ARPACK solver takes sparse input from 1.4 on)
        pca = PCA(k, svd_solver="arpack", random_state=seed).fit(V)
        components, center = pca.components_.T, pca.mean_
    else:
        dense = V.toarray()
        if kind == "protein":
            dense = dense - dense.mean(axis=1, keepdims=True)
        pca = PCA(k, svd_solver="randomized" if min(dense.shape) > 500 else "full", random_state=seed).fit(dense)
        components, center = pca.components_.T, pca.mean_
        if kind == "protein":  # the CLR is applied before centring: centre = mean of the CLR values
            center = pca.mean_
    view = LinearView(kind, torch.as_tensor(components), torch.as_tensor(center), 1.0, idf)
    with torch.no_grad():
        z = view(x)
        view.scale.fill_(float(torch.sqrt(z.var(dim=0).sum()).clamp_min(1e-6)))
    return view
