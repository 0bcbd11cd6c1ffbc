"""Aggregate scores across methods and a one-call report of all metrics for one method."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._embeddings import as_labels, check_paired, stack_modalities
from ._alignment import foscttm, matching_score
from ._bio import DEFAULT_RESOLUTIONS, ari_nmi_leiden, cell_type_asw, mean_average_precision
from ._omics import graph_connectivity, omics_asw, omics_entropy_mixing_score, seurat_alignment_score

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike

#: Metrics averaged into the biology-conservation score, named as in :func:`integration_report`.
BIO_METRICS: tuple[str, ...] = ("ARI", "NMI", "MAP", "cASW")
#: Metrics averaged into the omics-alignment score.
OMICS_METRICS: tuple[str, ...] = ("OEMS", "SAS", "GC", "oASW")
#: Weight of the biology-conservation score in the overall score (omics alignment gets the rest).
BIO_WEIGHT: float = 0.6


def overall_scores(
    table: pd.DataFrame,
    *,
    bio: Sequence[str] = BIO_METRICS,
    omics: Sequence[str] = OMICS_METRICS,
    bio_weight: float = BIO_WEIGHT,
) -> pd.DataFrame:
    """Biology-conservation, omics-alignment and overall scores of compared methods.

    Every metric column is min-max scaled across the methods (rows) with :func:`sklearn.preprocessing.minmax_scale`,
    so the best method gets 1 and the worst 0 on that metric (a column where all methods tie scales to 0; NaNs
    stay NaN and are skipped in the means). ``S_bio`` is the mean of the scaled ``bio`` metrics, ``S_omics`` that
    of the ``omics`` metrics, and ``overall = 0.6 * S_bio + 0.4 * S_omics``. All metrics must be
    higher-is-better, as every metric returned by :func:`integration_report` under these names is.

    Parameters
    ----------
    table
        One row per method, one column per metric.
    bio
        Biology-conservation metric columns.
    omics
        Omics-alignment metric columns.
    bio_weight
        Weight of ``S_bio`` (the paper's 6:4 ratio by default).

    Returns
    -------
    DataFrame with the index of ``table`` and columns ``S_bio``, ``S_omics``, ``overall``.
    """
    from sklearn.preprocessing import minmax_scale

    missing = [c for c in [*bio, *omics] if c not in table.columns]
    if missing:
        raise KeyError(f"Metric columns not in table: {missing}")
    cols = list(dict.fromkeys([*bio, *omics]))
    values = table[cols].to_numpy(dtype=np.float64)
    scaled = pd.DataFrame(minmax_scale(values, axis=0), index=table.index, columns=cols)
    s_bio = scaled[list(bio)].mean(axis=1)
    s_omics = scaled[list(omics)].mean(axis=1)
    return pd.DataFrame(
        {"S_bio": s_bio, "S_omics": s_omics, "overall": bio_weight * s_bio + (1.0 - bio_weight) * s_omics},
        index=table.index,
    )


def integration_report(
    x: ArrayLike,
    y: ArrayLike,
    labels: ArrayLike,
    *,
    bio_embedding: ArrayLike | None = None,
    quick: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """All integration metrics of the paper for one method's paired embeddings.

    Omics-alignment metrics (OEMS, SAS, GC, oASW) use the ``2N`` stacked profiles; biology-conservation metrics
    (ARI, NMI, MAP, cASW) use the stacked profiles too unless ``bio_embedding`` (e.g. a joint per-cell
    embedding) is given. Single-cell alignment adds FOSCTTM (lower is better) and the matching score.

    Parameters
    ----------
    x
        Embedding of the first omics layer, shape ``(N, d)``.
    y
        Embedding of the second omics layer, row-paired with ``x``.
    labels
        Cell-type label per cell (length ``N``).
    bio_embedding
        Optional embedding of the ``N`` cells for the biology-conservation metrics.
    quick
        Use 3 Leiden resolutions and 10 OEMS repeats instead of 20 and 100 (for tests and smoke runs).
    seed
        Seed for Leiden and OEMS sampling.

    Returns
    -------
    Dict with keys ``ARI``, ``NMI``, ``MAP``, ``cASW``, ``OEMS``, ``SAS``, ``GC``, ``oASW``, ``FOSCTTM``,
    ``matching_score``, ``resolution_ARI``, ``resolution_NMI``; one row of the table for :func:`overall_scores`.
    """
    x, y = check_paired(x, y)
    lab = as_labels(labels, x.shape[0])
    z, _ = stack_modalities(x, y)
    if bio_embedding is None:
        bio_emb, bio_lab = z, np.concatenate([lab, lab])
    else:
        bio_emb, bio_lab = bio_embedding, lab
    resolutions = (0.5, 1.0, 1.5) if quick else DEFAULT_RESOLUTIONS
    leiden = ari_nmi_leiden(bio_emb, bio_lab, resolutions=resolutions, seed=seed)
    return {
        "ARI": leiden["ari"],
        "NMI": leiden["nmi"],
        "MAP": mean_average_precision(bio_emb, bio_lab),
        "cASW": cell_type_asw(bio_emb, bio_lab),
        "OEMS": omics_entropy_mixing_score(x, y, n_repeats=10 if quick else 100, seed=seed),
        "SAS": seurat_alignment_score(x, y, seed=seed),
        "GC": graph_connectivity(x, y, lab),
        "oASW": omics_asw(x, y, lab),
        "FOSCTTM": foscttm(x, y),
        "matching_score": matching_score(x, y),
        "resolution_ARI": leiden["resolution_ari"],
        "resolution_NMI": leiden["resolution_nmi"],
    }
