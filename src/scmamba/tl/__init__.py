"""Downstream tools on scmamba embeddings: label transfer and trajectories.

* :func:`transfer_labels`, :func:`transfer_labels_from_embeddings`: reference-to-query label transfer (kNN or
  MLP) with per-cell confidence and low-confidence flagging.
* :func:`pseudotime`: diffusion pseudotime on an embedding, without touching the user's neighbour graph.
* :func:`modality_pseudotime_consistency`: agreement of the pseudotimes of two omics layers' embeddings.
"""

from ._label_transfer import transfer_labels, transfer_labels_from_embeddings
from ._trajectory import modality_pseudotime_consistency, pseudotime

__all__ = [
    "modality_pseudotime_consistency",
    "pseudotime",
    "transfer_labels",
    "transfer_labels_from_embeddings",
]
