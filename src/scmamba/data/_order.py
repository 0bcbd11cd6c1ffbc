"""Order features (genes, ATAC peaks) by genomic coordinate.

Sequence models cut each cell's profile into patches of neighbouring features. For genes and chromatin peaks,
"neighbouring" should mean "close on the genome". :func:`genomic_order` computes a :class:`GenomeOrder` once from a
feature table (``var``). Its :meth:`GenomeOrder.apply` re-applies the same permutation to any matrix with those
features: numpy, scipy sparse or torch. Protein panels keep their given order.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from .._constants import modality_kind
from ._annotation import _CHROM_COLUMNS, _START_COLUMNS, _find_column, _resolve_annotation
from ._coordinates import _match_annotation
from ._regions import _as_object, _is_missing, _parse_chrom, _split_region, _to_float

logger = logging.getLogger(__name__)

_INTERVAL_COLUMN = "interval"


@dataclass(frozen=True, eq=False)
class GenomeOrder:
    """A feature permutation in genomic order, computed once and re-applied to matching data.

    Attributes
    ----------
    order
        ``int64`` permutation of ``range(n_features)``: position ``i`` of the ordered data holds
        original feature ``order[i]``. So ``var_names[order]`` labels the columns of ``apply(X)``.
    chrom
        Object array with the normalised chromosome of each *original* feature, ``''`` when unplaced.
    start
        ``int64`` start of each *original* feature, ``-1`` when unplaced.
    n_unplaced
        Number of features without usable coordinates. They are the last ``n_unplaced`` entries of
        :attr:`order`, in their original relative order.
    source
        Where the coordinates came from: ``'annotation'``, ``'var columns'``, ``'interval column'``,
        ``'feature names'`` or ``'given order'`` (proteins, identity order).
    """

    order: np.ndarray
    chrom: np.ndarray
    start: np.ndarray
    n_unplaced: int
    source: str

    def __post_init__(self) -> None:
        order = np.asarray(self.order, dtype=np.int64)
        n = order.shape[0]
        if order.ndim != 1 or not np.array_equal(np.sort(order), np.arange(n)):
            raise ValueError("`order` must be a permutation of range(n_features).")
        chrom = np.asarray(self.chrom, dtype=object)
        start = np.asarray(self.start, dtype=np.int64)
        if chrom.shape != (n,) or start.shape != (n,):
            raise ValueError(f"`chrom` and `start` must have one entry per feature ({n}).")
        if not 0 <= int(self.n_unplaced) <= n:
            raise ValueError(f"`n_unplaced` must be between 0 and {n}, got {self.n_unplaced}.")
        object.__setattr__(self, "order", order)
        object.__setattr__(self, "chrom", chrom)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "n_unplaced", int(self.n_unplaced))

    @property
    def n_features(self) -> int:
        """Number of features the permutation applies to."""
        return int(self.order.shape[0])

    @property
    def inverse(self) -> np.ndarray:
        """Inverse permutation, such that ``apply(X)[..., inverse]`` gives back ``X``."""
        inverse = np.empty_like(self.order)
        inverse[self.order] = np.arange(self.n_features, dtype=np.int64)
        return inverse

    def apply(self, X: Any) -> Any:
        """Reorder the feature (last) axis of ``X``; ``X[:, order]`` for a cells × features matrix.

        Parameters
        ----------
        X
            A numpy array (1-D or more; the last axis holds features), a scipy sparse matrix or array
            (the format is kept: CSR stays CSR), a :class:`torch.Tensor` (``index_select`` on the last
            dimension, on the tensor's device) or a :class:`pandas.DataFrame` (columns).

        Returns
        -------
        Same type as ``X``, with features in genomic order. ``X`` itself is not modified.
        """
        n_cols = X.shape[-1] if hasattr(X, "shape") else None
        if n_cols is not None and n_cols != self.n_features:
            raise ValueError(f"X has {n_cols} features on its last axis, but this order is for {self.n_features}.")
        if sparse.issparse(X):
            fmt = X.format
            mat = X if fmt in ("csr", "csc") else X.tocsr()
            out = mat[:, self.order]
            if out.format in ("csr", "csc") and not out.has_sorted_indices:
                out.sort_indices()
            return out if out.format == fmt else out.asformat(fmt)
        if type(X).__module__.split(".")[0] == "torch":
            import torch

            return X.index_select(-1, torch.as_tensor(self.order, dtype=torch.long, device=X.device))
        if isinstance(X, pd.DataFrame):
            return X.iloc[:, self.order]
        arr = np.asarray(X)
        if arr.shape[-1] != self.n_features:
            raise ValueError(
                f"X has {arr.shape[-1]} features on its last axis, but this order is for {self.n_features}."
            )
        return arr[..., self.order]


@dataclass
class _Placement:
    rank: np.ndarray  # int64, -1 when unplaced
    chrom: np.ndarray  # object, '' when unplaced
    start: np.ndarray  # int64, -1 when unplaced
    bad_names: list[str]  # distinct chromosome names that could not be parsed
    n_bad: int  # features carrying one of them

    @property
    def n_placed(self) -> int:
        return int((self.rank >= 0).sum())


def _place(chrom_values: Any, start_values: Any) -> _Placement:
    """Normalise chromosomes and starts; a feature is placed when both are usable."""
    chroms = _as_object(chrom_values)
    starts = _to_float(start_values)
    codes, uniques = pd.factorize(chroms, use_na_sentinel=True)
    unique_rank = np.full(len(uniques) + 1, -1, dtype=np.int64)  # last slot: the NaN sentinel
    unique_name = np.full(len(uniques) + 1, "", dtype=object)
    unique_bad = np.zeros(len(uniques) + 1, dtype=bool)
    bad_names: list[str] = []
    for i, value in enumerate(uniques):
        parsed = _parse_chrom(value)
        if parsed is not None:
            unique_name[i], unique_rank[i] = parsed
        elif not _is_missing(value):
            unique_bad[i] = True
            bad_names.append(str(value))
    codes = np.where(codes < 0, len(uniques), codes)
    rank = unique_rank[codes]
    norm = unique_name[codes]
    bad = unique_bad[codes]
    ok_start = np.isfinite(starts) & (starts >= 0)
    placed = (rank >= 0) & ok_start
    rank = np.where(placed, rank, -1)
    norm = np.where(placed, norm, "").astype(object)
    start = np.where(placed, np.nan_to_num(starts, nan=-1.0), -1).astype(np.int64)
    return _Placement(rank=rank, chrom=norm, start=start, bad_names=bad_names, n_bad=int(bad.sum()))


def _place_regions(names: Any) -> _Placement:
    """Place features from ``chrom:start-end`` strings (feature names or an ``interval`` column)."""
    values = _as_object(names)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    u_chrom = np.full(len(uniques) + 1, None, dtype=object)
    u_start = np.full(len(uniques) + 1, np.nan)
    for i, value in enumerate(uniques):
        split = _split_region(value) if isinstance(value, str) else None
        if split is not None:
            u_chrom[i], u_start[i] = split[0], split[1]
    codes = np.where(codes < 0, len(uniques), codes)
    return _place(u_chrom[codes], u_start[codes])


def genomic_order(
    var: pd.DataFrame,
    *,
    modality: str = "rna",
    annotation: pd.DataFrame | str | os.PathLike | None = None,
    annotation_key: str | None = None,
) -> GenomeOrder:
    """Compute the permutation that puts features in genomic order.

    Placed features are sorted by (chromosome rank, start, original index): ``chr1 < chr2 < … < chr22
    < chrX < chrY < chrM``, ties kept in their original order. Features without usable coordinates
    ("unplaced") go after all placed ones and keep their relative order. Protein modalities keep their
    given order.

    Coordinates are taken from the first of these sources that places at least one feature:

    1. ``annotation``, if given: a DataFrame, a path to a TSV/CSV table or GTF/GFF (see
       :func:`read_annotation`) or a genome name understood by :func:`gene_positions`. Features are
       matched on ``var[annotation_key]`` (default: the index) against ``gene_name``, then against
       ``gene_id``; without ``annotation_key``, ``var['gene_id']`` against ``gene_id`` is tried last.
       The first row wins for duplicated names.
    2. ``var`` columns: a chromosome column (``chrom``, ``chromosome``, ``chr``, ``seqname``,
       ``seqnames``) and a start column (``start``, ``chromStart``, ``chrom_start``).
    3. A 10x-style ``interval`` column (``'chr1:100-200'``; ``'NA'``/missing allowed).
    4. Region-style feature names (see :func:`parse_region`).

    Parameters
    ----------
    var
        Feature table (``adata.var``); its index holds the feature names. It is not modified.
    modality
        Modality name. The usual protein names (``'protein'``, ``'prot'``, ``'adt'``, ... in any case; the
        table ``DEFAULT_MOD_NAMES`` that ``SCMAMBA.setup_mudata`` also reads) keep the given order: a panel
        has no genomic neighbourhood. Any other modality is ordered genomically.
    annotation
        Optional gene coordinates (see above).
    annotation_key
        Column of ``var`` to match against the annotation; default the index.

    Returns
    -------
    GenomeOrder
        The permutation; ``GenomeOrder.apply(X)`` reorders matrices with these features.

    Raises
    ------
    ValueError
        If no source places any feature.

    Warns
    -----
    UserWarning
        Once per call if some chromosome names could not be parsed (scaffolds such as
        ``'GL456233.1'``); those features are unplaced.
    """
    if not isinstance(var, pd.DataFrame):
        raise TypeError(f"var must be a pandas DataFrame (adata.var), not {type(var).__name__}.")
    n = var.shape[0]
    if modality_kind(modality) == "protein":
        return _given_order(n)
    placement, source = _first_placement(var.copy(), annotation, annotation_key)
    if placement.bad_names:
        examples = ", ".join(repr(name) for name in placement.bad_names[:5])
        warnings.warn(
            f"{placement.n_bad} of {n} features have a chromosome name that could not be parsed "
            f"({len(placement.bad_names)} distinct, e.g. {examples}); they are left unplaced and put after the "
            "placed features.",
            UserWarning,
            stacklevel=2,
        )
    return _sorted_order(placement, source)


def _given_order(n: int) -> GenomeOrder:
    """The identity order of a modality without genomic coordinates (proteins)."""
    return GenomeOrder(
        order=np.arange(n, dtype=np.int64),
        chrom=np.full(n, "", dtype=object),
        start=np.full(n, -1, dtype=np.int64),
        n_unplaced=0,
        source="given order",
    )


def _candidate_placements(
    var: pd.DataFrame, annotation: pd.DataFrame | str | os.PathLike | None, annotation_key: str | None
) -> Iterator[tuple[str, str, _Placement]]:
    """``(source, what was tried, placement)`` for each coordinate source of ``var``, in order of preference.

    A generator, so that a source is only read when every source before it placed no feature.
    """
    n = var.shape[0]
    if annotation is not None:
        ann, ann_label = _resolve_annotation(annotation)
        chrom, start, _, how = _match_annotation(var, ann, annotation_key)
        candidate = _place(chrom, start)
        if candidate.n_placed:
            logger.info("genomic_order: matched %d of %d features by %s.", candidate.n_placed, n, how)
        else:
            logger.warning("genomic_order: the annotation (%s) placed no feature; trying other sources.", ann_label)
        yield "annotation", f"annotation {ann_label} ({how})", candidate
    chrom_col = _find_column(list(var.columns), _CHROM_COLUMNS)
    start_col = _find_column(list(var.columns), _START_COLUMNS)
    if chrom_col is not None and start_col is not None:
        yield "var columns", f"var columns {chrom_col!r}/{start_col!r}", _place(var[chrom_col], var[start_col])
    if _INTERVAL_COLUMN in var.columns:
        yield "interval column", "'interval' column", _place_regions(var[_INTERVAL_COLUMN])
    yield "feature names", "feature names", _place_regions(var.index)


def _first_placement(
    var: pd.DataFrame, annotation: pd.DataFrame | str | os.PathLike | None, annotation_key: str | None
) -> tuple[_Placement, str]:
    """The placement by the first source that places at least one feature, and the source's name."""
    tried: list[str] = []
    for source, what, candidate in _candidate_placements(var, annotation, annotation_key):
        tried.append(what)
        if candidate.n_placed:
            return candidate, source
    raise ValueError(
        f"Could not find genomic coordinates for any of the {var.shape[0]} features (tried: {', '.join(tried)}). "
        "Supply them in one of these ways: var columns 'chrom' and 'start'; a 10x-style 'interval' column "
        "('chr1:100-200'); region-style feature names ('chr1:100-200', 'chr1-100-200' or 'chr1_100_200'); "
        "`annotation=` with a gene table (gene_name/gene_id, chrom, start) or a GTF; or call "
        "`scmamba.data.add_genomic_coordinates(adata, 'GRCh38')` first. "
        "For proteins use modality='protein' to keep the given order."
    )


def _sorted_order(placement: _Placement, source: str) -> GenomeOrder:
    """Placed features by (chromosome rank, start, original index), then the unplaced ones in their given order."""
    n = placement.rank.shape[0]
    placed_idx = np.flatnonzero(placement.rank >= 0)
    unplaced_idx = np.flatnonzero(placement.rank < 0)
    sort = np.lexsort((placed_idx, placement.start[placed_idx], placement.rank[placed_idx]))
    order = np.concatenate([placed_idx[sort], unplaced_idx]).astype(np.int64)
    logger.info("genomic_order: %d of %d features unplaced (coordinates from %s).", unplaced_idx.size, n, source)
    return GenomeOrder(
        order=order,
        chrom=placement.chrom,
        start=placement.start,
        n_unplaced=int(unplaced_idx.size),
        source=source,
    )
