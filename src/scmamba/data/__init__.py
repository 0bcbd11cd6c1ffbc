"""Data preparation: genomic ordering of features and gene coordinate tables (value encoding: :mod:`scmamba.nn`)."""

from ._annotation import gene_positions, read_annotation
from ._coordinates import add_genomic_coordinates
from ._order import GenomeOrder, genomic_order
from ._regions import chromosome_rank, parse_region

__all__ = [
    "GenomeOrder",
    "add_genomic_coordinates",
    "chromosome_rank",
    "gene_positions",
    "genomic_order",
    "parse_region",
    "read_annotation",
]
