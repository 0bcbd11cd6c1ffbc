"""scmamba.pl: figures from a training history, paired embeddings (PCA of the shipped RNA) and label transfer."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from matplotlib.figure import Figure

from scmamba import pl, tl

md.set_options(pull_on_update=False)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def rna_pca(demo_mdata):
    rna = demo_mdata["rna"].copy()
    sc.pp.normalize_total(rna, target_sum=1e4)
    sc.pp.log1p(rna)
    sc.pp.pca(rna, n_comps=20, random_state=0)
    return rna


def _history(n_epochs: int = 6) -> dict[str, pd.DataFrame]:
    """A history in scvi-tools' format: one DataFrame per key, indexed by epoch, one column named like the key."""
    epochs = pd.Index(np.arange(n_epochs), name="epoch")
    decay = np.exp(-np.arange(n_epochs) / 3)
    values = {
        "train_loss_step": 5 * decay,
        "train_loss_epoch": 5 * decay + 0.5,
        "validation_loss": 5 * decay + 0.8,
        "infonce_train": 4 * decay + 0.4,
        "cosine_loss_train": decay + 0.1,
        "infonce_validation": 4 * decay + 0.6,
        "cosine_loss_validation": decay + 0.2,
        "elbo_train": np.zeros(n_epochs),
        "kl_local_train": np.zeros(n_epochs),
        # logged by the module beside the loss parts, but not losses: the cells contrasted and the temperature
        "n_contrast_train": np.full(n_epochs, 128.0),
        "n_contrast_validation": np.full(n_epochs, 128.0),
        "temperature_train": np.full(n_epochs, 0.07),
    }
    return {k: pd.DataFrame({k: v}, index=epochs) for k, v in values.items()}


def _line_labels(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines()]


def test_training_curves(tmp_path):
    history = _history()
    fig = pl.training_curves(history)
    assert isinstance(fig, Figure)
    total, parts = fig.axes
    assert _line_labels(total) == ["train_loss_epoch", "validation_loss"]
    assert sorted(_line_labels(parts)) == sorted(
        ["infonce_train", "cosine_loss_train", "infonce_validation", "cosine_loss_validation"]
    )
    np.testing.assert_allclose(total.get_lines()[0].get_ydata(), history["train_loss_epoch"].to_numpy().ravel())
    np.testing.assert_array_equal(total.get_lines()[0].get_xdata(), np.arange(6))

    class Model:  # anything with a `history`, like a trained SCMAMBA
        pass

    model = Model()
    model.history = history
    path = tmp_path / "curves.png"
    fig = pl.training_curves(model, keys=["infonce_train"], save=str(path))
    assert len(fig.axes) == 1 and _line_labels(fig.axes[0]) == ["infonce_train"]
    assert path.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="not_logged"):
        pl.training_curves(history, keys=["not_logged"])


@pytest.mark.filterwarnings("ignore:The set_bad function:PendingDeprecationWarning")  # inside scanpy's plotting
def test_umap_modalities(rna_pca, tmp_path):
    n = 300
    z_rna = rna_pca.obsm["X_pca"][:n]
    z_other = z_rna + np.random.default_rng(0).normal(0, 0.5, z_rna.shape)
    labels = rna_pca.obs["cell_type"].to_numpy()[:n]

    path = tmp_path / "umap.png"
    fig = pl.umap_modalities(z_rna, z_other, labels, modality_names=("RNA", "noisy RNA"), save=str(path))
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert sum(len(c.get_offsets()) for c in ax.collections) == 2 * n
    assert {t.get_text() for t in fig.axes[0].get_legend().get_texts()} == {"RNA", "noisy RNA"}
    assert path.read_bytes()[:8] == PNG_MAGIC

    fig = pl.umap_modalities(z_rna, z_other)
    assert len(fig.axes) == 1


def test_confusion_matrix(rna_pca, tmp_path):
    fig = pl.confusion_matrix(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    heat = fig.axes[0]
    np.testing.assert_allclose(heat.images[0].get_array(), [[0.5, 0.5], [0.0, 1.0]])
    assert [t.get_text() for t in heat.get_xticklabels()] == ["a", "b"]

    first = (rna_pca.obs["batch"].astype(str) < "09G").to_numpy()
    ref, query = rna_pca[first], rna_pca[~first]
    pred = tl.transfer_labels_from_embeddings(ref.obsm["X_pca"], ref.obs["cell_type"], query.obsm["X_pca"])
    path = tmp_path / "cm.png"
    fig = pl.confusion_matrix(query.obs["cell_type"], pred["label_filtered"], save=str(path))
    assert len(fig.axes) == 2  # heat map and colour bar
    heat = fig.axes[0]
    ticks = [t.get_text() for t in heat.get_yticklabels()]
    assert ticks[-1] == "Unknown" and set(query.obs["cell_type"].astype(str)) <= set(ticks)
    matrix = np.asarray(heat.images[0].get_array())
    present = np.isin(ticks, query.obs["cell_type"].astype(str).unique())
    np.testing.assert_allclose(matrix[present].sum(axis=1), 1.0)
    assert path.read_bytes()[:8] == PNG_MAGIC
