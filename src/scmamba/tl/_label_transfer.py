"""Reference-to-query cell-type label transfer in a shared embedding (kNN or a small neural-network classifier)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from .._constants import LATENT_KEY
from .._embeddings import as_embedding

if TYPE_CHECKING:
    from anndata import AnnData
    from mudata import MuData
    from numpy.typing import ArrayLike

Method = Literal["knn", "mlp"]
Weights = Literal["uniform", "distance"]

#: Defaults of the neural-network classifier (scMamba paper: one hidden layer of 256 units, early stopping).
MLP_DEFAULTS: dict[str, Any] = {
    "hidden_layer_sizes": (256,),
    "early_stopping": True,
    "max_iter": 300,
}


def reference_labels(labels: ArrayLike, n: int, name: str = "ref_labels") -> pd.Categorical:
    """Return the reference labels as a Categorical without NaNs (categorical input keeps its category order)."""
    if isinstance(labels, pd.Series | pd.Index):
        values = labels.array
    else:
        values = np.asarray(labels)
        if values.ndim != 1:
            raise ValueError(f"`{name}` must be 1-D, got shape {values.shape}.")
    if len(values) != n:
        raise ValueError(f"`{name}` has {len(values)} entries but the reference embedding has {n} rows.")
    cat = pd.Categorical(values)
    n_missing = int(np.sum(cat.codes < 0))
    if n_missing:
        raise ValueError(
            f"{n_missing} of {n} reference labels in `{name}` are missing (NaN). Drop those cells from the "
            "reference before transferring labels, e.g. `reference[reference.obs[label_key].notna()].copy()`."
        )
    return cat.remove_unused_categories()


def _mlp_pipeline(n_classes_min: int, n_ref: int, random_state: int, mlp_kwargs: dict[str, Any] | None):
    """Standardisation followed by :class:`sklearn.neural_network.MLPClassifier`."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    params = {**MLP_DEFAULTS, "random_state": random_state, **(mlp_kwargs or {})}
    if params.get("early_stopping"):
        n_val = int(np.ceil(params.get("validation_fraction", 0.1) * n_ref))
        if n_val < 2 or n_ref - n_val < 2 or n_classes_min < 2:
            warnings.warn(
                f"Too few reference cells for an early-stopping validation split ({n_ref} cells, smallest class "
                f"{n_classes_min}); training the MLP without early stopping.",
                UserWarning,
                stacklevel=3,
            )
            params["early_stopping"] = False
    return make_pipeline(StandardScaler(), MLPClassifier(**params))


