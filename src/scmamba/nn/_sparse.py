"""Minibatches as lists of non-zeros, and the value encoding of raw counts computed on the non-zeros only.

Single-cell profiles are >95% zeros; every step of SCMAMBA's input path (feature dropout, genomic reordering,
value encoding, patch tokens, decoder targets) needs only the non-zero entries, so a minibatch is handed around as
its non-zeros (:class:`SparseRows`) and the dense ``cells x features`` block is never built. The value encoding
also takes a dense tensor (for small inputs and inspection) and then returns a dense tensor, computed the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

import numpy as np
import torch

__all__ = ["SparseRows", "bin_relative_levels", "csr_tensor", "encode_values", "normalize_log1p", "stable_order"]


def csr_tensor(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
    """A torch sparse CSR tensor of valid CSR arrays (scipy's canonical CSR), without torch's warnings.

    Minibatches travel as sparse CSR tensors (scvi-tools' ``load_sparse_tensor=True``). torch warns when such a
    tensor is built that CSR support is in beta, and that invariant checks are off unless asked for: the arrays
    come from scipy's canonical CSR, so the checks are declined explicitly and the beta notice is silenced here,
    for this call only.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
        return torch.sparse_csr_tensor(
            torch.as_tensor(indptr), torch.as_tensor(indices), torch.as_tensor(data), size=shape,
            check_invariants=False,
        )  # fmt: skip


def stable_order(key: torch.Tensor, n_keys: int) -> torch.Tensor:
    """Indices that sort the integer ``key`` (values in ``[0, n_keys)``) stably, as ``torch.sort(stable=True)``.

    The input path sorts every minibatch's non-zeros (by token, by level within a cell). On CPU, numpy's stable sort
    of 16-bit integers is a radix sort, about 3x faster than ``torch.sort`` on a minibatch's millions of non-zeros
    (``benchmarks/README.md``); torch has no CPU radix sort, so keys that fit in 16 bits go through numpy. Elsewhere
    (CUDA sorts by radix already) and for wider keys, ``torch.sort``.
    """
    if key.device.type == "cpu" and n_keys <= 2**16:
        return torch.from_numpy(np.argsort(key.numpy().astype(np.uint16), kind="stable"))
    return torch.sort(key.int() if n_keys <= 2**31 else key, stable=True).indices


@dataclass(frozen=True)
class SparseRows:
    """The non-zero entries of a ``(n_rows, n_cols)`` matrix, sorted by row.

    Attributes
    ----------
    rows, cols
        Row and column index of each non-zero (``int64``).
    values
        Its value (floating point).
    n_rows, n_cols
        Shape of the matrix.
    """

    rows: torch.Tensor
    cols: torch.Tensor
    values: torch.Tensor
    n_rows: int
    n_cols: int

    @classmethod
    def from_tensor(cls, x: torch.Tensor) -> SparseRows:
        """From a dense, sparse CSR or sparse COO ``(n_rows, n_cols)`` tensor (values cast to float32)."""
        n_rows, n_cols = x.shape
        if x.layout == torch.sparse_csc:
            x = x.to_sparse_csr()
        if x.layout == torch.sparse_csr:
            crow = x.crow_indices()
            counts = crow[1:] - crow[:-1]
            rows = torch.repeat_interleave(torch.arange(n_rows, device=x.device), counts)
            cols, values = x.col_indices(), x.values()
        elif x.layout == torch.sparse_coo:
            x = x.coalesce()
            rows, cols = x.indices()
            values = x.values()
        else:
            rows, cols = x.nonzero(as_tuple=True)
            values = x[rows, cols]
        keep = values != 0
        if not bool(keep.all()):
            rows, cols, values = rows[keep], cols[keep], values[keep]
        return cls(rows.long(), cols.long(), values.float(), n_rows, n_cols)

    @classmethod
    def from_scipy(cls, x, device=None) -> SparseRows:
        """From a scipy sparse matrix or array (as canonical CSR: duplicate entries summed; ``x`` is not modified)."""
        from scipy import sparse

        x = sparse.csr_matrix(x)  # shares the arrays of a CSR input: changed on a copy only
        if not x.has_canonical_format or not x.data.all():
            x = x.copy()
            x.sum_duplicates()
            x.eliminate_zeros()
        rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
        return cls(
            torch.as_tensor(rows, dtype=torch.long, device=device),
            torch.as_tensor(x.indices, dtype=torch.long, device=device),
            torch.as_tensor(x.data, dtype=torch.float32, device=device),
            x.shape[0],
            x.shape[1],
        )

    def with_values(self, values: torch.Tensor) -> SparseRows:
        """The same entries with new values."""
        return SparseRows(self.rows, self.cols, values, self.n_rows, self.n_cols)

    def select(self, keep: torch.Tensor) -> SparseRows:
        """The entries where the boolean ``keep`` is true (row order is kept)."""
        return SparseRows(self.rows[keep], self.cols[keep], self.values[keep], self.n_rows, self.n_cols)

    def take_rows(self, keep: torch.Tensor) -> SparseRows:
        """The rows where the boolean ``keep`` (``(n_rows,)``) is true, renumbered from 0 in their order."""
        new_index = torch.cumsum(keep.long(), 0) - 1
        entries = keep[self.rows]
        return SparseRows(
            new_index[self.rows[entries]], self.cols[entries], self.values[entries], int(keep.sum()), self.n_cols
        )

    def permute_cols(self, position: torch.Tensor) -> SparseRows:
        """Columns renamed: column ``j`` becomes ``position[j]`` (a reordering of the features)."""
        return SparseRows(self.rows, position[self.cols], self.values, self.n_rows, self.n_cols)

    def row_sums(self) -> torch.Tensor:
        """Sum of each row's values, ``(n_rows,)``."""
        return self.values.new_zeros(self.n_rows).index_add_(0, self.rows, self.values)

    def row_counts(self) -> torch.Tensor:
        """Number of non-zeros per row, ``(n_rows,)``."""
        return torch.bincount(self.rows, minlength=self.n_rows)

    def to_dense(self) -> torch.Tensor:
        """The dense matrix (for tests and small inputs)."""
        out = self.values.new_zeros(self.n_rows, self.n_cols)
        out[self.rows, self.cols] = self.values
        return out


def _dense_in_dense_out(fn: Callable[..., SparseRows]) -> Callable[..., SparseRows | torch.Tensor]:
    """Let an encoding written on the non-zeros take a dense tensor too (and return one): one implementation."""

    @wraps(fn)
    def wrapper(x, *args, **kwargs):
        if isinstance(x, SparseRows):
            return fn(x, *args, **kwargs)
        return fn(SparseRows.from_tensor(x), *args, **kwargs).to_dense()

    return wrapper


@_dense_in_dense_out
def normalize_log1p(x: SparseRows, target_sum: float = 1e4) -> SparseRows:
    """Scale each cell to ``target_sum`` total counts, then ``log1p``."""
    total = x.row_sums().clamp_min(1e-12)
    return x.with_values(torch.log1p(x.values * (target_sum / total[x.rows])))


@_dense_in_dense_out
def bin_relative_levels(x: SparseRows, n_bins: int) -> SparseRows:
    """Bin each cell's non-zero values by their level within that cell, scaled to ``(0, 1]``.

    Each cell's non-zeros are sorted; ``n_bins - 1`` nearest-rank quantiles of them (at ``0, 1/(n_bins-2), ..., 1``)
    are its bin edges, and a value's bin is the number of edges at or below it (at least 1), returned as
    ``bin / (n_bins - 1)`` (as scGPT / scMamba bin expression). Only the rank of a value within its cell matters, so
    raw counts and normalised log counts give the same bins.
    """
    if n_bins < 2:
        raise ValueError(f"n_bins must be at least 2, got {n_bins}.")
    if x.values.numel() == 0:
        return x
    nnz, device = x.values.numel(), x.values.device
    counts = x.row_counts()
    starts = torch.cumsum(counts, 0) - counts  # each row's first position with rows laid end to end
    # at_or_below: how many of its row's non-zeros are <= each value (1 + its rank, ties taking the last rank)
    top = float(x.values.max())
    integer = top < 2**31 and bool((x.values == x.values.round()).all())
    if integer and x.n_rows * (top + 1) <= 8 * nnz + 2**20:
        # integer counts: a cumulative histogram per row (no sort), its size bounded by the minibatch's
        width = int(top) + 1
        key = x.rows * width + x.values.long()
        cumulative = torch.bincount(key, minlength=x.n_rows * width).view(x.n_rows, width).cumsum(1)
        at_or_below = cumulative.flatten()[key]
    else:
        # sort the non-zeros by (row, value): a stable sort by value, then a stable sort by row
        if integer and top < 2**16:
            by_value = stable_order(x.values.int(), int(top) + 1)
        else:
            by_value = torch.sort(x.values, stable=True).indices
        order = by_value[stable_order(x.rows[by_value], x.n_rows)]
        rows, values = x.rows[order], x.values[order]
        index = torch.arange(nnz, device=device)
        group_end = torch.ones(nnz, dtype=torch.bool, device=device)
        group_end[:-1] = (rows[1:] != rows[:-1]) | (values[1:] != values[:-1])
        last = torch.where(group_end, index, torch.full_like(index, nnz))
        last = torch.flip(torch.cummin(torch.flip(last, [0]), 0).values, [0])  # end of each value's tie group
        at_or_below = torch.empty_like(last)
        at_or_below[order] = last - starts[rows] + 1
    # The edges are the values at within-row ranks floor(q * (n - 1)); a value is >= an edge exactly when its
    # (last) rank is >= the edge's rank, so a value's bin is the number of edge ranks <= its rank. Those numbers are
    # a table over each row's ranks laid end to end: the edges' histogram, summed cumulatively (every row has
    # n_bins - 1 edges, so row i's table is offset by i * (n_bins - 1)).
    q = torch.linspace(0, 1, n_bins - 1, device=device)
    edge_rank = torch.floor(q[None, :] * (counts[:, None] - 1).clamp_min(0)).long()  # (n_rows, n_bins - 1)
    table = torch.bincount((starts[:, None] + edge_rank).flatten(), minlength=nnz + 1).cumsum(0)
    bins = table[starts[x.rows] + at_or_below - 1] - x.rows * (n_bins - 1)
    return x.with_values(bins.clamp(1, n_bins - 1).to(x.values.dtype) / (n_bins - 1))


@_dense_in_dense_out
def encode_values(x: SparseRows, modality: str, n_bins: int | None) -> SparseRows:
    """Raw counts of one modality (non-zeros, or a dense tensor) -> the encoder's input values (zeros stay zero).

    ``'atac'``: presence (1). ``'rna'``: relative-level bins (``n_bins``), or normalised ``log1p`` values when
    ``n_bins`` is ``None``. ``'protein'``: relative-level bins, or ``log1p`` of raw counts when ``n_bins`` is ``None``.
    """
    if modality == "atac":
        return x.with_values(torch.ones_like(x.values))
    if n_bins is not None:
        return bin_relative_levels(x, n_bins)
    if modality == "rna":
        return normalize_log1p(x)
    return x.with_values(torch.log1p(x.values))
