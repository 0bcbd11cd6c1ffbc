"""Order features (genes, ATAC peaks) by genomic coordinate.

Sequence models cut each cell's profile into patches of neighbouring features. For genes and
chromatin peaks, "neighbouring" should mean "close on the genome". :func:`genomic_order` computes a
:class:`GenomeOrder` once from a feature table (``var``). Its :meth:`GenomeOrder.apply` re-applies the
same permutation to any matrix with those features: numpy, scipy sparse or torch. Protein panels keep
their given order.

Coordinates come from, in this order of preference: an annotation table or GTF given by the user,
coordinate columns of ``var``, a 10x-style ``interval`` column, or region-style feature names
(``chr1:100-200``). :func:`gene_positions` loads the gene tables shipped with the package (GRCh38,
GRCh37, GRCm38). :func:`add_genomic_coordinates` writes coordinates into ``adata.var``.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

__all__ = [
    "GenomeOrder",
    "add_genomic_coordinates",
    "chromosome_rank",
    "gene_positions",
    "genomic_order",
    "parse_region",
    "read_annotation",
]

# Ranks: numbered chromosomes keep their number; the sex chromosomes and the mitochondrion go after any
# number a real genome uses.
_RANK_X = 10_000
_RANK_Y = 10_001
_RANK_M = 10_002
_SPECIAL = {"x": ("chrX", _RANK_X), "y": ("chrY", _RANK_Y), "m": ("chrM", _RANK_M), "mt": ("chrM", _RANK_M)}
_MISSING_STRINGS = frozenset({"", "na", "nan", "none", "null", "<na>", "."})

_PROTEIN_MODALITIES = frozenset({"protein", "proteins", "prot", "adt", "antibody capture"})

_CHROM_COLUMNS = ("chrom", "chromosome", "chr", "seqname", "seqnames")
_START_COLUMNS = ("start", "chromStart", "chrom_start")
_INTERVAL_COLUMN = "interval"

# Extra spellings accepted in annotation tables (compared case-insensitively).
_ANN_ALIASES: dict[str, tuple[str, ...]] = {
    "gene_name": ("gene_name", "symbol", "gene_symbol", "hgnc_symbol", "mgi_symbol", "external_gene_name", "name"),
    "gene_id": ("gene_id", "ensembl_gene_id", "ensembl_id", "ensembl", "id"),
    "chrom": (*_CHROM_COLUMNS, "chromosome_name"),
    "start": (*_START_COLUMNS, "start_position", "gene_start"),
    "end": ("end", "chromEnd", "chrom_end", "end_position", "gene_end"),
}

_GENOMES: dict[str, str] = {
    "grch38": "GRCh38",
    "hg38": "GRCh38",
    "grch37": "GRCh37",
    "hg19": "GRCh37",
    "grcm38": "GRCm38",
    "mm10": "GRCm38",
}

# chrom, separator, start, separator, end. The chromosome part is lazy so that contig names that contain
# the separator (``chr1_KI270706v1_random_100_200``) still split at the last two numbers.
_REGION_RE = re.compile(r"^\s*(?P<chrom>.+?)[:_-](?P<start>\d+)[_-](?P<end>\d+)\s*$")
_CHR_PREFIX_RE = re.compile(r"^chr", re.IGNORECASE)
_ENSEMBL_VERSION_RE = re.compile(r"^(ENS[A-Z]*G\d+)\.\d+$")


# --------------------------------------------------------------------------------------------------
# chromosome names and regions
# --------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------
# the permutation
# --------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------
# placing features
# --------------------------------------------------------------------------------------------------
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


def _as_object(values: Any) -> np.ndarray:
    if isinstance(values, pd.Series | pd.Index):
        return values.astype(object).to_numpy()
    return np.asarray(values, dtype=object)


def _to_float(values: Any) -> np.ndarray:
    """Numeric starts as float64 with NaN for anything missing or non-numeric."""
    series = pd.Series(_as_object(values))
    return pd.to_numeric(series, errors="coerce").astype("float64").to_numpy()


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


def _find_column(columns: Sequence[Any], candidates: Sequence[str]) -> Any | None:
    """First column named like one of ``candidates`` (exact match first, then case-insensitive)."""
    for cand in candidates:
        if cand in columns:
            return cand
    lower = {str(c).lower(): c for c in columns}
    for cand in candidates:
        if cand.lower() in lower:
            return lower[cand.lower()]
    return None


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


# --------------------------------------------------------------------------------------------------
# annotation tables
# --------------------------------------------------------------------------------------------------
def _open_text(path: Path):
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def _is_gtf(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".gtf", ".gff", ".gff3")):
        return True
    if name.endswith((".tsv", ".csv", ".txt", ".tab")):
        return False
    with _open_text(path) as handle:
        for line in handle:
            if line.startswith("#") or not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            return len(fields) == 9 and fields[3].isdigit() and fields[4].isdigit()
    return False


def _read_gtf(path: Path) -> pd.DataFrame:
    columns = ["seqname", "source", "feature", "start", "end", "score", "strand", "frame", "attribute"]
    chunks = []
    reader = pd.read_csv(
        path,
        sep="\t",
        comment="#",
        header=None,
        names=columns,
        usecols=["seqname", "feature", "start", "end", "attribute"],
        dtype={"seqname": str, "feature": str, "attribute": str},
        chunksize=500_000,
    )
    for chunk in reader:
        chunks.append(chunk)
    if not chunks:
        raise ValueError(f"No records found in GTF/GFF file {path}.")
    gtf = pd.concat(chunks, ignore_index=True)
    gene_rows = gtf["feature"].isin(["gene", "ncRNA_gene", "pseudogene"])
    attr = gtf["attribute"].fillna("")
    gene_id = attr.str.extract(r'gene_id[ =]"?([^";]+)"?', expand=False)
    gene_id = gene_id.fillna(attr.str.extract(r"(?:^|;)\s*ID=(?:gene:)?([^;]+)", expand=False))
    gene_name = attr.str.extract(r'gene_name[ =]"?([^";]+)"?', expand=False)
    gene_name = gene_name.fillna(attr.str.extract(r"(?:^|;)\s*Name=([^;]+)", expand=False))
    table = pd.DataFrame(
        {
            "gene_name": gene_name.fillna(gene_id),
            "gene_id": gene_id,
            "chrom": gtf["seqname"],
            "start": pd.to_numeric(gtf["start"], errors="coerce"),
            "end": pd.to_numeric(gtf["end"], errors="coerce"),
        }
    )
    if gene_rows.any():
        table = table[gene_rows.to_numpy()]
    else:  # no gene records (e.g. transcripts/exons only): span of each gene's records
        table = table.dropna(subset=["gene_id"])
        table = table.groupby("gene_id", sort=False, as_index=False).agg(
            gene_name=("gene_name", "first"), chrom=("chrom", "first"), start=("start", "min"), end=("end", "max")
        )
    return table.reset_index(drop=True)


def _standardise_table(table: pd.DataFrame, what: str) -> pd.DataFrame:
    """Rename recognised columns to gene_name, gene_id, chrom, start, end; normalise chromosomes."""
    out = pd.DataFrame(index=range(table.shape[0]))
    for target, aliases in _ANN_ALIASES.items():
        column = _find_column(list(table.columns), aliases)
        out[target] = table[column].to_numpy() if column is not None else np.nan
    if out["chrom"].isna().all() or out["start"].isna().all():
        raise ValueError(f"{what} needs 'chrom' and 'start' columns; found columns {list(table.columns)}.")
    if out["gene_name"].isna().all() and out["gene_id"].isna().all():
        raise ValueError(f"{what} needs a 'gene_name' or 'gene_id' column; found columns {list(table.columns)}.")
    chrom = out["chrom"].astype(object).to_numpy()
    out["chrom"] = [_normalise_chrom(c) or (None if _is_missing(c) else str(c)) for c in chrom]
    out["start"] = pd.array(np.round(_to_float(out["start"])), dtype="Int64")
    out["end"] = pd.array(np.round(_to_float(out["end"])), dtype="Int64")
    for column in ("gene_name", "gene_id"):
        out[column] = [None if _is_missing(v) else str(v) for v in out[column].astype(object).to_numpy()]
    return out


def read_annotation(path: str | os.PathLike) -> pd.DataFrame:
    """Read a gene annotation table or GTF/GFF file.

    Parameters
    ----------
    path
        A tab- or comma-separated table with a header (columns ``gene_name`` and/or ``gene_id``,
        ``chrom``, ``start`` and optionally ``end``; common aliases such as ``chromosome``, ``seqname``,
        ``symbol`` or ``start_position`` are recognised), or a GTF/GFF3 file. ``.gz`` files are read
        directly. From a GTF, ``gene`` records are used (``gene_name`` from the attributes, falling back
        to ``gene_id``); a GTF without gene records gives the span of each gene's records.

    Returns
    -------
    pandas.DataFrame
        Columns ``gene_name``, ``gene_id``, ``chrom``, ``start``, ``end`` (nullable ``Int64``), one row
        per record, in file order. Primary chromosomes are renamed to UCSC style (``1`` → ``chr1``,
        ``MT`` → ``chrM``); other contig names are kept.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Annotation file not found: {path}")
    if _is_gtf(path):
        table = _read_gtf(path)
    else:
        with _open_text(path) as handle:
            header = handle.readline()
        sep = "\t" if "\t" in header else ","
        table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=True)
    return _standardise_table(table, f"Annotation file {path}")


