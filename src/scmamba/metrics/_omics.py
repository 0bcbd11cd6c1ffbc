"""Omics-alignment metrics on the stacked embedding of both layers (``2N`` observations with an omics label).

Every function takes either the two layers ``(x, y)`` or, for unpaired data or more than two layers, an
already stacked embedding as ``x`` with ``y=None`` and ``groups=`` its omics labels (see
:func:`~scmamba.metrics.stack_modalities`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .._embeddings import as_embedding, default_k, knn_indices, resolve_stacked, stacked_labels

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


def omics_entropy_mixing_score(
    x: ArrayLike,
    y: ArrayLike | None = None,
    *,
    groups: ArrayLike | None = None,
    n_cells: int = 100,
    n_neighbors: int = 100,
    n_repeats: int = 100,
    seed: int = 0,
) -> float:
    r"""Omics entropy mixing score (OEMS): how evenly the omics layers mix in local neighbourhoods.

    With :math:`P_i` the share of layer ``i`` among all observations and :math:`p_i` its share among the
    ``n_neighbors`` nearest neighbours of a cell (the cell itself excluded), the size-corrected proportions are
    :math:`p'_i = (p_i / P_i) / \sum_l (p_l / P_l)` and the regional entropy is
    :math:`E = -\sum_i p'_i \ln p'_i / \ln n_{layers}` (the paper's printed formula omits the minus sign). The
    score averages ``E`` over ``n_cells`` random cells (drawn without replacement), then over ``n_repeats``
    draws. Because of the correction, a neighbourhood that reproduces the global layer composition has
    ``E = 1`` whatever the layer sizes; 0 means neighbourhoods hold a single layer. Higher is better.
    Adapted from the batch entropy mixing score (SCALEX), normalised by the maximum entropy so perfect
    mixing gives 1; no library computes this corrected form.

    Parameters
    ----------
    x
        First layer's embedding, or the stacked embedding when ``y`` is None.
    y
        Second layer's embedding (row pairing not required).
    groups
        Omics label per row of ``x`` when ``y`` is None.
    n_cells
        Cells drawn per repeat.
    n_neighbors
        Neighbourhood size (capped at the number of observations minus one).
    n_repeats
        Number of random draws.
    seed
        Seed of the draws.

    Returns
    -------
    The OEMS in ``[0, 1]``.
    """
    z, grp = resolve_stacked(x, y, groups)
    n_obs = z.shape[0]
    layers, codes = np.unique(grp, return_inverse=True)
    n_layers = len(layers)
    if n_layers < 2:
        raise ValueError("OEMS needs at least two omics layers.")
    global_share = np.bincount(codes, minlength=n_layers) / n_obs
    k = min(n_neighbors, n_obs - 1)
    rng = np.random.default_rng(seed)
    draws = [rng.choice(n_obs, size=min(n_cells, n_obs), replace=False) for _ in range(n_repeats)]
    query, inverse = np.unique(np.concatenate(draws), return_inverse=True)

    nbrs = knn_indices(z, k, query_idx=query)
    counts = np.zeros((len(query), n_layers))
    np.add.at(counts, (np.repeat(np.arange(len(query)), k), codes[nbrs].ravel()), 1.0)
    ratio = counts / k / global_share
    p_corr = ratio / ratio.sum(axis=1, keepdims=True)
    plogp = np.where(p_corr > 0, p_corr * np.log(np.where(p_corr > 0, p_corr, 1.0)), 0.0)
    entropy = -plogp.sum(axis=1) / np.log(n_layers)

    per_draw = entropy[inverse].reshape(n_repeats, -1).mean(axis=1)
    return float(per_draw.mean())


def seurat_alignment_score(
    x: ArrayLike,
    y: ArrayLike | None = None,
    *,
    groups: ArrayLike | None = None,
    k: int | None = None,
    n_repeats: int = 4,
    seed: int = 0,
) -> float:
    r"""Seurat alignment score (SAS, Butler et al. 2018) of the omics layers.

    Each layer is subsampled to the size of the smallest one (a no-op for paired data). With ``k`` neighbours
    per observation (itself excluded), :math:`\bar x` the mean number of those from the observation's own layer
    and ``L`` the number of layers,

    .. math::

        \mathrm{SAS} = 1 - \frac{\bar x - k/L}{k - k/L},

    clipped to at most 1 (a neighbourhood can hold fewer same-layer cells than expected at random). 1 means
    perfectly mixed layers, 0 fully separated ones. With unequal layers the subsampling is repeated
    ``n_repeats`` times and averaged. Short enough to write here; scib-metrics has no SAS.

    Parameters
    ----------
    x
        First layer's embedding, or the stacked embedding when ``y`` is None.
    y
        Second layer's embedding.
    groups
        Omics label per row of ``x`` when ``y`` is None.
    k
        Neighbours per observation; default 1% of the subsampled observations (at least 1).
    n_repeats
        Subsampling repeats when layer sizes differ.
    seed
        Seed of the subsampling.

    Returns
    -------
    The SAS in ``[0, 1]``.
    """
    z, grp = resolve_stacked(x, y, groups)
    layers, codes = np.unique(grp, return_inverse=True)
    n_layers = len(layers)
    if n_layers < 2:
        raise ValueError("SAS needs at least two omics layers.")
    members = [np.flatnonzero(codes == c) for c in range(n_layers)]
    min_size = min(len(m) for m in members)
    equal = all(len(m) == min_size for m in members)
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(1 if equal else n_repeats):
        idx = np.concatenate(members if equal else [rng.choice(m, size=min_size, replace=False) for m in members])
        kk = default_k(len(idx)) if k is None else int(k)
        kk = min(kk, len(idx) - 1)
        sub_codes = codes[idx]
        nbrs = knn_indices(z[idx], kk)
        same = (sub_codes[nbrs] == sub_codes[:, None]).sum(axis=1).mean()
        expected = kk / n_layers
        scores.append(min(1.0 - (same - expected) / (kk - expected), 1.0))
    return float(np.mean(scores))


def graph_connectivity(
    x: ArrayLike,
    y: ArrayLike | None,
    labels: ArrayLike,
    *,
    n_neighbors: int = 15,
) -> float:
    r"""Graph connectivity (GC): per cell type, the share of cells in the largest connected component.

    A kNN graph (``n_neighbors`` per observation, itself excluded, exact Euclidean) is built on the stacked
    embedding; for each cell type ``c`` the subgraph of its observations is taken and
    :math:`|LCC_c| / |N_c|` is averaged over types. 1 means every type forms one connected piece.

    Written here instead of calling :func:`scib_metrics.graph_connectivity`: that one takes *strongly*
    connected components of the directed kNN graph, whereas the scIB definition the paper cites uses the
    symmetric (undirected) neighbour graph, i.e. weakly connected components.

    Parameters
    ----------
    x
        First layer's embedding, or a stacked / single embedding when ``y`` is None.
    y
        Second layer's embedding, or None.
    labels
        Cell-type labels: one per cell of a paired dataset (repeated for the second layer) or one per stacked row.
    n_neighbors
        Neighbours per observation in the kNN graph.

    Returns
    -------
    The GC in ``(0, 1]``.
    """
    from scipy.sparse.csgraph import connected_components
    from sklearn.neighbors import NearestNeighbors

    if y is None:
        z = as_embedding(x, "x")
        n_first = None
    else:
        z, _ = resolve_stacked(x, y, None)
        n_first = np.asarray(x).shape[0]
    lab = stacked_labels(labels, z.shape[0], n_first)
    k = min(n_neighbors, z.shape[0] - 1)
    graph = NearestNeighbors(n_neighbors=k).fit(z).kneighbors_graph(mode="connectivity")
    fractions = []
    for label in np.unique(lab):
        mask = np.flatnonzero(lab == label)
        sub = graph[mask][:, mask]
        _, comp = connected_components(sub, directed=True, connection="weak")
        fractions.append(np.bincount(comp).max() / len(mask))
    return float(np.mean(fractions))


def omics_asw(
    x: ArrayLike,
    y: ArrayLike | None,
    labels: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    metric: str = "euclidean",
) -> float:
    r"""Omics-layer average silhouette width (oASW), rescaled so that higher is better.

    Within each cell type ``j`` the silhouette :math:`s_o` of every observation with respect to the omics-layer
    labels is computed; :math:`oASW_j = \mathrm{mean}(1 - |s_o|)` and oASW is the mean over cell types. Cell
    types present in a single layer are skipped. This is exactly :func:`scib_metrics.silhouette_batch` with
    ``rescale=True`` (omics layers as batches), which is used here.

    Parameters
    ----------
    x
        First layer's embedding, or the stacked embedding when ``y`` is None.
    y
        Second layer's embedding, or None.
    labels
        Cell-type labels: one per cell of a paired dataset or one per stacked row.
    groups
        Omics label per row of ``x`` when ``y`` is None.
    metric
        ``"euclidean"`` or ``"cosine"``.

    Returns
    -------
    The oASW in ``[0, 1]`` (NaN when no cell type is present in two layers).
    """
    from scib_metrics import silhouette_batch

    z, grp = resolve_stacked(x, y, groups)
    lab = stacked_labels(labels, z.shape[0], None if y is None else np.asarray(x).shape[0])
    _, grp_codes = np.unique(grp, return_inverse=True)
    usable = [c for c in np.unique(lab) if 1 < len(np.unique(grp_codes[lab == c])) < int((lab == c).sum())]
    if not usable:
        return float("nan")
    return float(silhouette_batch(z, lab, grp_codes, rescale=True, metric=metric))
