"""Figures for scmamba: training curves, UMAP of both omics layers, confusion matrix of transferred labels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from .._embeddings import as_labels, stack_modalities, stacked_labels

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike

#: Total-loss curves drawn by :func:`training_curves` when present.
TOTAL_LOSS_KEYS: tuple[str, ...] = ("train_loss", "train_loss_epoch", "validation_loss")
#: scvi-tools' ELBO bookkeeping entries, which are not loss parts of this model.
_SCVI_ELBO_PREFIXES: tuple[str, ...] = ("elbo_", "reconstruction_loss_", "kl_local_", "kl_global_")
#: Entries the module logs beside its loss parts that are not losses (a count of cells, the InfoNCE temperature).
_NOT_LOSS_PREFIXES: tuple[str, ...] = ("n_contrast_", "temperature_")


def _finish(fig: Figure, show: bool, save: str | None) -> Figure:
    import matplotlib.pyplot as plt

    if save is not None:
        fig.savefig(save, dpi=150, bbox_inches="tight")
    if show:
        plt.show()
    return fig


def _history_series(history: Mapping[str, Any], key: str) -> pd.Series:
    frame = history[key]
    if isinstance(frame, pd.DataFrame):
        series = frame.iloc[:, 0] if key not in frame.columns else frame[key]
    else:
        series = pd.Series(np.asarray(frame).ravel())
    return pd.to_numeric(series, errors="coerce")


def _loss_part_keys(history: Mapping[str, Any]) -> list[str]:
    parts = []
    for key in history:
        if key in TOTAL_LOSS_KEYS or key.startswith(_SCVI_ELBO_PREFIXES + _NOT_LOSS_PREFIXES):
            continue
        if key.endswith(("_train", "_validation")):
            parts.append(key)
    return parts


def training_curves(
    model_or_history: Any,
    keys: Sequence[str] | None = None,
    *,
    show: bool = False,
    save: str | None = None,
) -> Figure:
    """Loss curves over epochs from a trained model's ``history``.

    The left panel shows the total losses (``train_loss``, or ``train_loss_epoch`` as Lightning names it, and
    ``validation_loss`` when there were validation cells); the right panel, when
    present, the logged loss parts (``infonce_train``, ``cosine_loss_train`` and their ``_validation``
    counterparts), validation dashed. scvi-tools' ELBO bookkeeping entries (``elbo_*``,
    ``reconstruction_loss_*``, ``kl_*``) and the entries that are not losses (``n_contrast_*``, the cells
    contrasted per step, and ``temperature_*``) are skipped; pass them in ``keys`` to draw them. With ``keys``
    exactly those entries are drawn in one panel.

    Parameters
    ----------
    model_or_history
        A trained :class:`~scmamba.SCMAMBA` (or any scvi-tools model) or its ``history``: a dict of DataFrames
        indexed by epoch, one column each.
    keys
        History entries to draw (default: the total losses and loss parts present).
    show
        Call :func:`matplotlib.pyplot.show`.
    save
        Path to save the figure to (format from the extension).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    import matplotlib.pyplot as plt

    history = getattr(model_or_history, "history", model_or_history)
    if history is None or not hasattr(history, "keys"):
        raise ValueError("Expected a trained model or its `history` (a dict of DataFrames); the model has none.")
    if keys is not None:
        missing = [k for k in keys if k not in history]
        if missing:
            raise ValueError(f"History has no entries {missing}; available are {list(history.keys())}.")
        panels = [("loss", list(keys))]
    else:
        totals = [k for k in TOTAL_LOSS_KEYS if k in history]
        parts = _loss_part_keys(history)
        panels = [(title, p) for title, p in (("total loss", totals), ("loss parts", parts)) if p]
        if not panels:
            raise ValueError(f"History has no loss entries to draw; available are {list(history.keys())}.")

    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.8), squeeze=False)
    for ax, (title, panel) in zip(axes[0], panels, strict=True):
        for key in panel:
            series = _history_series(history, key)
            style = "--" if "validation" in key else "-"
            ax.plot(series.index.to_numpy(), series.to_numpy(), style, marker="o", markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title(title)
        ax.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return _finish(fig, show, save)


def umap_modalities(
    z_a: ArrayLike,
    z_b: ArrayLike,
    labels: ArrayLike | None = None,
    *,
    modality_names: tuple[str, str] = ("RNA", "ATAC"),
    n_neighbors: int = 15,
    random_state: int = 0,
    show: bool = False,
    save: str | None = None,
) -> Figure:
    """UMAP of both omics layers' embeddings together, coloured by omics layer and by cell type.

    The two embeddings are stacked into ``n_a + n_b`` observations (see
    :func:`scmamba.metrics.stack_modalities`); :func:`scanpy.pp.neighbors` and :func:`scanpy.tl.umap` run on a
    private AnnData. Well-aligned layers mix in the first panel while cell types stay apart in the second.

    Parameters
    ----------
    z_a
        First layer's embedding, e.g. ``model.get_latent_representation(modality="rna")``.
    z_b
        Second layer's embedding, same number of dimensions.
    labels
        Cell type per row of ``z_a`` (repeated for ``z_b`` when both have the same number of rows) or per
        stacked row. Without labels only the omics-layer panel is drawn.
    modality_names
        Names of the two layers in the legend.
    n_neighbors
        Neighbours of the UMAP graph.
    random_state
        Seed of the UMAP layout.
    show
        Call :func:`matplotlib.pyplot.show`.
    save
        Path to save the figure to.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (one panel, or two with ``labels``).
    """
    import matplotlib.pyplot as plt
    import scanpy as sc
    from anndata import AnnData

    z, omics = stack_modalities(z_a, z_b, names=modality_names)
    obs = pd.DataFrame({"omics layer": pd.Categorical(omics, categories=list(modality_names))})
    obs.index = obs.index.astype(str)
    colors = ["omics layer"]
    if labels is not None:
        lab = stacked_labels(labels, z.shape[0], np.asarray(z_a).shape[0])
        obs["cell type"] = pd.Categorical(pd.Series(lab).astype(str))
        colors.append("cell type")
    internal = AnnData(obs=obs, obsm={"X_rep": z})
    sc.pp.neighbors(internal, n_neighbors=min(n_neighbors, z.shape[0] - 1), use_rep="X_rep", random_state=0)
    sc.tl.umap(internal, random_state=random_state)

    fig, axes = plt.subplots(1, len(colors), figsize=(6.0 * len(colors), 5.0), squeeze=False)
    for ax, color in zip(axes[0], colors, strict=True):
        sc.pl.umap(internal, color=color, ax=ax, show=False, frameon=False, title=color)
    fig.tight_layout()
    return _finish(fig, show, save)


def confusion_matrix(
    true: ArrayLike,
    predicted: ArrayLike,
    *,
    normalize: Literal["true", "pred", "all"] | None = "true",
    labels: Sequence[Any] | None = None,
    include_values: bool | None = None,
    cmap: str = "viridis",
    show: bool = False,
    save: str | None = None,
) -> Figure:
    """Heat map of true against predicted labels (e.g. after :func:`scmamba.tl.transfer_labels`).

    Counts come from :func:`sklearn.metrics.confusion_matrix` and are drawn with
    :class:`sklearn.metrics.ConfusionMatrixDisplay`: rows are true labels, columns predicted ones.

    Parameters
    ----------
    true
        True label per cell.
    predicted
        Predicted label per cell (may contain labels absent from ``true``, such as ``"Unknown"``).
    normalize
        ``"true"`` (rows sum to 1), ``"pred"`` (columns sum to 1), ``"all"`` or None (counts).
    labels
        Labels to show, in order (default: the categories of ``true`` if categorical, else the sorted labels of
        ``true``, followed by predicted labels not in ``true``).
    include_values
        Write the values into the cells (default: only with at most 12 labels).
    cmap
        Colour map.
    show
        Call :func:`matplotlib.pyplot.show`.
    save
        Path to save the figure to.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (heat map and colour bar).
    """
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    pred = np.asarray(predicted, dtype=object)
    truth = as_labels(np.asarray(true, dtype=object), pred.shape[0], "true")
    if pred.ndim != 1:
        raise ValueError(f"`predicted` must be 1-D, got shape {pred.shape}.")
    if labels is None:
        if isinstance(getattr(true, "dtype", None), pd.CategoricalDtype):
            base = [c for c in true.dtype.categories if c in set(truth)]
        else:
            base = sorted(set(truth), key=str)
        seen = set(base)
        extra = sorted({p for p in pred if p not in seen}, key=str)
        labels = [*base, *extra]
    labels = list(labels)
    cm = sk_confusion_matrix(truth, pred, labels=labels, normalize=normalize)
    if include_values is None:
        include_values = len(labels) <= 12
    size = max(4.0, 0.35 * len(labels) + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    ConfusionMatrixDisplay(cm, display_labels=[str(lab) for lab in labels]).plot(
        ax=ax,
        cmap=cmap,
        include_values=include_values,
        xticks_rotation="vertical",
        values_format=".2f" if normalize is not None else "d",
        colorbar=True,
    )
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    fig.tight_layout()
    return _finish(fig, show, save)