def transfer_labels_from_embeddings(
    ref_embedding: ArrayLike,
    ref_labels: ArrayLike,
    query_embedding: ArrayLike,
    *,
    method: Method = "knn",
    n_neighbors: int = 15,
    weights: Weights = "uniform",
    min_confidence: float = 0.5,
    unknown_label: str = "Unknown",
    random_state: int = 0,
    mlp_kwargs: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Predict labels of query cells from reference cells embedded in the same space.

    * ``method="knn"``: :class:`sklearn.neighbors.KNeighborsClassifier` with ``n_neighbors`` neighbours (capped
      at the reference size). The confidence is the share of the (uniform or distance-weighted) neighbour votes
      that went to the predicted label.
    * ``method="mlp"``: the inputs are standardised (:class:`sklearn.preprocessing.StandardScaler`) and
      classified by :class:`sklearn.neural_network.MLPClassifier` (one hidden layer of 256 units and early
      stopping on a 10% validation split, as in the scMamba paper; override with ``mlp_kwargs``). The
      confidence is the largest predicted class probability.

    :func:`scmamba.metrics.label_transfer_scores` scores this kNN against known query labels.

    Parameters
    ----------
    ref_embedding
        Reference embedding, shape ``(n_ref, d)``.
    ref_labels
        One label per reference cell; missing values (NaN) are not allowed.
    query_embedding
        Query embedding in the same space, shape ``(n_query, d)``.
    method
        ``"knn"`` or ``"mlp"``.
    n_neighbors
        Neighbours per query cell (``"knn"`` only).
    weights
        ``"uniform"`` or ``"distance"`` neighbour votes (``"knn"`` only).
    min_confidence
        Predictions with a confidence below this are replaced by ``unknown_label`` in ``label_filtered``.
    unknown_label
        Label given to low-confidence cells.
    random_state
        Seed of the MLP (weights initialisation and validation split).
    mlp_kwargs
        Keyword arguments for :class:`~sklearn.neural_network.MLPClassifier`, overriding the defaults
        ``hidden_layer_sizes=(256,)``, ``early_stopping=True``, ``max_iter=300``.

    Returns
    -------
    One row per query cell (in query order) with columns

    ``label``
        Predicted label (Categorical with the reference's categories).
    ``confidence``
        Vote share (kNN) or maximum class probability (MLP) of the predicted label, in ``[0, 1]``.
    ``uncertainty``
        ``1 - confidence``.
    ``label_filtered``
        ``label``, or ``unknown_label`` where ``confidence < min_confidence``.

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.array([[0.0], [0.1], [5.0], [5.1]])
    >>> df = transfer_labels_from_embeddings(ref, ["a", "a", "b", "b"], np.array([[0.05], [4.9]]), n_neighbors=2)
    >>> df["label"].tolist(), df["confidence"].tolist()
    (['a', 'b'], [1.0, 1.0])
    """
    ref = as_embedding(ref_embedding, "ref_embedding")
    query = as_embedding(query_embedding, "query_embedding")
    if ref.shape[1] != query.shape[1]:
        raise ValueError(
            f"The reference embedding has {ref.shape[1]} dimensions but the query embedding has "
            f"{query.shape[1]}; both must come from the same embedding space."
        )
    labels = reference_labels(ref_labels, ref.shape[0])
    codes = labels.codes.astype(np.int64)
    categories = labels.categories
    check_min_confidence(min_confidence)

    if method == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        if n_neighbors < 1:
            raise ValueError(f"`n_neighbors` must be positive, got {n_neighbors}.")
        clf = KNeighborsClassifier(n_neighbors=min(n_neighbors, ref.shape[0]), weights=weights)
    elif method == "mlp":
        if len(categories) < 2:
            raise ValueError("The MLP needs at least two reference labels; use method='knn'.")
        clf = _mlp_pipeline(int(np.bincount(codes).min()), ref.shape[0], random_state, mlp_kwargs)
    else:
        raise ValueError(f"`method` must be 'knn' or 'mlp', got {method!r}.")

    clf.fit(ref, codes)
    proba = clf.predict_proba(query)
    return label_table(proba, np.asarray(clf.classes_), categories, min_confidence, unknown_label)


def check_min_confidence(min_confidence: float) -> None:
    if not (np.isfinite(min_confidence) and min_confidence >= 0):
        raise ValueError(f"`min_confidence` must be a non-negative number, got {min_confidence!r}.")


def neighbor_vote(neighbor_codes: np.ndarray, weights: np.ndarray | None, n_classes: int) -> np.ndarray:
    """Share of the (weighted) neighbour votes per class, ``(n_query, n_classes)``; rows sum to 1.

    A row whose weights are all zero (no neighbour with a positive weight) falls back to uniform votes, so every
    query cell gets a label and a confidence.
    """
    n, k = neighbor_codes.shape
    w = np.ones((n, k)) if weights is None else np.asarray(weights, dtype=np.float64)
    empty = w.sum(axis=1) <= 0
    if empty.any():
        w = w.copy()
        w[empty] = 1.0
    votes = np.zeros((n, n_classes))
    np.add.at(votes, (np.repeat(np.arange(n), k), neighbor_codes.ravel()), w.ravel())
    return votes / votes.sum(axis=1, keepdims=True)


def label_table(
    proba: np.ndarray,
    classes: np.ndarray,
    categories: pd.Index,
    min_confidence: float,
    unknown_label: str,
) -> pd.DataFrame:
    """The label-transfer result from class probabilities or vote shares (columns of ``proba`` are ``classes``).

    One table for every method (kNN, MLP, :func:`~scmamba.tl.match_cells`), so their results are interchangeable.
    """
    best = proba.argmax(axis=1)
    confidence = proba[np.arange(len(best)), best].astype(np.float64)
    label = pd.Categorical.from_codes(np.asarray(classes)[best], categories=categories)

    filtered_categories = list(categories) if unknown_label in categories else [*categories, unknown_label]
    filtered = pd.Categorical(np.asarray(label, dtype=object), categories=filtered_categories)
    filtered[confidence < min_confidence] = unknown_label
    return pd.DataFrame(
        {
            "label": label,
            "confidence": confidence,
            "uncertainty": 1.0 - confidence,
            "label_filtered": filtered,
        }
    )


def _embedding(data: AnnData | MuData, key: str, which: str) -> np.ndarray:
    if key not in data.obsm:
        raise ValueError(
            f"The {which} has no embedding `obsm[{key!r}]`; its obsm keys are {list(data.obsm.keys())}. "
            f"Store the embedding first, e.g. `data.obsm[{LATENT_KEY!r}] = model.get_latent_representation(data)`."
        )
    return as_embedding(data.obsm[key], f"{which}.obsm[{key!r}]")


def transfer_labels(
    reference: AnnData | MuData,
    query: AnnData | MuData,
    *,
    label_key: str,
    use_rep: str = LATENT_KEY,
    query_rep: str | None = None,
    method: Method = "knn",
    n_neighbors: int = 15,
    weights: Weights = "uniform",
    min_confidence: float = 0.5,
    unknown_label: str = "Unknown",
    key_added: str = "transferred",
    random_state: int = 0,
    mlp_kwargs: dict[str, Any] | None = None,
    copy: bool = False,
) -> pd.DataFrame | AnnData | MuData:
    """Transfer cell labels from an annotated reference to query cells through a shared embedding.

    The classifier (see :func:`transfer_labels_from_embeddings` for the two methods) is fitted on
    ``reference.obsm[use_rep]`` and ``reference.obs[label_key]`` and applied to ``query.obsm[query_rep]``, e.g.
    SCMAMBA embeddings of a new data set, or RNA-only query cells embedded with
    ``model.get_latent_representation(adata, modality="rna")``. Only ``query.obs`` is written (for a MuData,
    its global ``obs``); the reference is not modified.

    Parameters
    ----------
    reference
        Annotated cells (AnnData or MuData) with the embedding in ``obsm[use_rep]`` and labels in
        ``obs[label_key]``.
    query
        Cells to annotate (AnnData or MuData) with the embedding in ``obsm[query_rep]``.
    label_key
        Column of ``reference.obs`` with the labels; it must have no missing values.
    use_rep
        Key of the reference embedding in ``obsm``.
    query_rep
        Key of the query embedding in ``obsm`` (default: ``use_rep``).
    method
        ``"knn"`` (:class:`~sklearn.neighbors.KNeighborsClassifier`) or ``"mlp"`` (standardised inputs and
        :class:`~sklearn.neural_network.MLPClassifier`).
    n_neighbors
        Neighbours per query cell (``"knn"``).
    weights
        ``"uniform"`` or ``"distance"`` neighbour votes (``"knn"``).
    min_confidence
        Cells with a confidence below this get ``unknown_label`` in the ``_filtered`` column.
    unknown_label
        Label of low-confidence cells.
    key_added
        Prefix of the written ``obs`` columns.
    random_state
        Seed of the MLP.
    mlp_kwargs
        Keyword arguments for :class:`~sklearn.neural_network.MLPClassifier`.
    copy
        Return a modified copy of ``query`` instead of writing into it.

    Returns
    -------
    The :func:`transfer_labels_from_embeddings` table indexed by the query's ``obs_names`` or, with
    ``copy=True``, the annotated copy of ``query``. With ``p = f"{key_added}_{label_key}"``, these columns
    are written to ``query.obs``:

    ``p``
        Predicted label.
    ``f"{p}_confidence"``
        Confidence of the prediction.
    ``f"{p}_uncertainty"``
        ``1 - confidence``.
    ``f"{p}_filtered"``
        Predicted label, or ``unknown_label`` below ``min_confidence``.

    Examples
    --------
    >>> import scmamba
    >>> ref.obsm["X_scmamba"] = model.get_latent_representation(ref)  # doctest: +SKIP
    >>> query.obsm["X_scmamba"] = model.get_latent_representation(query)  # doctest: +SKIP
    >>> scmamba.tl.transfer_labels(ref, query, label_key="cell_type")  # doctest: +SKIP
    >>> query.obs["transferred_cell_type_filtered"]  # doctest: +SKIP
    """
    if label_key not in reference.obs.columns:
        raise ValueError(
            f"`label_key` {label_key!r} is not a column of the reference's obs; its columns are "
            f"{list(reference.obs.columns)}."
        )
    query_rep = use_rep if query_rep is None else query_rep
    ref_emb = _embedding(reference, use_rep, "reference")
    query_emb = _embedding(query, query_rep, "query")
    if ref_emb.shape[1] != query_emb.shape[1]:
        raise ValueError(
            f"reference.obsm[{use_rep!r}] has {ref_emb.shape[1]} dimensions but query.obsm[{query_rep!r}] has "
            f"{query_emb.shape[1]}; both must come from the same embedding space (the same model)."
        )
    labels = reference.obs[label_key]
    n_missing = int(labels.isna().sum())
    if n_missing:
        raise ValueError(
            f"{n_missing} of {reference.n_obs} reference cells have no label in obs[{label_key!r}] (NaN). Drop "
            f"them first, e.g. `reference = reference[reference.obs[{label_key!r}].notna()].copy()`."
        )
    result = transfer_labels_from_embeddings(
        ref_emb,
        labels,
        query_emb,
        method=method,
        n_neighbors=n_neighbors,
        weights=weights,
        min_confidence=min_confidence,
        unknown_label=unknown_label,
        random_state=random_state,
        mlp_kwargs=mlp_kwargs,
    )
    result.index = query.obs_names.copy()

    target = query.copy() if copy else query
    prefix = f"{key_added}_{label_key}"
    target.obs[prefix] = result["label"].values
    target.obs[f"{prefix}_confidence"] = result["confidence"].values
    target.obs[f"{prefix}_uncertainty"] = result["uncertainty"].values
    target.obs[f"{prefix}_filtered"] = result["label_filtered"].values
    return target if copy else result
