"""Gene annotation tables: user tables and GTF/GFF files, the gene tables shipped with the package.

Every table is brought to one form (:func:`_standardise_table`: ``gene_name``, ``gene_id``, ``chrom``, ``start``,
``end``, UCSC-style chromosome names), whatever its column spellings, so that matching features against it
(:mod:`._coordinates`) does not depend on where it came from.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._regions import _is_missing, _normalise_chrom, _to_float

_CHROM_COLUMNS = ("chrom", "chromosome", "chr", "seqname", "seqnames")
_START_COLUMNS = ("start", "chromStart", "chrom_start")


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

    Ensembl's gene records (queried from Ensembl BioMart by the annotables R package) for the genes on the
    primary chromosomes; ``scmamba/data/gene_positions/README.md`` gives the query, the releases and the licence.

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
