"""Count matrices: read in row blocks in one canonical form (in memory or backed), and their values checked.

Every reader of counts (set-up checks, training minibatches, embedding, query alignment) gets canonical float32 CSR
rows from here, whatever the storage; :class:`CountChecker` checks the values block by block.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


#: Values read per block when a matrix is checked or aligned in row blocks (bounds memory on backed files).
BLOCK_VALUES = 2_000_000


def _is_sparse(X) -> bool:
    return sparse.issparse(X)


def check_count_dtype(dtype, name: str = "The count matrix") -> None:
    """Counts are integers, floats or booleans; anything else is an error that says how to convert."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_ or np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating):
        return
    raise ValueError(
        f"{name} holds {dtype} values; SCMAMBA reads integer or floating-point counts. Convert them first, e.g. "
        "adata.X = adata.X.astype(np.float32) (adata.layers[...] likewise)."
    )


def canonical_counts(block, *, name: str = "The count matrix") -> sparse.csr_matrix:
    """Rows of a count matrix as the canonical form the model reads: float32 CSR, sorted indices, no duplicates.

    Every storage anndata allows gives the same matrix: dense or sparse (CSR, CSC, COO; scipy sparse matrices or
    arrays), any integer, float (float16 included) or boolean dtype, unsorted indices or duplicate entries (summed,
    as scipy's ``sum_duplicates``). ``block`` itself is never modified: whatever is changed is a copy.
    """
    if _is_sparse(block):
        check_count_dtype(block.dtype, name)
        out = sparse.csr_matrix(block)  # shares the arrays of a CSR input
        if out.dtype != np.float32:
            out = out.astype(np.float32)
        if not out.has_canonical_format:
            out = out.copy()  # sum_duplicates works in place
            out.sum_duplicates()
        return out
    block = np.asarray(block)
    check_count_dtype(block.dtype, name)
    return sparse.csr_matrix(block.astype(np.float32, copy=False).reshape(block.shape[0], -1))


def row_readable(X):
    """``X`` in a form whose rows are read cheaply.

    In-memory sparse matrices in other formats (CSC, COO) become CSR once (a copy; the given matrix is left as it
    is); CSR, dense and backed matrices are returned as they are.
    """
    if _is_sparse(X) and X.format != "csr":
        logger.info("Converting a %s matrix to CSR (a copy in memory) to read its rows.", X.format.upper())
        return sparse.csr_matrix(X)
    return X


def read_rows(X, rows: np.ndarray | slice, *, name: str = "The count matrix") -> sparse.csr_matrix:
    """Rows of a matrix (scipy sparse, numpy, or a backed HDF5 matrix), in the given order.

    Returned as canonical float32 CSR (:func:`canonical_counts`).
    """
    if isinstance(rows, slice) or _is_sparse(X) or isinstance(X, np.ndarray):
        out = X[rows]
    else:  # backed: h5py-style datasets need increasing, unique indices
        rows = np.asarray(rows)
        if len(rows) == 0:
            return sparse.csr_matrix((0, X.shape[1]), dtype=np.float32)
        uniq, inverse = np.unique(rows, return_inverse=True)
        out = X[uniq]
        out = out[inverse] if not np.array_equal(uniq, rows) else out
    return canonical_counts(out, name=name)


