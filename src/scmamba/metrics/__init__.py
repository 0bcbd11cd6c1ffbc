"""Integration metrics of the scMamba paper (section 4.2.1).

Embeddings are numpy arrays (cells x dims). ``x`` and ``y`` are the two omics layers' embeddings of the same
cells, row-paired. Omics-alignment metrics work on the ``2N`` stacked profiles (:func:`stack_modalities`).

* Single-cell alignment: :func:`foscttm`, :func:`matching_score`, :func:`neighborhood_overlap`.
* Biology conservation: :func:`ari_nmi_leiden`, :func:`mean_average_precision`, :func:`cell_type_asw`.
* Omics alignment: :func:`omics_entropy_mixing_score`, :func:`seurat_alignment_score`,
  :func:`graph_connectivity`, :func:`omics_asw`.
* Downstream: :func:`knn_label_transfer`, :func:`label_transfer_scores`, :func:`trajectory_conservation`.
* Baselines: :func:`rna_pca` (normalize_total + log1p + PCA of the RNA counts).
* Aggregation: :func:`overall_scores`, :func:`integration_report`.
* A trained model's summary (what ``scmamba train`` reports): :func:`summarize_embeddings`.
"""

from .._embeddings import stack_modalities
from ._aggregate import BIO_METRICS, BIO_WEIGHT, OMICS_METRICS, integration_report, overall_scores
from ._alignment import foscttm, matching_score, neighborhood_overlap
from ._baselines import rna_pca
from ._bio import (
    DEFAULT_RESOLUTIONS,
    ari_nmi_leiden,
    cell_type_asw,
    knn_label_transfer,
    label_transfer_scores,
    mean_average_precision,
    trajectory_conservation,
)
from ._omics import graph_connectivity, omics_asw, omics_entropy_mixing_score, seurat_alignment_score
from ._summary import EmbeddingSummary, summarize_embeddings

__all__ = [
    "BIO_METRICS",
    "BIO_WEIGHT",
    "DEFAULT_RESOLUTIONS",
    "OMICS_METRICS",
    "EmbeddingSummary",
    "ari_nmi_leiden",
    "cell_type_asw",
    "foscttm",
    "graph_connectivity",
    "integration_report",
    "knn_label_transfer",
    "label_transfer_scores",
    "matching_score",
    "mean_average_precision",
    "neighborhood_overlap",
    "omics_asw",
    "omics_entropy_mixing_score",
    "overall_scores",
    "rna_pca",
    "seurat_alignment_score",
    "stack_modalities",
    "summarize_embeddings",
    "trajectory_conservation",
]