@lru_cache(maxsize=4)
def _load_gene_positions(name: str) -> pd.DataFrame:
    resource = files("scmamba.data") / "gene_positions" / f"gene_positions_{name}.tsv.gz"
    with resource.open("rb") as raw, gzip.open(raw, "rt") as handle:
        table = pd.read_csv(
            handle,
            sep="\t",
            dtype={
                "gene_id": str,
                "gene_name": str,
                "chrom": str,
                "strand": str,
                "gene_biotype": str,
                "entrez_id": str,
            },
            keep_default_na=False,
            na_values={"start": [""], "end": [""]},
        )
    table["start"] = table["start"].astype("int64")
    table["end"] = table["end"].astype("int64")
    return table


def gene_positions(genome: str = "GRCh38") -> pd.DataFrame:
    """Gene coordinates shipped with scmamba.

    The tables come from the annotables R package (Ensembl BioMart) and hold genes on the primary
    chromosomes only; see ``scmamba/data/gene_positions/README.md``.

    Parameters
    ----------
    genome
        ``'GRCh38'``/``'hg38'`` (Ensembl 109), ``'GRCh37'``/``'hg19'`` (Ensembl GRCh37 archive) or
        ``'GRCm38'``/``'mm10'`` (Ensembl), case-insensitive.

    Returns
    -------
    pandas.DataFrame
        Columns ``gene_id``, ``gene_name``, ``chrom`` (``chr1``…, ``chrX``, ``chrY``, ``chrM``), ``start``,
        ``end`` (1-based, inclusive, ``int64``), ``strand``, ``gene_biotype``, ``entrez_id``. Missing text is
        ``''``. ``gene_name`` can be duplicated; a join by symbol should keep the first row. A fresh
        copy is returned on every call.
    """
    if not isinstance(genome, str) or genome.strip().lower() not in _GENOMES:
        choices = ", ".join(repr(g) for g in ("GRCh38", "hg38", "GRCh37", "hg19", "GRCm38", "mm10"))
        raise ValueError(f"Unknown genome {genome!r}; choose one of {choices} (case-insensitive).")
    return _load_gene_positions(_GENOMES[genome.strip().lower()]).copy()


