"""Every matrix storage anndata allows gives the embedding of the canonical float32 CSR, or a clear set-up error.

Storages: dense, CSR, CSC, scipy sparse arrays, integer and float dtypes (float16 included), unsorted indices,
duplicate entries (the same counts stored as two halves), backed files. The user's matrix is never modified.
"""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pytest
import scvi
import torch
from conftest import TINY
from scipy import sparse

from scmamba import SCMAMBA

MODS = {"rna_layer": "rna", "atac_layer": "atac", "batch_key": "rna"}


def _duplicated(X):
    """The same counts as ``X``, with every count above 1 stored as two entries (halves), in reverse column order."""
    X = sparse.csr_matrix(X, dtype=np.float32)
    X.sort_indices()
    indptr, indices, data = [0], [], []
    for i in range(X.shape[0]):
        cols, vals = X.indices[X.indptr[i] : X.indptr[i + 1]], X.data[X.indptr[i] : X.indptr[i + 1]]
        low = np.floor(vals / 2)
        split = low > 0
        row_cols, row_vals = np.r_[cols, cols[split]][::-1], np.r_[vals - low * split, low[split]][::-1]
        indices.append(row_cols)
        data.append(row_vals)
        indptr.append(indptr[-1] + len(row_cols))
    out = sparse.csr_matrix((np.concatenate(data), np.concatenate(indices), np.array(indptr)), shape=X.shape)
    assert not out.has_canonical_format and out.nnz > X.nnz
    return out


def _unsorted(X):
    X = sparse.csr_matrix(X, dtype=np.float32)
    indptr, indices, data = X.indptr.copy(), X.indices.copy(), X.data.copy()
    for i in range(X.shape[0]):
        s = slice(indptr[i], indptr[i + 1])
        indices[s], data[s] = indices[s][::-1], data[s][::-1]
    out = sparse.csr_matrix((data, indices, indptr), shape=X.shape)
    assert not out.has_sorted_indices
    return out


STORAGES = {
    "csr_int32": lambda X: sparse.csr_matrix(X, dtype=np.int32),
    "csr_float64": lambda X: sparse.csr_matrix(X, dtype=np.float64),
    "csr_int64_indices": lambda X: sparse.csr_matrix(
        (X.data.astype(np.float32), X.indices.astype(np.int64), X.indptr.astype(np.int64)), shape=X.shape
    ),
    "csr_duplicates": _duplicated,
    "csr_unsorted": _unsorted,
    "csc": lambda X: sparse.csc_matrix(X),
    "csr_array": lambda X: sparse.csr_array(X),
    "csc_array": lambda X: sparse.csc_array(X),
    "dense_float32": lambda X: X.toarray().astype(np.float32),
    "dense_float16": lambda X: X.toarray().astype(np.float16),
    "dense_uint16": lambda X: X.toarray().astype(np.uint16),
    "dense_int64_fortran": lambda X: np.asfortranarray(X.toarray().astype(np.int64)),
}
BACKED = ["backed_csr", "backed_csc", "backed_dense", "backed_duplicates"]


@pytest.fixture(scope="module")
def canonical(demo_mdata):
    """300 demo cells as canonical float32 CSR, and a tiny model trained on them for one epoch (eval mode)."""
    m = demo_mdata[:300].copy()
    for mod in ("rna", "atac"):
        m.mod[mod].X = sparse.csr_matrix(m[mod].X, dtype=np.float32)
        assert m[mod].X.has_canonical_format
    torch.use_deterministic_algorithms(True)
    try:
        scvi.settings.seed = 0
        SCMAMBA.setup_mudata(m, batch_key="batch", modalities=MODS)
        model = SCMAMBA(m, **TINY)
        model.train(max_epochs=1, batch_size=64, enable_progress_bar=False)
        model.module.eval()
        z = {
            "joint": model.get_latent_representation(m),
            "rna": model.get_latent_representation(m["rna"], modality="rna"),
            "atac": model.get_latent_representation(m["atac"], modality="atac"),
        }
    finally:
        torch.use_deterministic_algorithms(False)
    return model, m, z