def iter_row_blocks(
    X, rows: np.ndarray | None = None, max_values: int = BLOCK_VALUES, *, name: str = "The count matrix"
) -> Iterator[tuple[int, sparse.csr_matrix]]:
    """``(offset, block)`` over the rows of ``X`` (all rows, or ``rows`` in that order) in blocks of bounded size.

    Blocks are canonical float32 CSR (:func:`canonical_counts`), whatever the storage of ``X``.
    """
    X = row_readable(X)
    n_rows = X.shape[0] if rows is None else len(rows)
    if rows is None and _is_sparse(X) and X.dtype == np.float32 and X.has_canonical_format:
        yield 0, sparse.csr_matrix(X)  # in memory and canonical already: one vectorised pass, no copy
        return
    if _is_sparse(X):  # in memory: blocks of about max_values stored values
        per_block = max(1, max_values * X.shape[0] // max(X.nnz, 1))
    else:
        per_block = max(1, max_values // max(X.shape[1], 1))
    for start in range(0, n_rows, per_block):
        stop = min(start + per_block, n_rows)
        yield start, read_rows(X, slice(start, stop) if rows is None else rows[start:stop], name=name)


def row_indices(indices, n_obs: int, *, what: str = "the AnnData") -> np.ndarray:
    """Integer rows from ``indices``: integer positions, or a boolean mask with one value per row of ``what``."""
    rows = np.asarray(indices)
    if rows.dtype == np.bool_:
        if rows.shape != (n_obs,):
            raise ValueError(
                f"indices is a boolean mask of {rows.size:,} values, but {what} has {n_obs:,} rows; give one value "
                "per row, or integer positions."
            )
        return np.flatnonzero(rows)
    if rows.size == 0:
        return rows.astype(np.int64).ravel()
    if not np.issubdtype(rows.dtype, np.integer) or rows.ndim != 1:
        raise TypeError(
            f"indices must be integer row positions or a boolean mask over the rows of {what}, got "
            f"{rows.dtype} values of shape {rows.shape}."
        )
    if rows.min() < -n_obs or rows.max() >= n_obs:
        raise IndexError(f"indices hold positions outside the {n_obs:,} rows of {what}.")
    return np.where(rows < 0, rows + n_obs, rows)


class CountChecker:
    """Checks row blocks of a count matrix; :meth:`finish` reports what needs all rows (cells without counts)."""

    def __init__(self, *, name: str, modality: str, n_rows: int, empty: str | None = None):
        self.name, self.modality = name, modality
        #: What cells without counts lack and how to remove them (default: the advice for a MuData's modality).
        self.empty = empty
        self.row_sums = np.zeros(n_rows)
        self.non_integer = False

    def update(self, block, offset: int) -> None:
        """Raise on non-numeric, NaN/inf and negative values of a block of rows starting at ``offset``."""
        block = canonical_counts(block, name=self.name)
        values = block.data
        finite = np.isfinite(values)
        if not finite.all():
            bad = int(finite.size - finite.sum())
            raise ValueError(f"{self.name} contains {bad} NaN or infinite values; replace or remove them first.")
        if not self.non_integer:
            sample = values[:BLOCK_VALUES]
            self.non_integer = bool(np.any(np.abs(sample - np.round(sample)) > 1e-6))
        if values.size and values.min() < 0:
            raise ValueError(
                f"{self.name} contains negative values (minimum {values.min():.3g}); SCMAMBA expects raw counts. "
                "Pass the layer with raw counts (e.g. rna_layer='counts')."
            )
        sums = np.asarray(block.sum(axis=1)).ravel()
        self.row_sums[offset : offset + len(sums)] = sums

    def finish(self, stacklevel: int = 3) -> None:
        """Raise on cells without counts; warn once on non-integer RNA/protein values."""
        empty = np.flatnonzero(self.row_sums == 0)
        if empty.size:
            advice = self.empty or (
                "no counts at all; an empty profile cannot be embedded. Remove them first, e.g. for a MuData "
                "modality 'rna': empty = mdata['rna'].obs_names[np.asarray(mdata['rna'].X.sum(1)).ravel() == 0]; "
                "mdata = mdata[~mdata.obs_names.isin(empty)].copy() (use the layer holding the counts if not X)."
            )
            raise ValueError(f"{self.name}: {empty.size} cells have {advice} (e.g. row {empty[:3].tolist()})")
        if self.non_integer and self.modality in ("rna", "protein"):
            warnings.warn(
                f"{self.name} holds non-integer values: it looks normalised. SCMAMBA bins values within each cell, "
                "which is robust to this, but raw counts are expected; pass the raw-count layer if you have one.",
                UserWarning,
                stacklevel=stacklevel,
            )


def check_counts(X, *, name: str, modality: str, mod: str | None = None, layer: str | None = None) -> None:
    """Raise on NaN/inf, negative values and cells without counts; warn on non-integer RNA/protein values.

    Only stored values are inspected for sparse matrices; dense and backed matrices are read in row blocks.
    ``mod`` and ``layer``: where ``X`` is in the MuData, for the advice on cells without counts.
    """
    empty = None
    if mod is not None:
        counts = f"mdata[{mod!r}]." + ("X" if layer is None else f"layers[{layer!r}]")
        empty = (
            "no counts at all; an empty profile cannot be embedded. Remove them first: "
            f"empty = mdata[{mod!r}].obs_names[np.asarray({counts}.sum(1)).ravel() == 0]; "
            "mdata = mdata[~mdata.obs_names.isin(empty)].copy()"
        )
    checker = CountChecker(name=name, modality=modality, n_rows=X.shape[0], empty=empty)
    for offset, block in iter_row_blocks(X, name=name):
        checker.update(block, offset)
    checker.finish(stacklevel=4)


def expand_rows(block, present: np.ndarray):
    """Rows of the CSR ``block`` at the ``present`` positions of a ``len(present)``-row CSR, empty rows elsewhere.

    ``block`` has ``present.sum()`` rows, in order; the empty rows add no stored values.
    """
    n = len(present)
    counts = np.zeros(n, dtype=block.indptr.dtype)
    counts[present] = np.diff(block.indptr)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(block.indptr.dtype)
    return sparse.csr_matrix((block.data, block.indices, indptr), shape=(n, block.shape[1]))
