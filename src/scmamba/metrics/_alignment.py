"""Single-cell level alignment metrics for row-paired embeddings: FOSCTTM, matching score, neighbourhood overlap.

None of these exist in scikit-learn, scanpy or scib-metrics, so they are written here; all of them avoid a dense
``N x N`` matrix so they scale to 100k+ cells.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, overload

import numpy as np
import pandas as pd

from .._embeddings import check_paired

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike

Metric = Literal["euclidean", "cosine"]


def _closer_counts(
    x: np.ndarray,
    y: np.ndarray,
    metric: Metric,
    block_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Count, for every cell, the cross-modal profiles strictly closer than its true match.

    Returns ``(n_x, n_y)`` with ``n_x[i] = #{j : d(x_i, y_j) < d(x_i, y_i)}`` and
    ``n_y[j] = #{i : d(x_i, y_j) < d(x_j, y_j)}``. One pass over row blocks of ``x``; memory is
    ``block_size x N`` distances.
    """
    from sklearn.metrics import pairwise_distances
    from sklearn.metrics.pairwise import paired_distances

    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}.")
    if block_size < 1:
        raise ValueError("block_size must be positive.")
    n = x.shape[0]
    # The true-match distances come from the direct formula (|x - y|, not |x|^2 + |y|^2 - 2xy), which is the
    # more accurate one; the block entries of the true matches are excluded explicitly below.
    true = paired_distances(x, y, metric=metric)
    n_x = np.zeros(n, dtype=np.int64)
    n_y = np.zeros(n, dtype=np.int64)
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        d = pairwise_distances(x[start:stop], y, metric=metric)
        rows = np.arange(stop - start)
        d[rows, start + rows] = np.inf  # a true match is never "closer than itself"
        n_x[start:stop] = np.count_nonzero(d < true[start:stop, None], axis=1)
        n_y += np.count_nonzero(d < true[None, :], axis=0)
    return n_x, n_y


@overload
def foscttm(
    x: ArrayLike,
    y: ArrayLike,
    *,
    metric: Metric = ...,
    block_size: int = ...,
    return_per_cell: Literal[False] = ...,
) -> float: ...


@overload
def foscttm(
    x: ArrayLike,
    y: ArrayLike,
    *,
    metric: Metric = ...,
    block_size: int = ...,
    return_per_cell: Literal[True],
) -> tuple[float, np.ndarray, np.ndarray]: ...


def foscttm(
    x: ArrayLike,
    y: ArrayLike,
    *,
    metric: Metric = "euclidean",
    block_size: int = 2048,
    return_per_cell: bool = False,
) -> float | tuple[float, np.ndarray, np.ndarray]:
    r"""Fraction of samples closer than the true match (FOSCTTM).

    For paired embeddings ``x`` and ``y`` of ``N`` cells,

    .. math::

        \mathrm{FOSCTTM} = \frac{1}{2N}\sum_{i=1}^{N}\frac{n_1^{(i)} + n_2^{(i)}}{N},\quad
        n_1^{(i)} = |\{j : d(x_j, y_i) < d(x_i, y_i)\}|,\quad
        n_2^{(i)} = |\{j : d(x_i, y_j) < d(x_i, y_i)\}|.

    0 means every true match is the nearest cross-modal profile; a random pairing gives about 0.5. Lower is
    better. Distances are computed ``block_size`` rows at a time, so memory is ``block_size x N`` floats
    (float32 input is kept in float32).

    Parameters
    ----------
    x
        Embedding of the first omics layer, shape ``(N, d)``.
    y
        Embedding of the second omics layer, row-paired with ``x``.
    metric
        ``"euclidean"`` (as in the paper) or ``"cosine"``.
    block_size
        Rows of ``x`` per distance block.
    return_per_cell
        Also return the per-cell fractions.

    Returns
    -------
    score
        The FOSCTTM.
    frac_x
        Only with ``return_per_cell``: for each ``x_i``, the fraction of ``y`` closer than ``y_i``
        (:math:`n_2^{(i)}/N`).
    frac_y
        Only with ``return_per_cell``: for each ``y_i``, the fraction of ``x`` closer than ``x_i``
        (:math:`n_1^{(i)}/N`).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(100, 8))
    >>> foscttm(x, x)
    0.0
    """
    x, y = check_paired(x, y)
    n = x.shape[0]
    n_x, n_y = _closer_counts(x, y, metric, block_size)
    score = float((n_x.sum() + n_y.sum()) / (2.0 * n * n))
    if return_per_cell:
        return score, n_x / n, n_y / n
    return score


