"""Plots for scmamba (matplotlib; every function returns the figure and takes ``show`` and ``save``).

* :func:`training_curves`: total loss and loss parts over epochs from ``model.history``.
* :func:`umap_modalities`: UMAP of both omics layers' embeddings, coloured by layer and by cell type.
* :func:`confusion_matrix`: heat map of true against predicted (e.g. transferred) labels.
"""

from ._plots import confusion_matrix, training_curves, umap_modalities

__all__ = ["confusion_matrix", "training_curves", "umap_modalities"]
