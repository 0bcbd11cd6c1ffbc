"""Cross-modal cell matching: the k most similar reference cells of every query cell, and labels through them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .._embeddings import as_embedding
from ._label_transfer import check_min_confidence, label_table, neighbor_vote, reference_labels

if TYPE_CHECKING:
    from anndata import AnnData
    from mudata import MuData
    from numpy.typing import ArrayLike

    from scmamba import SCMAMBA

Vote = Literal["score", "uniform"]

#: Similarities held at once per query block: ``block_size x reference rows`` floats (128 MiB of float32), so the
#: memory of a search does not grow with the number of cells.
_TILE_ELEMENTS = 2**25


@dataclass(frozen=True)
class CellMatches:
    """Result of :func:`match_cells`.

    Attributes
    ----------
    indices
        ``(n_query, k)`` rows of the reference, best match first.
    scores
        ``(n_query, k)`` cosine similarities of those matches, in ``[-1, 1]``, decreasing along each row.
    query_names, reference_names
        ``obs_names`` of the query and reference cells (``None`` for array input).
    labels
        With ``ref_labels``: the label-transfer table (as :func:`~scmamba.tl.transfer_labels_from_embeddings`:
        ``label``, ``confidence``, ``uncertainty``, ``label_filtered``), one row per query cell; else ``None``.
    """

    indices: np.ndarray
    scores: np.ndarray
    query_names: pd.Index | None = None
    reference_names: pd.Index | None = None
    labels: pd.DataFrame | None = None

    @property
    def k(self) -> int:
        """Matches per query cell."""
        return self.indices.shape[1]

    def to_frame(self) -> pd.DataFrame:
        """One row per (query cell, match): ``query``, ``rank`` (0 = best), ``reference``, ``score``.

        ``query`` and ``reference`` are cell names where known, else row numbers.
        """
        n, k = self.indices.shape
        query = np.repeat(np.arange(n), k) if self.query_names is None else np.repeat(self.query_names, k)
        ref = self.indices.ravel()
        return pd.DataFrame(
            {
                "query": query,
                "rank": np.tile(np.arange(k), n),
                "reference": ref if self.reference_names is None else np.asarray(self.reference_names)[ref],
                "score": self.scores.ravel(),
            }
        )


def cosine_topk(
    query: np.ndarray,
    reference: np.ndarray,
    k: int,
    *,
    block_size: int = 4096,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest cosine similarities of each query row among the reference rows, and their positions.

    Similarities are computed one tile (``block_size`` query rows x a slice of the reference) at a time and only
    each tile's ``k`` best are kept, merged with the best so far: the memory is one tile, never ``n_query x
    n_reference``, and the result is the same for any ``block_size``.

    Returns
    -------
    ``(scores, indices)``, both ``(n_query, k)``, best first: float32 similarities and int64 reference rows.
    """
    device = torch.device(device or "cpu")
    ref = F.normalize(torch.as_tensor(reference, dtype=torch.float32, device=device), dim=1)
    n_ref = ref.shape[0]
    ref_block = max(1, min(n_ref, _TILE_ELEMENTS // block_size))
    scores, indices = [], []
    for start in range(0, query.shape[0], block_size):
        q = torch.as_tensor(query[start : start + block_size], dtype=torch.float32, device=device)
        q = F.normalize(q, dim=1)
        best_s = q.new_full((q.shape[0], 0), -np.inf)
        best_i = torch.empty((q.shape[0], 0), dtype=torch.int64, device=device)
        for r0 in range(0, n_ref, ref_block):
            sim = q @ ref[r0 : r0 + ref_block].T
            s, i = sim.topk(min(k, sim.shape[1]), dim=1)
            cand_s, cand_i = torch.cat([best_s, s], dim=1), torch.cat([best_i, i + r0], dim=1)
            best_s, pos = cand_s.topk(min(k, cand_s.shape[1]), dim=1)
            best_i = cand_i.gather(1, pos)
        scores.append(best_s.cpu())
        indices.append(best_i.cpu())
    return torch.cat(scores).numpy(), torch.cat(indices).numpy()


def _embedding(data, model, modality: str, use_rep: str, which: str) -> tuple[np.ndarray, pd.Index | None]:
    """An embedding and its cell names from an array, from ``obsm[use_rep]``, or computed by ``model``."""
    from anndata import AnnData
    from mudata import MuData

    if isinstance(data, AnnData | MuData):
        names = data.obs_names.copy()
        if model is not None:
            z = model.get_latent_representation(data, modality=modality)
        elif use_rep in data.obsm:
            z = np.asarray(data.obsm[use_rep])
        else:
            raise ValueError(
                f"The {which} has no embedding obsm[{use_rep!r}] and no model was given: pass model=... (and "
                f"{which}_modality=...) to embed it, or store the embedding first."
            )
    else:
        if model is not None:
            raise TypeError(f"With a model, the {which} must be an AnnData or MuData to embed, not an array.")
        names, z = None, data
    z = z.toarray() if hasattr(z, "toarray") else np.asarray(z)
    if z.ndim == 2 and np.issubdtype(z.dtype, np.floating):
        missing = np.isnan(z).any(axis=1)
        if missing.any():
            raise ValueError(
                f"{int(missing.sum()):,} of the {len(z):,} {which} rows are NaN: cells not measured in the modality "
                f"embedded (a mosaic). Match only the measured cells, e.g. keep "
                f"model.get_latent_layers(mdata, modality=...) != 'none', or use modality='joint'."
            )
    return as_embedding(z, which), names


def _aligned_labels(labels, names: pd.Index | None):
    """Labels in the reference's cell order: a pandas Series is matched to the reference's names by its index.

    With an array reference (no names) labels are taken in row order, whatever their type.
    """
    if names is None or not isinstance(labels, pd.Series) or labels.index.equals(names):
        return labels
    index = labels.index
    missing = names[~names.isin(index)]
    if len(missing) or index.has_duplicates:
        problem = (
            f"{len(missing):,} of the {len(names):,} reference cells (e.g. {list(missing[:3])}) are not in its index"
            if len(missing)
            else "its index has duplicated names"
        )
        raise ValueError(
            f"`ref_labels` is a pandas Series, matched to the reference's cells by its index, but {problem} (e.g. "
            f"{list(index[:3])}). Pass labels indexed by the reference's obs_names (e.g. reference.obs['cell_type']), "
            "or, if they are in the reference's row order, their values: ref_labels=labels.to_numpy()."
        )
    return labels.reindex(names)


def match_cells(
    query: ArrayLike | AnnData | MuData,
    reference: ArrayLike | AnnData | MuData,
    *,
    k: int = 15,
    model: SCMAMBA | None = None,
    query_modality: str = "joint",
    reference_modality: str = "joint",
    use_rep: str = "X_scmamba",
    ref_labels: ArrayLike | str | None = None,
    vote: Vote = "score",
    min_confidence: float = 0.5,
    unknown_label: str = "Unknown",
    block_size: int = 4096,
    device: str | torch.device | None = None,
) -> CellMatches:
    """Match every query cell to its ``k`` most similar reference cells in a shared embedding, with scores.

    SCMAMBA embeds every modality into one space, so cells measured in different modalities (the RNA-only and
    ATAC-only cells of a mosaic, or separate experiments) can be compared directly: by cosine similarity, the
    measure the contrastive objective aligns. The search is exact and blocked: ``block_size`` query rows against a
    slice of the reference at a time, keeping only each row's ``k`` best, so 100,000 x 100,000 cells need a few
    hundred MiB instead of the 40 GB of a dense similarity matrix (``benchmarks/match_scaling.py``).

    With ``ref_labels``, the matches also transfer labels: each query cell gets the label with the largest
    (score-weighted) share of its matches' votes, and that share as its confidence, in the table of
    :func:`transfer_labels_from_embeddings` (the same columns and ``min_confidence`` filtering).

    Parameters
    ----------
    query, reference
        Embeddings (``(cells, d)`` arrays, same ``d``), or AnnData/MuData: embedded by ``model`` when it is given,
        else read from ``obsm[use_rep]``. The reference may be the query itself (nearest neighbours within it; a
        cell is then its own best match).
    k
        Matches per query cell; at most the number of reference cells. One match (``k=1``) is the cross-modal
        counterpart; more give label votes that tolerate single wrong matches.
    model
        A trained :class:`~scmamba.SCMAMBA` to embed AnnData/MuData inputs.
    query_modality, reference_modality
        Which embedding of each input ``model`` computes (``'joint'``, ``'rna'``, ``'atac'``, ``'protein'``; an
        AnnData holds one modality). On a mosaic MuData ``'joint'`` embeds every cell from the layers it has.
    use_rep
        ``obsm`` key of AnnData/MuData inputs without a model.
    ref_labels
        Labels of the reference cells (one per row, no missing values), or a column of ``reference.obs``. A pandas
        Series is matched to an AnnData/MuData reference's cells by its index (``obs_names``; an index that
        lacks some of them is an error); arrays, and any labels of an array reference, are taken in row order.
    vote
        ``'score'``: each match votes with its similarity (negative similarities do not vote), so close matches
        count more; ``'uniform'``: one vote per match.
    min_confidence
        Transferred labels with a vote share below this are ``unknown_label`` in ``label_filtered``.
    unknown_label
        Label of low-confidence cells.
    block_size
        Query rows per block. Changes memory and speed only, never the result.
    device
        Torch device of the search (``None``: CPU); a GPU speeds up large searches.

    Returns
    -------
    :class:`CellMatches`: ``indices`` and ``scores`` (``(n_query, k)``, best first), cell names, and with
    ``ref_labels`` the transferred ``labels`` indexed by query cell.

    Examples
    --------
    RNA-only cells of a mosaic annotate its ATAC-only cells:

    >>> z = model.get_latent_representation(mdata)  # doctest: +SKIP
    >>> layers = model.get_latent_layers(mdata)  # doctest: +SKIP
    >>> rna, atac = (layers == "rna").values, (layers == "atac").values  # doctest: +SKIP
    >>> m = scmamba.tl.match_cells(z[atac], z[rna], ref_labels=mdata.obs["cell_type"][rna])  # doctest: +SKIP
    >>> m.labels["label"], m.indices[:, 0], m.scores[:, 0]  # doctest: +SKIP
    """
    if block_size < 1:
        raise ValueError(f"`block_size` must be positive, got {block_size}.")
    if vote not in ("score", "uniform"):
        raise ValueError(f"`vote` must be 'score' or 'uniform', got {vote!r}.")
    check_min_confidence(min_confidence)
    q, q_names = _embedding(query, model, query_modality, use_rep, "query")
    ref, ref_names = _embedding(reference, model, reference_modality, use_rep, "reference")
    if q.shape[1] != ref.shape[1]:
        raise ValueError(
            f"The query embedding has {q.shape[1]} dimensions but the reference has {ref.shape[1]}; both must come "
            "from the same embedding space (the same model)."
        )
    if not 1 <= k <= ref.shape[0]:
        raise ValueError(f"`k` must be between 1 and the number of reference cells ({ref.shape[0]:,}), got {k}.")
    labels = None
    if ref_labels is not None:
        if isinstance(ref_labels, str):
            if not hasattr(reference, "obs"):
                raise ValueError("`ref_labels` names an obs column, but the reference is an array: pass the labels.")
            if ref_labels not in reference.obs.columns:
                raise ValueError(
                    f"`ref_labels` {ref_labels!r} is not a column of the reference's obs; its columns are "
                    f"{list(reference.obs.columns)}."
                )
            ref_labels = reference.obs[ref_labels]
        labels = reference_labels(_aligned_labels(ref_labels, ref_names), ref.shape[0])
    scores, indices = cosine_topk(q, ref, k, block_size=block_size, device=device)
    table = None
    if labels is not None:
        codes = labels.codes.astype(np.int64)[indices]
        weights = np.clip(scores, 0.0, None) if vote == "score" else None
        proba = neighbor_vote(codes, weights, len(labels.categories))
        table = label_table(proba, np.arange(len(labels.categories)), labels.categories, min_confidence, unknown_label)
        if q_names is not None:
            table.index = q_names
    return CellMatches(indices=indices, scores=scores, query_names=q_names, reference_names=ref_names, labels=table)