def neighborhood_overlap(
    x: ArrayLike,
    y: ArrayLike,
    ks: Sequence[int] | None = None,
    *,
    metric: Metric = "euclidean",
    block_size: int = 2048,
) -> pd.DataFrame:
    """Neighbourhood overlap score: how often a cell's partner is among its ``k`` nearest cross-modal neighbours.

    For each profile ``x_i`` the ``k`` nearest profiles of the other layer (``y``) are taken, and it is checked
    whether the true partner ``y_i`` is one of them; likewise from ``y_i`` into ``x``. The score at ``k`` is the
    fraction of hits, averaged over both directions. Ties are resolved in favour of the partner (the partner
    counts as within ``k`` when fewer than ``k`` profiles are strictly closer), so the score is exactly
    ``mean(n < k)`` with ``n`` the per-cell counts behind :func:`foscttm`; it is computed in blocks, without an
    ``N x N`` matrix, for all ``ks`` at once.

    Parameters
    ----------
    x
        Embedding of the first omics layer, shape ``(N, d)``.
    y
        Embedding of the second omics layer, row-paired with ``x``.
    ks
        Neighbourhood sizes. Default: a geometric grid of about 20 sizes from 1 to ``N``.
    metric
        ``"euclidean"`` or ``"cosine"``.
    block_size
        Rows of ``x`` per distance block.

    Returns
    -------
    One row per ``k`` with columns ``k``, ``overlap`` (mean of both directions), ``overlap_x_to_y`` and
    ``overlap_y_to_x``.
    """
    x, y = check_paired(x, y)
    n = x.shape[0]
    if ks is None:
        ks_arr = np.unique(np.round(np.geomspace(1, n, num=20)).astype(np.int64))
    else:
        ks_arr = np.asarray(ks, dtype=np.int64).ravel()
        if ks_arr.size == 0 or ks_arr.min() < 1:
            raise ValueError("`ks` must hold positive integers.")
    n_x, n_y = _closer_counts(x, y, metric, block_size)
    # fraction of cells with fewer than k strictly closer profiles, for every k, via sorted counts
    frac_x = np.searchsorted(np.sort(n_x), ks_arr, side="left") / n
    frac_y = np.searchsorted(np.sort(n_y), ks_arr, side="left") / n
    return pd.DataFrame(
        {
            "k": ks_arr,
            "overlap": (frac_x + frac_y) / 2.0,
            "overlap_x_to_y": frac_x,
            "overlap_y_to_x": frac_y,
        }
    )


def _neighbour_sets(x: np.ndarray, y: np.ndarray, k: int, metric: Metric) -> tuple[np.ndarray, np.ndarray]:
    """Joint neighbourhoods used by :func:`matching_score`, as column indices into a ``2N`` universe.

    Row ``i`` of the first array lists ``x_i``'s neighbourhood: itself plus its ``k - 1`` nearest ``x`` (columns
    ``0..N-1``) and its ``k`` nearest ``y`` (columns ``N + j``). The second array is the same for ``y_j``.
    """
    from sklearn.neighbors import NearestNeighbors

    n = x.shape[0]

    def within(data: np.ndarray) -> np.ndarray:
        self_idx = np.arange(n)[:, None]
        if k == 1:
            return self_idx
        others = NearestNeighbors(n_neighbors=k - 1, metric=metric).fit(data).kneighbors(return_distance=False)
        return np.concatenate([self_idx, others], axis=1)

    k_xx = within(x)
    k_yy = within(y)
    k_xy = NearestNeighbors(n_neighbors=k, metric=metric).fit(y).kneighbors(x, return_distance=False)
    k_yx = NearestNeighbors(n_neighbors=k, metric=metric).fit(x).kneighbors(y, return_distance=False)
    return np.concatenate([k_xx, n + k_xy], axis=1), np.concatenate([k_yx, n + k_yy], axis=1)


