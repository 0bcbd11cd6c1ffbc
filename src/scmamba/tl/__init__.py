"""Downstream tools on scmamba embeddings: cell matching, label transfer and trajectories.

* :func:`match_cells`: the k most similar reference cells of every query cell (e.g. ATAC-only cells against
  RNA-only cells of a mosaic), blocked and exact, with label transfer through the matches (:class:`CellMatches`).
* :func:`transfer_labels`, :func:`transfer_labels_from_embeddings`: reference-to-query label transfer (kNN or
  MLP) with per-cell confidence and low-confidence flagging.
* :func:`pseudotime`: diffusion pseudotime on an embedding, without touching the user's neighbour graph.
* :func:`modality_pseudotime_consistency`: agreement of the pseudotimes of two omics layers' embeddings.
"""

from ._label_transfer import transfer_labels, transfer_labels_from_embeddings
from ._matching import CellMatches, match_cells
from ._trajectory import modality_pseudotime_consistency, pseudotime

__all__ = [
    "CellMatches",
    "match_cells",
    "modality_pseudotime_consistency",
    "pseudotime",
    "transfer_labels",
    "transfer_labels_from_embeddings",
]
