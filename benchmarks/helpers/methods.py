"""One runner per benchmarked method, so that every script sets each method up the same way.

``scmamba`` (also ``n_layers=0``: :data:`NO_BLOCK`), ``multivi`` and ``totalvi`` register a MuData and return the
untrained model (the scripts train them with their own epochs, callbacks and timers; ``fit_multivi`` /
``fit_totalvi`` also train); ``rna_pca``, ``LayerReducer`` (per-layer PCA / LSI / CLR-PCA), ``harmony`` and
``wnn_graph`` are the classic baselines. The MuData has an ``"rna"`` modality and a second one, ``other``, of kind
``"atac"`` or ``"protein"`` (:func:`benchmarks.helpers.common.other_modality`).
"""

from __future__ import annotations

import numpy as np

N_COMPS = 50  # components of the per-layer PCA / LSI reductions

#: ``SCMAMBA`` keywords of the no-block baseline: tokens straight into the head, no Mamba2 block in either encoder.
NO_BLOCK = {"n_layers": 0}


def _modalities(other: str, kind: str, batch_from_rna: bool) -> dict:
    mods = {"rna_layer": "rna", f"{kind}_layer": other}
    return {**mods, "batch_key": "rna"} if batch_from_rna else mods


# --------------------------------------------------------------------------------------------------- deep models
def scmamba(mdata, other: str, kind: str, *, batch_key: str | None = "batch", batch_from_rna: bool = False, **kwargs):
    """``SCMAMBA`` registered on ``mdata`` (``batch_key`` read from ``mdata.obs``, or from the RNA modality)."""
    from scmamba import SCMAMBA

    SCMAMBA.setup_mudata(mdata, batch_key=batch_key, modalities=_modalities(other, kind, batch_from_rna))
    return SCMAMBA(mdata, **kwargs)


def multivi(mdata, other: str, kind: str = "atac", *, batch_key: str = "batch", batch_from_rna: bool = True):
    """scvi-tools MULTIVI at its defaults on every gene and peak (``kind="protein"``: its protein branch)."""
    import scvi

    scvi.model.MULTIVI.setup_mudata(mdata, batch_key=batch_key, modalities=_modalities(other, kind, batch_from_rna))
    n_regions = mdata.mod[other].n_vars if kind == "atac" else 0
    return scvi.model.MULTIVI(mdata, n_genes=mdata.mod["rna"].n_vars, n_regions=n_regions)


def dense_protein(other: str, *mdatas) -> None:
    """Densify the protein counts of every MuData in place (TOTALVI's protein likelihood reads a dense matrix)."""
    for m in mdatas:
        X = m.mod[other].X
        m.mod[other].X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float32)


def totalvi(mdata, other: str, *, batch_key: str = "batch", batch_from_rna: bool = True, also_dense=()):
    """scvi-tools TOTALVI at its defaults; the protein counts of ``mdata`` and of ``also_dense`` are densified."""
    import scvi

    dense_protein(other, mdata, *also_dense)
    scvi.model.TOTALVI.setup_mudata(
        mdata, batch_key=batch_key, modalities=_modalities(other, "protein", batch_from_rna)
    )
    return scvi.model.TOTALVI(mdata)


def fit_multivi(ref, other: str, epochs: int):
    """:func:`multivi` on ``ref``, trained for ``epochs`` without a progress bar."""
    model = multivi(ref, other)
    model.train(max_epochs=epochs, enable_progress_bar=False)
    return model


def fit_totalvi(ref, other: str, epochs: int, *also_dense):
    """:func:`totalvi` on ``ref`` (query sets in ``also_dense`` densified too), trained for ``epochs``."""
    model = totalvi(ref, other, also_dense=also_dense)
    model.train(max_epochs=epochs, enable_progress_bar=False)
    return model


# --------------------------------------------------------------------------------------------------- classic
def rna_pca(rna, seed: int, n_comps: int = N_COMPS) -> np.ndarray:
    """scib's pre-integration embedding: normalize_total + log1p + PCA (arpack) of the RNA counts of all cells."""
    import anndata as ad
    import scanpy as sc

    a = ad.AnnData(X=rna.X.astype(np.float32))
    sc.pp.normalize_total(a)
    sc.pp.log1p(a)
    sc.pp.pca(a, n_comps=min(n_comps, min(a.shape) - 1), svd_solver="arpack", random_state=seed)
    return np.asarray(a.obsm["X_pca"], dtype=np.float32)


def harmony(Z: np.ndarray, groups: np.ndarray, seed: int, threads: int | None = None) -> np.ndarray:
    """harmonypy on the rows of ``Z`` with ``groups`` (batch or omics layer per row) as the covariate."""
    import harmonypy
    import pandas as pd

    kwargs = {} if threads is None else {"ncores": threads}
    meta = pd.DataFrame({"group": groups})
    ho = harmonypy.run_harmony(Z, meta, "group", random_state=seed, verbose=False, **kwargs)
    Zc = np.asarray(ho.Z_corr)
    return Zc.T if Zc.shape[0] != Z.shape[0] else Zc  # older harmonypy returns dims x cells