def matching_score(
    x: ArrayLike,
    y: ArrayLike,
    *,
    k: int = 20,
    metric: Metric = "euclidean",
    block_size: int = 2048,
) -> float:
    r"""Compute the matching score (MS): mean confidence that a profile is matched to its own cell.

    What is computed (the paper's Jaccard construction, with no softmax or learned probabilities):

    1. Every profile gets a joint neighbourhood of ``2k`` members in a universe of ``2N`` profiles. For ``x_i``:
       itself with its ``k - 1`` nearest ``x`` profiles, plus its ``k`` nearest ``y`` profiles. For ``y_j``:
       its ``k`` nearest ``x`` profiles, plus itself with its ``k - 1`` nearest ``y`` profiles. In the paper's
       notation this is :math:`(K_{ii}, K_{ij})` and :math:`(K_{ji}, K_{jj})`; the two layers' parts are
       disjoint, so the unions and intersections of the paper's formula act part by part.
    2. The matching matrix is the Jaccard index of the two neighbourhoods,
       :math:`M_{ij} = |A_i \cap B_j| / |A_i \cup B_j| = |A_i \cap B_j| / (4k - |A_i \cap B_j|)`.
    3. Rows are normalised to sum to one, :math:`\tilde M_{ij} = M_{ij} / \sum_{j'} M_{ij'}`, and the score is
       :math:`\frac{1}{N}\sum_i \tilde M_{ii}` (a row with no overlap at all contributes 0).

    It lies in ``[0, 1]``; higher is better. Even a perfect alignment scores below 1 when a cell's neighbours
    share its neighbourhood (they then get part of the row's mass), so the score is best compared between
    methods on the same cells and ``k``. ``M`` is only ever formed as a sparse matrix, ``block_size`` rows at a
    time.

    Parameters
    ----------
    x
        Embedding of the first omics layer, shape ``(N, d)``.
    y
        Embedding of the second omics layer, row-paired with ``x``.
    k
        Neighbours taken within and across layers (the paper gives no value).
    metric
        ``"euclidean"`` or ``"cosine"``.
    block_size
        Rows of the matching matrix formed at a time.

    Returns
    -------
    float
        The matching score.
    """
    from scipy import sparse

    x, y = check_paired(x, y)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"Need 1 <= k <= number of cells ({n}), got k={k}.")
    a_sets, b_sets = _neighbour_sets(x, y, k, metric)

    def indicator(sets: np.ndarray) -> sparse.csr_matrix:
        rows = np.repeat(np.arange(sets.shape[0]), sets.shape[1])
        data = np.ones(sets.size, dtype=np.float64)
        return sparse.csr_matrix((data, (rows, sets.ravel())), shape=(sets.shape[0], 2 * n))

    a = indicator(a_sets)
    b_t = indicator(b_sets).T.tocsr()
    total = 0.0
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        inter = (a[start:stop] @ b_t).tocsr()  # |A_i ∩ B_j|, nonzero only where neighbourhoods overlap
        jaccard = inter.copy()
        jaccard.data = inter.data / (4 * k - inter.data)
        row_sum = np.asarray(jaccard.sum(axis=1)).ravel()
        diag = np.asarray(jaccard[np.arange(stop - start), np.arange(start, stop)]).ravel()
        total += float(np.divide(diag, row_sum, out=np.zeros_like(diag), where=row_sum > 0).sum())
    return total / n
