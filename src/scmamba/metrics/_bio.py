"""Biology-conservation metrics on one embedding with cell-type labels, label transfer and trajectory conservation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .._embeddings import as_embedding, as_labels, default_k, knn_indices

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike

#: Leiden resolutions scanned by :func:`ari_nmi_leiden`: 0.1 to 2.0 in steps of 0.1, as in the paper.
DEFAULT_RESOLUTIONS: tuple[float, ...] = tuple(np.round(np.arange(0.1, 2.01, 0.1), 2).tolist())


def ari_nmi_leiden(
    embedding: ArrayLike | None,
    labels: ArrayLike,
    *,
    resolutions: Sequence[float] | None = None,
    n_neighbors: int = 15,
    seed: int = 0,
    adjacency=None,
    return_clusters: bool = False,
) -> dict[str, Any]:
    """Best ARI and NMI between cell-type labels and Leiden clusterings over a range of resolutions.

    A scanpy kNN graph (``n_neighbors``, Euclidean) is built on the embedding once; Leiden (igraph flavour) is
    run at every resolution, and the highest ARI and the highest NMI (arithmetic normalisation) are kept, each
    with the resolution that gave it. The maximum over resolutions uses the labels, so it is an optimistic
    estimate; it is what the paper reports.

    Parameters
    ----------
    embedding
        Cell embedding, shape ``(n_cells, d)``.
    labels
        Cell-type label per cell.
    resolutions
        Leiden resolutions; default ``scmamba.metrics.DEFAULT_RESOLUTIONS`` (0.1, 0.2, ..., 2.0).
    n_neighbors
        Neighbours of the kNN graph (scanpy's default 15).
    seed
        Random state of the neighbour search and of Leiden.
    adjacency
        A precomputed cell graph (sparse ``(n_cells, n_cells)``, e.g. muon's WNN connectivities) to cluster
        instead of a kNN graph of ``embedding`` (then ``embedding`` may be ``None``).
    return_clusters
        Also return the clustering behind the best ARI (``"clusters"``: a string label per cell), e.g. to store
        it beside the embedding.

    Returns
    -------
    ``{"ari", "nmi", "resolution_ari", "resolution_nmi"}`` (and ``"clusters"`` with ``return_clusters``).
    """
    import anndata as ad
    import pandas as pd
    import scanpy as sc
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    if adjacency is None:
        emb = as_embedding(embedding, "embedding")
        n = emb.shape[0]
    else:
        n = adjacency.shape[0]
        if adjacency.shape != (n, n):
            raise ValueError(f"`adjacency` must be square (cells x cells), got shape {adjacency.shape}.")
    lab = as_labels(labels, n)
    res_list = list(DEFAULT_RESOLUTIONS if resolutions is None else resolutions)
    if not res_list:
        raise ValueError("`resolutions` is empty.")
    obs = pd.DataFrame(index=pd.RangeIndex(n).astype(str))
    if adjacency is None:
        adata = ad.AnnData(X=emb, obs=obs)
        sc.pp.neighbors(adata, n_neighbors=n_neighbors, use_rep="X", random_state=seed)
    else:
        adata = ad.AnnData(obs=obs)
    best = {"ari": -np.inf, "nmi": -np.inf, "resolution_ari": np.nan, "resolution_nmi": np.nan}
    for res in res_list:
        sc.tl.leiden(
            adata,
            resolution=float(res),
            adjacency=adjacency,
            flavor="igraph",
            n_iterations=2,
            directed=False,
            random_state=seed,
            key_added="_leiden",
        )
        clusters = adata.obs["_leiden"].to_numpy()
        ari = float(adjusted_rand_score(lab, clusters))
        nmi = float(normalized_mutual_info_score(lab, clusters))
        if ari > best["ari"]:
            best["ari"], best["resolution_ari"] = ari, float(res)
            if return_clusters:
                best["clusters"] = np.asarray(clusters, dtype=str)
        if nmi > best["nmi"]:
            best["nmi"], best["resolution_nmi"] = nmi, float(res)
    return best


def mean_average_precision(
    embedding: ArrayLike,
    labels: ArrayLike,
    *,
    k: int | None = None,
    metric: str = "euclidean",
) -> float:
    r"""Mean average precision (MAP) of cell-type labels among each cell's nearest neighbours.

    For cell ``i`` with neighbours ordered by distance (itself excluded) and hits
    :math:`h_{il} = [y_{il} = y_i]`,

    .. math::

        AP_i = \frac{\sum_{l=1}^{k} h_{il}\,\frac{1}{l}\sum_{m \le l} h_{im}}{\sum_{l=1}^{k} h_{il}}

    (0 when no neighbour shares the label), i.e. the precision at each hit averaged over the hits; MAP is the
    mean over cells. Ranges 0 to 1, higher is better. No library offers this ranking form for kNN labels, hence
    the few lines here (same definition as scGLUE's benchmark).

    Parameters
    ----------
    embedding
        Cell embedding, shape ``(n_cells, d)``.
    labels
        Cell-type label per cell.
    k
        Neighbours per cell; default 1% of the cells (at least 1).
    metric
        Distance metric for the neighbour search.

    Returns
    -------
    float
        The MAP.
    """
    emb = as_embedding(embedding, "embedding")
    lab = as_labels(labels, emb.shape[0])
    k = default_k(emb.shape[0]) if k is None else int(k)
    k = min(k, emb.shape[0] - 1)
    nbrs = knn_indices(emb, k, metric=metric)
    hits = lab[nbrs] == lab[:, None]
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    n_hits = hits.sum(axis=1)
    ap = np.divide((hits * precision_at).sum(axis=1), n_hits, out=np.zeros(len(lab)), where=n_hits > 0)
    return float(ap.mean())


def cell_type_asw(
    embedding: ArrayLike, labels: ArrayLike, *, metric: Literal["euclidean", "cosine"] = "euclidean"
) -> float:
    """Cell-type average silhouette width rescaled to ``[0, 1]``: ``cASW = (ASW + 1) / 2``.

    :func:`scib_metrics.silhouette_label` with ``rescale=True`` (scib's convention: computed in chunks, no dense
    distance matrix kept; cells of a singleton type count 0), under the name of the paper's metric table.
    Higher is better.

    Parameters
    ----------
    embedding
        Cell embedding, shape ``(n_cells, d)``.
    labels
        Cell-type label per cell (at least two types).
    metric
        ``"euclidean"`` or ``"cosine"``.

    Returns
    -------
    float
        The cASW.
    """
    from scib_metrics import silhouette_label

    emb = as_embedding(embedding, "embedding")
    lab = as_labels(labels, emb.shape[0])
    return float(silhouette_label(emb, lab, rescale=True, metric=metric))


def knn_label_transfer(
    ref_embedding: ArrayLike,
    ref_labels: ArrayLike,
    query_embedding: ArrayLike,
    *,
    k: int = 15,
    weights: str = "uniform",
) -> np.ndarray:
    """Predict query labels by majority vote of the ``k`` nearest reference cells.

    The kNN of :func:`scmamba.tl.transfer_labels_from_embeddings` (one implementation of label transfer), returning
    only the predicted labels, as the scoring of :func:`label_transfer_scores` needs.

    Parameters
    ----------
    ref_embedding
        Reference embedding, shape ``(n_ref, d)``.
    ref_labels
        Reference labels (no missing values).
    query_embedding
        Query embedding in the same space, shape ``(n_query, d)``.
    k
        Neighbours per query cell (capped at the reference size).
    weights
        ``"uniform"`` or ``"distance"`` vote weights.

    Returns
    -------
    numpy.ndarray
        Predicted label per query cell.
    """
    from ..tl import transfer_labels_from_embeddings  # metrics score what tl does; tl never imports metrics

    ref = as_embedding(ref_embedding, "ref_embedding")
    lab = as_labels(ref_labels, ref.shape[0], "ref_labels")
    pred = transfer_labels_from_embeddings(ref, lab, query_embedding, method="knn", n_neighbors=k, weights=weights)
    return np.asarray(pred["label"])


def label_transfer_scores(
    ref_embedding: ArrayLike,
    ref_labels: ArrayLike,
    query_embedding: ArrayLike,
    query_labels: ArrayLike,
    *,
    k: int = 15,
    weights: str = "uniform",
) -> dict[str, Any]:
    """Accuracy and F1 of :func:`~scmamba.metrics.knn_label_transfer` against known query labels.

    Macro F1 is the unweighted mean of per-class F1 over every class seen in the query labels or the
    predictions (scikit-learn's default class set); weighted F1 weights classes by query support.

    Parameters
    ----------
    ref_embedding
        Reference embedding.
    ref_labels
        Reference labels.
    query_embedding
        Query embedding.
    query_labels
        True query labels.
    k
        Neighbours per query cell.
    weights
        ``"uniform"`` or ``"distance"`` vote weights.

    Returns
    -------
    ``{"accuracy", "macro_f1", "weighted_f1", "predictions"}``.
    """
    from sklearn.metrics import accuracy_score, f1_score

    pred = knn_label_transfer(ref_embedding, ref_labels, query_embedding, k=k, weights=weights)
    truth = as_labels(query_labels, len(pred), "query_labels")
    return {
        "accuracy": float(accuracy_score(truth, pred)),
        "macro_f1": float(f1_score(truth, pred, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(truth, pred, average="weighted", zero_division=0)),
        "predictions": pred,
    }


def trajectory_conservation(pseudotime_a: ArrayLike, pseudotime_b: ArrayLike) -> float:
    """Trajectory conservation ``TC = (s + 1) / 2`` with ``s`` the Spearman correlation of two pseudotimes.

    Cells where either pseudotime is NaN or infinite (e.g. unreachable from the root) are left out. 1 means the
    same ordering, 0 the reversed ordering.

    Parameters
    ----------
    pseudotime_a
        Pseudotime per cell, e.g. from the integrated embedding.
    pseudotime_b
        Reference pseudotime of the same cells.

    Returns
    -------
    float
        The TC score (NaN when fewer than two cells have finite values in both, or one is constant).
    """
    from scipy.stats import spearmanr

    a = np.asarray(pseudotime_a, dtype=np.float64).ravel()
    b = np.asarray(pseudotime_b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"Pseudotimes differ in length: {a.shape[0]} and {b.shape[0]}.")
    valid = np.isfinite(a) & np.isfinite(b)
    if valid.sum() < 2 or np.ptp(a[valid]) == 0 or np.ptp(b[valid]) == 0:
        return float("nan")
    rho = spearmanr(a[valid], b[valid]).statistic
    return float((rho + 1.0) / 2.0)