def _stored(m, storage, tmp_path):
    """A copy of ``m`` whose rna and atac matrices are in ``storage`` (backed ones read from a file)."""
    q = m.copy()
    kind = storage.removeprefix("backed_")
    make = {"csr": lambda X: X, "csc": sparse.csc_matrix, "dense": lambda X: X.toarray(), "duplicates": _duplicated}
    for mod in ("rna", "atac"):
        X = m[mod].X
        q.mod[mod] = ad.AnnData(
            STORAGES[storage](X) if storage in STORAGES else make[kind](X), obs=m[mod].obs.copy(), var=m[mod].var.copy()
        )
    if storage in STORAGES:
        return q
    path = tmp_path / f"{storage}.h5mu"
    q.write_h5mu(path)
    backed = md.read_h5mu(path, backed="r")
    assert backed.isbacked
    return backed


def _snapshot(X):
    if sparse.issparse(X):
        return X.format, X.dtype, {k: getattr(X, k).copy() for k in ("data", "indices", "indptr", "row", "col") if
                                   hasattr(X, k)}  # fmt: skip
    return "dense", X.dtype, {"X": np.array(X, copy=True)} if isinstance(X, np.ndarray) else {}


def _assert_unchanged(X, snapshot):
    fmt, dtype, arrays = snapshot
    assert (X.format if sparse.issparse(X) else "dense") == fmt and X.dtype == dtype
    for key, value in arrays.items():
        np.testing.assert_array_equal(getattr(X, key) if key != "X" else X, value)


@pytest.mark.parametrize("storage", list(STORAGES) + BACKED)
def test_every_storage_gives_the_canonical_embedding(canonical, storage, tmp_path):
    model, m, z = canonical
    q = _stored(m, storage, tmp_path)
    snapshots = {mod: _snapshot(q[mod].X) for mod in ("rna", "atac")}
    torch.use_deterministic_algorithms(True)
    try:
        # the MuData path (the query is registered with the model's set-up and read by the data loader)
        np.testing.assert_allclose(model.get_latent_representation(q), z["joint"], atol=1e-5)
        # the one-modality (AnnData) path, every modality
        for mod in ("rna", "atac"):
            np.testing.assert_allclose(model.get_latent_representation(q[mod], modality=mod), z[mod], atol=1e-5)
    finally:
        torch.use_deterministic_algorithms(False)
    for mod in ("rna", "atac"):
        _assert_unchanged(q[mod].X, snapshots[mod])


@pytest.mark.parametrize("storage", ["csr_duplicates", "csc", "csc_array", "dense_float16", "backed_duplicates"])
def test_every_storage_trains_as_the_canonical_matrix(canonical, storage, tmp_path):
    """Set-up and training read the same minibatches: the same seed gives the same trained model.

    Backed data is compared with the canonical matrix backed too (a backed minibatch holds its cells in sorted
    order, which changes which features the random feature dropout drops).
    """
    _, m, _ = canonical
    zs = []
    reference = _stored(m, "backed_csr", tmp_path) if storage.startswith("backed_") else m.copy()
    for data in (reference, _stored(m, storage, tmp_path)):
        scvi.settings.seed = 0
        SCMAMBA.setup_mudata(data, batch_key="batch", modalities=MODS)
        model = SCMAMBA(data, **TINY)
        model.train(max_epochs=1, batch_size=64, enable_progress_bar=False)
        zs.append(model.get_latent_representation())
    # a different input moves embeddings by 0.1 to 0.7; parallel float sums of a training step by up to 1e-5
    np.testing.assert_allclose(zs[1], zs[0], atol=1e-4)


@pytest.mark.parametrize("entry", ["setup_mudata", "anndata"])
def test_non_numeric_counts_are_refused_with_advice_that_works(canonical, entry):
    model, m, z = canonical
    q = m.copy()
    q.mod["rna"].X = m["rna"].X.toarray().astype(str)
    with pytest.raises(ValueError, match=r"holds <U\d+ values; SCMAMBA reads integer or floating-point counts") as err:
        if entry == "setup_mudata":
            SCMAMBA.setup_mudata(q, batch_key="batch", modalities=MODS)
        else:
            model.get_latent_representation(q["rna"], modality="rna")
    assert "adata.X = adata.X.astype(np.float32)" in str(err.value)
    adata = q.mod["rna"]
    adata.X = adata.X.astype(np.float32)  # the advice
    np.testing.assert_allclose(model.get_latent_representation(adata, modality="rna"), z["rna"], atol=1e-5)
