"""The classic reductions inside the encoders equal scanpy / Signac's recipes applied to the same cells."""

from __future__ import annotations

import numpy as np
import pytest
import scanpy as sc
from anndata import AnnData
from scipy import sparse

from scmamba.model._linear_views import fit_linear_view
from scmamba.nn import SparseRows


def _counts(rng, n_cells=300, n_features=400, density=0.1):
    X = sparse.random(n_cells, n_features, density=density, random_state=rng, format="csr", dtype=np.float32)
    X.data = np.ceil(X.data * 20).astype(np.float32)
    X = X + sparse.csr_matrix((np.ones(n_cells, dtype=np.float32), (np.arange(n_cells), np.zeros(n_cells, int))),
                              shape=X.shape)  # fmt: skip
    return sparse.csr_matrix(X)


def _unscaled(view, X):
    return view(SparseRows.from_scipy(X)).numpy() * float(view.scale)


def test_rna_view_is_scanpy_lognorm_pca():
    from sklearn.decomposition import PCA

    X = _counts(np.random.default_rng(0))
    view = fit_linear_view(X, "rna", 10)
    a = AnnData(X.copy())
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    dense = a.X.toarray()
    pca = PCA(10, svd_solver="full", random_state=0).fit(dense)
    np.testing.assert_allclose(np.abs(_unscaled(view, X)), np.abs(pca.transform(dense)), atol=1e-3)
    # new cells are projected with the fitted reduction, and the scale gives unit total variance on the fit cells
    z = view(SparseRows.from_scipy(X)).numpy()
    assert z.var(axis=0, ddof=1).sum() == pytest.approx(1.0, rel=1e-3)


def test_rna_view_of_a_wide_layer_is_fitted_sparse_and_equals_the_dense_fit(monkeypatch):
    """Above DENSE_FIT_VALUES the RNA PCA runs on the sparse matrix (no dense cells x genes copy), same reduction."""
    import scmamba.model._linear_views as views

    X = _counts(np.random.default_rng(1))
    dense_fit = _unscaled(fit_linear_view(X, "rna", 10), X)
    monkeypatch.setattr(views, "DENSE_FIT_VALUES", 0)
    monkeypatch.setattr(sparse.csr_matrix, "toarray", lambda *a, **k: pytest.fail("densified"), raising=True)
    sparse_fit = _unscaled(fit_linear_view(X, "rna", 10), X)
    np.testing.assert_allclose(np.abs(sparse_fit), np.abs(dense_fit), atol=1e-3)


def test_protein_view_is_clr_pca():
    from sklearn.decomposition import PCA

    X = _counts(np.random.default_rng(1), n_features=40, density=0.6)
    view = fit_linear_view(X, "protein", 5)
    clr = np.log1p(X.toarray())
    clr -= clr.mean(axis=1, keepdims=True)
    pca = PCA(5, svd_solver="full", random_state=0).fit(clr)
    np.testing.assert_allclose(np.abs(_unscaled(view, X)), np.abs(pca.transform(clr)), atol=1e-3)


def test_atac_view_is_lsi_without_its_first_component():
    from sklearn.decomposition import TruncatedSVD

    X = _counts(np.random.default_rng(2), n_features=600, density=0.05)
    view = fit_linear_view(X, "atac", 8)
    B = (X > 0).astype(np.float32).toarray()
    idf = X.shape[0] / (1.0 + B.sum(axis=0))
    tfidf = np.log1p(B / B.sum(axis=1, keepdims=True) * idf * 1e4)
    svd = TruncatedSVD(9, random_state=0).fit(sparse.csr_matrix(tfidf))
    expected = svd.transform(sparse.csr_matrix(tfidf))[:, 1:]
    np.testing.assert_allclose(np.abs(_unscaled(view, X)), np.abs(expected), atol=1e-2 * np.abs(expected).max())
