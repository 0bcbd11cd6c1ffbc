"""One summary of an integration: alignment of the two layers, clustering against labels, and a UMAP."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ._alignment import foscttm
from ._baselines import rna_pca
from ._bio import ari_nmi_leiden, label_transfer_scores

if TYPE_CHECKING:
    from anndata import AnnData
    from numpy.typing import ArrayLike


@dataclass
class EmbeddingSummary:
    """What :func:`summarize_embeddings` measured, and the per-cell results behind it.

    Attributes
    ----------
    scores
        The numbers (what ``scmamba train`` writes to ``summary.json``): ``foscttm_rna_vs_<layer>``,
        ``label_knn_agreement_rna_to_<layer>``, ``leiden_ari_joint``, ``leiden_nmi_joint``, ``leiden_ari_rna_pca``,
        ``leiden_nmi_rna_pca`` (each only when it could be computed).
    leiden
        Leiden clusters of the joint embedding at the resolution of its best ARI, one string per cell (``''`` for
        cells not clustered: those not measured in RNA); ``None`` without labels.
    umap
        UMAP coordinates of the joint embedding, ``(cells, 2)``; ``None`` if it could not be computed.
    notes
        What was skipped and why (e.g. too few cells measured in both layers).
    """

    scores: dict[str, Any] = field(default_factory=dict)
    leiden: np.ndarray | None = None
    umap: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def summarize_embeddings(
    joint: ArrayLike,
    rna: ArrayLike,
    other: ArrayLike,
    *,
    other_name: str,
    labels: ArrayLike | None = None,
    rna_counts: AnnData | None = None,
    rna_layer: str | None = None,
    seed: int = 0,
    k: int = 15,
) -> EmbeddingSummary:
    """Score a trained model's embeddings of the same cells; the summary ``scmamba train`` and ``scmamba demo`` print.

    Each part runs on the cells that have what it needs, so mosaic data (NaN rows where a layer was not measured)
    is summarised too. A part that cannot run on these data (a ``ValueError``, e.g. fewer than two cells measured
    in both layers) is left out and said in :attr:`EmbeddingSummary.notes`.

    Parameters
    ----------
    joint
        Joint embedding, ``(cells, d)``.
    rna, other
        The RNA layer's and the other layer's embeddings of the same cells (NaN rows: not measured).
    other_name
        The other layer (``'atac'`` or ``'protein'``), for the score names.
    labels
        Cell labels (e.g. cell types): the cross-modal label agreement and the Leiden clustering are scored
        against them; ``None`` leaves both out.
    rna_counts, rna_layer
        The RNA counts of the cells measured in RNA (the finite rows of ``rna``, in their order) and the layer that
        holds them: the RNA PCA baseline clustered beside the joint embedding (``None``: no baseline).
    seed
        Random state of the neighbour graphs, Leiden and UMAP.
    k
        Neighbours of the label agreement (a cell's label predicted from its ``k`` nearest RNA embeddings).

    Returns
    -------
    :class:`EmbeddingSummary`.
    """
    joint, rna, other = (np.asarray(x, dtype=np.float32) for x in (joint, rna, other))
    summary = EmbeddingSummary()
    paired = np.isfinite(rna).all(1) & np.isfinite(other).all(1)
    has_rna = np.isfinite(rna).all(1)
    labels = None if labels is None else np.asarray(labels).astype(str)

    def part(what: str, fn) -> None:
        try:
            fn()
        except ValueError as err:  # these data cannot give this part: say so, keep the others
            summary.notes.append(f"{what} skipped: {' '.join(str(err).split())}")

    def alignment() -> None:
        if paired.sum() < 2:
            raise ValueError(f"{int(paired.sum())} cells are measured in both layers")
        summary.scores[f"foscttm_rna_vs_{other_name}"] = round(float(foscttm(rna[paired], other[paired])), 4)
        if labels is not None:
            scores = label_transfer_scores(rna[paired], labels[paired], other[paired], labels[paired], k=k)
            summary.scores[f"label_knn_agreement_rna_to_{other_name}"] = round(float(scores["accuracy"]), 4)

    def clustering() -> None:
        result = ari_nmi_leiden(joint[has_rna], labels[has_rna], seed=seed, return_clusters=True)
        summary.scores["leiden_ari_joint"] = round(result["ari"], 4)
        summary.scores["leiden_nmi_joint"] = round(result["nmi"], 4)
        summary.leiden = np.full(len(joint), "", dtype=object)
        summary.leiden[has_rna] = result["clusters"]
        if rna_counts is not None:
            if rna_counts.n_obs != has_rna.sum():
                raise ValueError(
                    f"rna_counts has {rna_counts.n_obs:,} cells; give the {int(has_rna.sum()):,} measured in RNA"
                )
            baseline = rna_pca(rna_counts, layer=rna_layer, n_comps=30)
            result = ari_nmi_leiden(baseline, labels[has_rna], seed=seed)
            summary.scores["leiden_ari_rna_pca"] = round(result["ari"], 4)
            summary.scores["leiden_nmi_rna_pca"] = round(result["nmi"], 4)

    def umap() -> None:
        import scanpy as sc
        from anndata import AnnData

        cells = AnnData(joint)
        sc.pp.neighbors(cells, use_rep="X", n_neighbors=15)
        sc.tl.umap(cells, random_state=seed)
        summary.umap = np.asarray(cells.obsm["X_umap"])

    part("the cross-modal alignment report", alignment)
    if labels is not None:
        part("the clustering report", clustering)
    part("the UMAP", umap)
    return summary
