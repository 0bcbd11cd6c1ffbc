"""Chromosome names and region strings: natural chromosome ranks, ``chr1:100-200`` parsing, missing values.

These are the building blocks of :mod:`._order` (placing features on the genome) and :mod:`._annotation` (gene
tables): every chromosome spelling (``1``, ``chr1``, ``Chr1``, ``MT``) is reduced to one UCSC-style name and a rank.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

# Ranks: numbered chromosomes keep their number; the sex chromosomes and the mitochondrion go after any
# number a real genome uses.
_RANK_X = 10_000
_RANK_Y = 10_001
_RANK_M = 10_002
_SPECIAL = {"x": ("chrX", _RANK_X), "y": ("chrY", _RANK_Y), "m": ("chrM", _RANK_M), "mt": ("chrM", _RANK_M)}
_MISSING_STRINGS = frozenset({"", "na", "nan", "none", "null", "<na>", "."})

# chrom, separator, start, separator, end. The chromosome part is lazy so that contig names that contain
# the separator (``chr1_KI270706v1_random_100_200``) still split at the last two numbers.
_REGION_RE = re.compile(r"^\s*(?P<chrom>.+?)[:_-](?P<start>\d+)[_-](?P<end>\d+)\s*$")
_CHR_PREFIX_RE = re.compile(r"^chr", re.IGNORECASE)


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().lower() in _MISSING_STRINGS
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _parse_chrom(chrom: Any) -> tuple[str, int] | None:
    """Return ``(UCSC name, rank)`` for a primary chromosome, else ``None``."""
    if chrom is None or isinstance(chrom, bool | np.bool_):
        return None
    if isinstance(chrom, int | np.integer):
        number = int(chrom)
        return (f"chr{number}", number) if number > 0 else None
    if isinstance(chrom, float | np.floating):
        if not np.isfinite(chrom) or not float(chrom).is_integer() or chrom <= 0:
            return None
        return f"chr{int(chrom)}", int(chrom)
    if not isinstance(chrom, str):
        return None
    body = _CHR_PREFIX_RE.sub("", chrom.strip())
    if body.isascii() and body.isdigit():
        number = int(body)
        return (f"chr{number}", number) if number > 0 else None
    return _SPECIAL.get(body.lower())


def chromosome_rank(chrom: Any) -> int | None:
    """Rank of a chromosome in natural genome order.

    Numbered chromosomes sort by number (``chr2`` before ``chr10``), followed by ``X``, ``Y`` and
    the mitochondrion (``M``/``MT``). Any number of autosomes is accepted (human 1–22, mouse 1–19).

    Parameters
    ----------
    chrom
        Chromosome name, with or without a ``chr`` prefix in any case (``'chr1'``, ``'1'``, ``'Chr1'``,
        ``'chrX'``, ``'X'``, ``'chrM'``, ``'MT'``, ``'chrMT'``), or an integer.

    Returns
    -------
    int or None
        A sortable rank, or ``None`` for names that are not primary chromosomes (scaffolds such as
        ``'GL456233.1'``, ``'chrUn_…'``, ``'chr1_KI270706v1_random'``) and for missing values
        (``''``, ``NaN``, ``None``).

    Examples
    --------
    >>> sorted(["chrX", "chr10", "chrM", "chr2"], key=chromosome_rank)
    ['chr2', 'chr10', 'chrX', 'chrM']
    """
    parsed = _parse_chrom(chrom)
    return None if parsed is None else parsed[1]


def _normalise_chrom(chrom: Any) -> str | None:
    """UCSC-style name of a primary chromosome (``'MT'`` → ``'chrM'``), else ``None``."""
    parsed = _parse_chrom(chrom)
    return None if parsed is None else parsed[0]


def _split_region(name: Any) -> tuple[str, int, int] | None:
    """Split ``chrom<sep>start<sep>end`` without judging the chromosome name."""
    if not isinstance(name, str):
        return None
    match = _REGION_RE.match(name)
    if match is None:
        return None
    start, end = int(match["start"]), int(match["end"])
    if end < start:
        return None
    return match["chrom"].strip(), start, end


def parse_region(name: str) -> tuple[str, int, int] | None:
    """Parse a region-style feature name.

    Parameters
    ----------
    name
        A name such as ``'chr1:100-200'``, ``'chr1-100-200'`` or ``'chr1_100_200'``. The ``chr`` prefix
        is optional (``'1:100-200'``).

    Returns
    -------
    tuple of (str, int, int) or None
        ``(chrom, start, end)``. A primary chromosome is returned in UCSC style (``'chr1'``, ``'chrX'``;
        ``'MT'`` becomes ``'chrM'``). Other contig names (``'GL456233.1'``) are returned unchanged; for
        them :func:`chromosome_rank` is ``None``. ``None`` is returned when the name does not have the
        ``chrom, start, end`` form or when ``end < start``.

    Examples
    --------
    >>> parse_region("1:100-200")
    ('chr1', 100, 200)
    >>> parse_region("MT_5_10")
    ('chrM', 5, 10)
    >>> parse_region("Gapdh") is None
    True
    """
    split = _split_region(name)
    if split is None:
        return None
    chrom, start, end = split
    return _normalise_chrom(chrom) or chrom, start, end


def _as_object(values: Any) -> np.ndarray:
    if isinstance(values, pd.Series | pd.Index):
        return values.astype(object).to_numpy()
    return np.asarray(values, dtype=object)


def _to_float(values: Any) -> np.ndarray:
    """Numeric starts as float64 with NaN for anything missing or non-numeric."""
    series = pd.Series(_as_object(values))
    return pd.to_numeric(series, errors="coerce").astype("float64").to_numpy()
