"""Match features to an annotation table by symbol or Ensembl ID, and write gene coordinates into ``var``."""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ._annotation import _resolve_annotation
from ._regions import _as_object, _is_missing, _to_float, chromosome_rank

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

_ENSEMBL_VERSION_RE = re.compile(r"^(ENS[A-Z]*G\d+)\.\d+$")


def _strip_version(values: np.ndarray) -> np.ndarray:
    return np.array(
        [_ENSEMBL_VERSION_RE.sub(r"\1", v) if isinstance(v, str) else v for v in values],
        dtype=object,
    )


def _lookup(keys: np.ndarray, ann: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Chromosome, start and end of ``ann`` rows whose ``column`` equals each key (first row wins)."""
    n = keys.shape[0]
    out_chrom = np.full(n, None, dtype=object)
    out_start = np.full(n, np.nan)
    out_end = np.full(n, np.nan)
    if column not in ann.columns:
        return out_chrom, out_start, out_end, 0
    table = ann[[column, "chrom", "start", "end"]].copy()
    table[column] = table[column].astype(object)
    table = table[~table[column].map(_is_missing)]
    if column == "gene_id":
        table[column] = _strip_version(table[column].to_numpy())
        keys = _strip_version(keys)
    table = table.drop_duplicates(subset=column, keep="first").set_index(column)
    pos = table.index.get_indexer(pd.Index(keys, dtype=object))
    hit = pos >= 0
    if hit.any():
        rows = pos[hit]
        out_chrom[hit] = table["chrom"].astype(object).to_numpy()[rows]
        out_start[hit] = _to_float(table["start"])[rows]
        out_end[hit] = _to_float(table["end"])[rows]
    return out_chrom, out_start, out_end, int(hit.sum())


def _match_annotation(
    var: pd.DataFrame, ann: pd.DataFrame, key: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Match ``var`` rows to annotation rows; returns chrom, start, end per feature and a description."""
    if key is not None:
        if key not in var.columns:
            raise KeyError(f"annotation_key {key!r} is not a column of var; columns: {list(var.columns)}.")
        keys, label = _as_object(var[key]), f"var[{key!r}]"
    else:
        keys, label = _as_object(var.index), "var_names"
    attempts = [(keys, "gene_name", label), (keys, "gene_id", label)]
    if key is None and "gene_id" in var.columns:
        attempts.append((_as_object(var["gene_id"]), "gene_id", "var['gene_id']"))
    for attempt_keys, column, attempt_label in attempts:
        chrom, start, end, n_hit = _lookup(attempt_keys, ann, column)
        if n_hit:
            return chrom, start, end, f"{attempt_label} against annotation {column}"
    n = var.shape[0]
    return np.full(n, None, dtype=object), np.full(n, np.nan), np.full(n, np.nan), "no match"


def add_genomic_coordinates(
    adata: AnnData,
    annotation: pd.DataFrame | str | os.PathLike = "GRCh38",
    *,
    key: str | None = None,
    overwrite: bool = False,
    copy: bool = False,
) -> AnnData | None:
    """Write gene coordinates into ``adata.var['chrom']``, ``['start']`` and ``['end']``.

    Genes are matched by symbol (``adata.var_names`` or ``adata.var[key]``) against the annotation's
    ``gene_name``; if no symbol matches, the same keys are tried against ``gene_id``, and (without
    ``key``) ``var['gene_id']`` against ``gene_id``. The first annotation row wins for duplicated names.

    Parameters
    ----------
    adata
        Annotated data whose ``var`` describes genes.
    annotation
        A genome name understood by :func:`gene_positions` (``'GRCh38'``, ``'hg19'``, ``'mm10'``, …), a
        DataFrame, or a path to a table or GTF (see :func:`read_annotation`).
    key
        Column of ``adata.var`` with gene symbols (or IDs); default the index.
    overwrite
        Replace existing coordinates of matched genes. By default only genes whose chromosome or start
        is missing are filled.
    copy
        Return a modified copy instead of modifying ``adata`` in place.

    Returns
    -------
    anndata.AnnData or None
        The copy if ``copy=True``. Otherwise ``adata.var`` is modified in place and ``None`` is returned.
        ``chrom`` is stored as a categorical in genomic order, ``start``/``end`` as nullable ``Int64``.
    """
    if copy:
        adata = adata.copy()
    var = adata.var
    ann, ann_label = _resolve_annotation(annotation)
    chrom_new, start_new, end_new, how = _match_annotation(var, ann, key)
    matched = np.array([c is not None for c in chrom_new]) & np.isfinite(start_new)

    n = var.shape[0]
    chrom_old = _as_object(var["chrom"]) if "chrom" in var.columns else np.full(n, None, dtype=object)
    start_old = _to_float(var["start"]) if "start" in var.columns else np.full(n, np.nan)
    end_old = _to_float(var["end"]) if "end" in var.columns else np.full(n, np.nan)
    missing = np.array([_is_missing(c) for c in chrom_old]) | ~np.isfinite(start_old)
    fill = matched & (missing | overwrite)

    chrom_out = np.array([None if _is_missing(c) else str(c) for c in chrom_old], dtype=object)
    chrom_out[fill] = chrom_new[fill]
    start_out = np.where(fill, start_new, start_old)
    end_out = np.where(fill, end_new, end_old)

    categories = sorted({c for c in chrom_out if c is not None}, key=lambda c: (chromosome_rank(c) or 10**9, c))
    adata.var["chrom"] = pd.Categorical(chrom_out, categories=categories)
    adata.var["start"] = pd.array(np.round(start_out), dtype="Int64")
    adata.var["end"] = pd.array(np.round(end_out), dtype="Int64")
    logger.info(
        "add_genomic_coordinates: %d of %d genes matched in %s (%s); filled %d, %d still without coordinates.",
        int(matched.sum()),
        n,
        ann_label,
        how,
        int(fill.sum()),
        int((~np.isfinite(start_out) | pd.isna(chrom_out)).sum()),
    )
    return adata if copy else None