def _resolve_annotation(annotation: pd.DataFrame | str | os.PathLike) -> tuple[pd.DataFrame, str]:
    """Standardised annotation table and a short description of where it came from."""
    if isinstance(annotation, pd.DataFrame):
        return _standardise_table(annotation, "The annotation DataFrame"), "DataFrame"
    if isinstance(annotation, str | os.PathLike):
        path = Path(annotation)
        if path.exists():
            return read_annotation(path), str(path)
        if isinstance(annotation, str) and annotation.strip().lower() in _GENOMES:
            return _standardise_table(gene_positions(annotation), "gene_positions"), f"genome {annotation}"
        raise FileNotFoundError(
            f"Annotation {annotation!r} is neither an existing file nor a known genome "
            f"({', '.join(sorted(set(_GENOMES.values())))} or hg38, hg19, mm10)."
        )
    raise TypeError(f"annotation must be a DataFrame, a path or a genome name, not {type(annotation).__name__}.")


# --------------------------------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------------------------------
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
        Modality name. ``'protein'``, ``'prot'`` and ``'adt'`` (any case) keep the given order; any
        other modality is ordered genomically.
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
    if str(modality).strip().lower() in _PROTEIN_MODALITIES:
        return GenomeOrder(
            order=np.arange(n, dtype=np.int64),
            chrom=np.full(n, "", dtype=object),
            start=np.full(n, -1, dtype=np.int64),
            n_unplaced=0,
            source="given order",
        )
    var = var.copy()
    tried: list[str] = []
    placement: _Placement | None = None
    source = ""

    if annotation is not None:
        ann, ann_label = _resolve_annotation(annotation)
        chrom, start, _, how = _match_annotation(var, ann, annotation_key)
        candidate = _place(chrom, start)
        tried.append(f"annotation {ann_label} ({how})")
        if candidate.n_placed:
            placement, source = candidate, "annotation"
            logger.info("genomic_order: matched %d of %d features by %s.", candidate.n_placed, n, how)
        else:
            logger.warning("genomic_order: the annotation (%s) placed no feature; trying other sources.", ann_label)

    if placement is None:
        chrom_col = _find_column(list(var.columns), _CHROM_COLUMNS)
        start_col = _find_column(list(var.columns), _START_COLUMNS)
        if chrom_col is not None and start_col is not None:
            candidate = _place(var[chrom_col], var[start_col])
            tried.append(f"var columns {chrom_col!r}/{start_col!r}")
            if candidate.n_placed:
                placement, source = candidate, "var columns"

    if placement is None and _INTERVAL_COLUMN in var.columns:
        candidate = _place_regions(var[_INTERVAL_COLUMN])
        tried.append("'interval' column")
        if candidate.n_placed:
            placement, source = candidate, "interval column"

    if placement is None:
        candidate = _place_regions(var.index)
        tried.append("feature names")
        if candidate.n_placed:
            placement, source = candidate, "feature names"

    if placement is None:
        raise ValueError(
            f"Could not find genomic coordinates for any of the {n} features (tried: {', '.join(tried)}). "
            "Supply them in one of these ways: var columns 'chrom' and 'start'; a 10x-style 'interval' column "
            "('chr1:100-200'); region-style feature names ('chr1:100-200', 'chr1-100-200' or 'chr1_100_200'); "
            "`annotation=` with a gene table (gene_name/gene_id, chrom, start) or a GTF; or call "
            "`scmamba.data.add_genomic_coordinates(adata, 'GRCh38')` first. "
            "For proteins use modality='protein' to keep the given order."
        )

    if placement.bad_names:
        examples = ", ".join(repr(name) for name in placement.bad_names[:5])
        warnings.warn(
            f"{placement.n_bad} of {n} features have a chromosome name that could not be parsed "
            f"({len(placement.bad_names)} distinct, e.g. {examples}); they are left unplaced and put after the "
            "placed features.",
            UserWarning,
            stacklevel=2,
        )
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