def unit_variance(*layers: np.ndarray) -> list[np.ndarray]:
    """Each embedding scaled to unit total variance (so neither layer dominates when they are put together)."""
    return [z / np.sqrt(z.var(axis=0).sum()) for z in layers]


# --------------------------------------------------------------------------------------------------- reductions
def lognorm(X):
    """scanpy ``normalize_total`` (1e4) + ``log1p`` of a count matrix (no fitted state, so train and test are alike)."""
    import anndata as ad
    import scanpy as sc
    from scipy import sparse

    adata = ad.AnnData(sparse.csr_matrix(X, dtype=np.float32))
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    return adata.X


class LayerReducer:
    """Per-layer reductions fitted on training cells: PCA of log-normalised RNA, ATAC LSI, PCA of CLR protein."""

    def __init__(self, kind: str, n_comps: int = N_COMPS, seed: int = 0):
        self.kind, self.n_comps, self.seed = kind, n_comps, seed

    def _rna(self, X):
        return lognorm(X)

    def _tfidf(self, X):
        from scipy import sparse

        X = sparse.csr_matrix(X, dtype=np.float32)
        X.data = np.ones_like(X.data)  # binarise
        tf = sparse.diags(1.0 / np.maximum(np.asarray(X.sum(axis=1)).ravel(), 1)) @ X
        tfidf = tf @ sparse.diags(self.idf_)
        tfidf.data = np.log1p(tfidf.data * 1e4)
        return tfidf

    def _clr(self, X):
        X = np.log1p(np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64))
        return X - X.mean(axis=1, keepdims=True)

    def fit_transform(self, X_rna, X_oth) -> tuple[np.ndarray, np.ndarray]:
        """Fit the reductions on training cells; return their RNA and other-layer embeddings."""
        from sklearn.decomposition import PCA, TruncatedSVD

        R = self._rna(X_rna)
        self.pca_rna = PCA(min(self.n_comps, min(R.shape) - 1), svd_solver="arpack", random_state=self.seed)
        z_rna = self.pca_rna.fit_transform(R)
        if self.kind == "atac":
            doc_freq = np.asarray((X_oth > 0).sum(axis=0)).ravel()
            self.idf_ = (X_oth.shape[0] / (1.0 + doc_freq)).astype(np.float32)
            T = self._tfidf(X_oth)
            self.svd = TruncatedSVD(min(self.n_comps + 1, min(T.shape) - 1), random_state=self.seed)
            z_oth = self.svd.fit_transform(T)[:, 1:]  # first LSI component tracks sequencing depth
        else:
            C = self._clr(X_oth)
            self.pca_oth = PCA(min(self.n_comps, min(C.shape) - 1), random_state=self.seed)
            z_oth = self.pca_oth.fit_transform(C)
        return z_rna, z_oth

    def transform(self, X_rna, X_oth) -> tuple[np.ndarray, np.ndarray]:
        """Project new cells with the fitted reductions."""
        z_rna = self.pca_rna.transform(self._rna(X_rna))
        if self.kind == "atac":
            z_oth = self.svd.transform(self._tfidf(X_oth))[:, 1:]
        else:
            z_oth = self.pca_oth.transform(self._clr(X_oth))
        return z_rna, z_oth


def wnn_mdata(z_rna: np.ndarray, z_oth: np.ndarray, kind: str, seed: int):
    """muon WNN of one cell set from its two layers' representations; the MuData holds ``obsp['wnn_*']``."""
    import anndata as ad
    import muon as mu
    import pandas as pd
    import scanpy as sc

    obs = pd.DataFrame(index=[f"c{i}" for i in range(len(z_rna))])
    mods = {}
    for name, z, rep in (("rna", z_rna, "X_pca"), (kind, z_oth, "X_lsi" if kind == "atac" else "X_pca")):
        a = ad.AnnData(X=np.ascontiguousarray(z, dtype=np.float32), obs=obs.copy())
        a.obsm[rep] = a.X
        sc.pp.neighbors(a, use_rep=rep, random_state=seed)
        mods[name] = a
    mdata = mu.MuData(mods)
    n = len(z_rna)  # muon's defaults (200 candidate / 20 bandwidth neighbours) need more cells than a quick run has
    mu.pp.neighbors(
        mdata,
        key_added="wnn",
        n_multineighbors=min(200, n - 2),
        n_bandwidth_neighbors=min(20, n - 2),
        random_state=seed,
    )
    return mdata


def wnn_graph(z_rna: np.ndarray, z_oth: np.ndarray, kind: str, seed: int):
    """The muon WNN connectivities (CSR) of :func:`wnn_mdata`."""
    from scipy import sparse

    return sparse.csr_matrix(wnn_mdata(z_rna, z_oth, kind, seed).obsp["wnn_connectivities"])
