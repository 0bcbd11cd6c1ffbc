"""Data preparation: genomic ordering of features, gene coordinate tables and per-minibatch value encoding."""

from ._genome import (
    GenomeOrder,
    add_genomic_coordinates,
    chromosome_rank,
    gene_positions,
    genomic_order,
    parse_region,
    read_annotation,
)
from ._preprocess import bin_relative_levels, binarize, encode_values, normalize_log1p

__all__ = [
    "GenomeOrder",
    "add_genomic_coordinates",
    "bin_relative_levels",
    "binarize",
    "chromosome_rank",
    "encode_values",
    "gene_positions",
    "genomic_order",
    "normalize_log1p",
    "parse_region",
    "read_annotation",
]
