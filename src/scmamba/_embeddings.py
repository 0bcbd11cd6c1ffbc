"""Embeddings and labels as metrics, tools and plots take them: input checks, stacking of omics layers, kNN queries.

A leaf of the package (it imports nothing from scmamba), shared by :mod:`scmamba.metrics`, :mod:`scmamba.tl` and
:mod:`scmamba.pl` so that none of them imports another's private modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike

DEFAULT_LAYER_NAMES: tuple[str, str] = ("mod1", "mod2")


def as_embedding(x: ArrayLike, name: str = "x") -> np.ndarray:
    """Return ``x`` as a 2-D floating point array (cells x dims).

    float32 input stays float32 (halves the memory of blocked distance computations); everything else becomes
    float64.

    Parameters
    ----------
    x
        Embedding, one row per cell. A 1-D array is read as one dimension per cell.
    name
        Name used in error messages.

    Returns
    -------
    The embedding as a C-contiguous 2-D array.
    """
    if hasattr(x, "toarray"):  # scipy sparse
        x = x.toarray()
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (cells x dims), got shape {arr.shape}.")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    if arr.shape[0] == 0:
        raise ValueError(f"`{name}` has no rows.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return np.ascontiguousarray(arr)


def as_labels(labels: ArrayLike, n: int, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a 1-D array of length ``n``.

    Parameters
    ----------
    labels
        One label per cell (any hashable dtype; pandas Categoricals are accepted).
    n
        Expected number of cells.
    name
        Name used in error messages.

    Returns
    -------
    1-D numpy array of labels.
    """
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"`{name}` must be 1-D with {n} entries, got shape {arr.shape}.")
    return arr


def check_paired(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate two row-paired embeddings (row ``i`` of both is the same cell).

    Parameters
    ----------
    x, y
        Embeddings of the first and second omics layer, same shape.

    Returns
    -------
    Both embeddings as 2-D float arrays with a common dtype.
    """
    x = as_embedding(x, "x")
    y = as_embedding(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"Paired embeddings need the same shape, got x {x.shape} and y {y.shape}.")
    dtype = np.result_type(x.dtype, y.dtype)
    return x.astype(dtype, copy=False), y.astype(dtype, copy=False)


def stack_modalities(
    x: ArrayLike,
    y: ArrayLike,
    names: Sequence[str] = DEFAULT_LAYER_NAMES,
) -> tuple[np.ndarray, np.ndarray]:
    """Stack two omics layers' embeddings into one set of ``n_x + n_y`` observations.

    The omics-alignment metrics of the paper treat every profile of every layer as its own observation: for
    paired data with ``N`` cells this gives ``2N`` observations with an omics-layer label each.

    Parameters
    ----------
    x
        Embedding of the first layer, shape ``(n_x, d)``.
    y
        Embedding of the second layer, shape ``(n_y, d)`` (``n_y`` may differ from ``n_x``).
    names
        Omics-layer labels of ``x`` and ``y``.

    Returns
    -------
    z
        The stacked embedding, shape ``(n_x + n_y, d)``; rows of ``x`` first.
    omics
        Omics-layer label of each row of ``z``.

    Examples
    --------
    >>> import numpy as np
    >>> z, omics = stack_modalities(np.zeros((2, 3)), np.ones((2, 3)), names=("rna", "atac"))
    >>> z.shape, list(omics)
    ((4, 3), ['rna', 'rna', 'atac', 'atac'])
    """
    x = as_embedding(x, "x")
    y = as_embedding(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y need the same number of dimensions, got {x.shape[1]} and {y.shape[1]}.")
    if len(names) != 2:
        raise ValueError("`names` must hold exactly two layer names.")
    z = np.concatenate([x, y], axis=0)
    omics = np.repeat(np.asarray(list(names), dtype=object), [x.shape[0], y.shape[0]])
    return z, omics


def resolve_stacked(
    x: ArrayLike,
    y: ArrayLike | None,
    groups: ArrayLike | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(z, groups)`` from either two layers or an already stacked embedding.

    Parameters
    ----------
    x
        First layer's embedding, or the stacked embedding when ``y`` is None.
    y
        Second layer's embedding, or None.
    groups
        Omics-layer (or batch) label per row of ``x``; required when ``y`` is None, ignored otherwise.

    Returns
    -------
    The stacked embedding and one group label per row.
    """
    if y is not None:
        if groups is not None:
            raise ValueError("Pass either `y` or `groups`, not both.")
        return stack_modalities(x, y)
    if groups is None:
        raise ValueError("Without `y`, `x` must be a stacked embedding and `groups` must label its rows.")
    z = as_embedding(x, "x")
    return z, as_labels(groups, z.shape[0], "groups")


def stacked_labels(labels: ArrayLike, n_obs: int, n_first: int | None = None) -> np.ndarray:
    """Give a cell-type label to every row of a stacked embedding.

    Parameters
    ----------
    labels
        Either one label per stacked row (length ``n_obs``) or, for paired data, one label per cell (length
        ``n_obs / 2``), which is then repeated for the second layer.
    n_obs
        Number of rows of the stacked embedding.
    n_first
        Number of rows of the first layer; only used to check the paired case.

    Returns
    -------
    One label per stacked row.
    """
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError("`labels` must be 1-D.")
    if arr.shape[0] == n_obs:
        return arr
    if 2 * arr.shape[0] == n_obs and (n_first is None or n_first == arr.shape[0]):
        return np.concatenate([arr, arr])
    raise ValueError(f"`labels` has {arr.shape[0]} entries; expected {n_obs} (stacked) or {n_obs // 2} (paired).")


def knn_indices(
    data: np.ndarray,
    k: int,
    *,
    query_idx: np.ndarray | None = None,
    metric: str = "euclidean",
) -> np.ndarray:
    """Exact ``k`` nearest neighbours of rows of ``data`` among ``data``, the query cell itself excluded.

    Parameters
    ----------
    data
        Embedding, shape ``(n, d)``.
    k
        Number of neighbours (must be below ``n``).
    query_idx
        Rows to query; all rows when None.
    metric
        Distance metric understood by :class:`sklearn.neighbors.NearestNeighbors`.

    Returns
    -------
    Neighbour indices, shape ``(n_query, k)``, nearest first.
    """
    from sklearn.neighbors import NearestNeighbors

    n = data.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"Need 1 <= k < number of cells ({n}), got k={k}.")
    if query_idx is None:
        # sklearn drops the query point itself when asked about the fitted data (X=None).
        nn = NearestNeighbors(n_neighbors=k, metric=metric).fit(data)
        return nn.kneighbors(return_distance=False)
    query_idx = np.asarray(query_idx, dtype=np.int64)
    nn = NearestNeighbors(n_neighbors=k + 1, metric=metric).fit(data)
    idx = nn.kneighbors(data[query_idx], return_distance=False)
    # Drop each row's own index; with duplicated points it may be missing, then drop the farthest instead
    # (the same rule sklearn applies for X=None).
    keep = idx != query_idx[:, None]
    no_self = keep.all(axis=1)
    keep[no_self, -1] = False
    return idx[keep].reshape(len(query_idx), k)


def default_k(n_obs: int, fraction: float = 0.01) -> int:
    """Neighbourhood size used by MAP and SAS: ``fraction`` of the cells, rounded, at least 1.

    Parameters
    ----------
    n_obs
        Number of observations.
    fraction
        Fraction of observations.

    Returns
    -------
    The neighbourhood size.
    """
    return max(round(n_obs * fraction), 1)
