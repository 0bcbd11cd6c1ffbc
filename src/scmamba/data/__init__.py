"""Data preparation: genomic ordering of features, gene coordinate tables and per-minibatch value encoding."""

from ._annotation import gene_positions, read_annotation
from ._coordinates import add_genomic_coordinates
from ._order import GenomeOrder, genomic_order
from ._preprocess import bin_relative_levels, binarize, encode_values, normalize_log1p
from ._regions import chromosome_rank, parse_region

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
