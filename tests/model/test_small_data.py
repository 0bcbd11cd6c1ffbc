"""Small data and ``train_size=1.0`` train as in scvi-tools; the history holds only meaningful keys."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TINY

import scmamba
from scmamba import SCMAMBA

MODS = {"rna_layer": "rna", "atac_layer": "atac"}
VAE_KEYS = ("elbo", "reconstruction_loss", "kl_local", "kl_global")


def _model(demo_mdata, n):
    m = demo_mdata[:n].copy()
    SCMAMBA.setup_mudata(m, modalities=MODS)
    return SCMAMBA(m, **TINY)


def test_train_size_one_has_no_validation_loop(demo_mdata):
    model = _model(demo_mdata, 40)
    model.train(max_epochs=2, train_size=1.0, batch_size=16, enable_progress_bar=False)
    hist = model.history
    assert len(hist["train_loss"]) == 2 and "validation_loss" not in hist
    assert model.get_latent_representation().shape == (40, 16)


def test_default_trains_on_every_cell(demo_mdata):
    model = _model(demo_mdata, 40)
    model.train(max_epochs=1, batch_size=8, enable_progress_bar=False)
    assert model.train_indices.size == 40 and model.validation_indices.size == 0
    assert "validation_loss" not in model.history
    total = scmamba.pl.training_curves(model).axes[0]  # the training loss is drawn without a validation loss
    assert [line.get_label() for line in total.get_lines()] == ["train_loss"]


@pytest.mark.parametrize("kwargs", [{"early_stopping": True}, {"validation_size": 0.1}])
def test_validation_cells_where_asked_for(demo_mdata, kwargs):
    model = _model(demo_mdata, 40)
    model.train(max_epochs=1, batch_size=8, enable_progress_bar=False, **kwargs)
    assert model.train_indices.size == 36 and model.validation_indices.size == 4
    assert "validation_loss" in model.history


@pytest.mark.parametrize("n", [3, 12])
def test_a_handful_of_cells_trains(demo_mdata, n):
    model = _model(demo_mdata, n)
    model.train(max_epochs=2, enable_progress_bar=False)
    assert np.isfinite(model.history["train_loss"].to_numpy(dtype=float)).all()


def test_one_cell_last_minibatch_does_not_crash(demo_mdata):
    model = _model(demo_mdata, 33)  # 33 training cells in minibatches of 16: the last one holds a single cell
    with pytest.warns(UserWarning, match="1 cell"):
        model.train(max_epochs=1, train_size=1.0, batch_size=16, datasplitter_kwargs={"drop_last": False},
                    enable_progress_bar=False)  # fmt: skip
    assert np.isfinite(model.history["train_loss"].to_numpy(dtype=float)).all()


def test_too_few_cells_is_a_clear_error(demo_mdata):
    model = _model(demo_mdata, 2)
    with pytest.raises(ValueError, match="at least 2 training cells"):
        model.train(max_epochs=1, train_size=0.5, enable_progress_bar=False)


def test_history_has_no_always_zero_vae_keys(demo_mdata):
    model = _model(demo_mdata, 60)
    model.train(max_epochs=1, batch_size=20, train_size=0.9, enable_progress_bar=False)
    keys = set(model.history)
    assert not [k for k in keys if k.startswith(VAE_KEYS)], sorted(keys)
    assert {"train_loss", "validation_loss", "infonce_train", "infonce_validation", "cosine_loss_train"} <= keys


def test_default_minibatches_hold_every_cell_each_epoch(demo_mdata):
    # 500 cells: 4 minibatches of 125 (with exactly 128 and drop_last, 116 cells would sit out every epoch)
    m = demo_mdata[:500].copy()
    SCMAMBA.setup_mudata(m, modalities={"rna_layer": "rna", "atac_layer": "atac"})
    model = SCMAMBA(m, **TINY, layer_weights="equal")
    model.train(max_epochs=2, enable_progress_bar=False)
    assert model.history["n_contrast_train"].to_numpy().ravel().tolist() == [125.0, 125.0]
    assert model.trainer.global_step == 8


def test_default_training_length_follows_the_cells(demo_mdata):
    from scmamba.model._presets import default_max_epochs

    assert [default_max_epochs(n) for n in (40, 500, 1000, 2500, 100_000)] == [10, 10, 20, 50, 50]
    m = demo_mdata[:500].copy()
    SCMAMBA.setup_mudata(m, modalities={"rna_layer": "rna", "atac_layer": "atac"})
    model = SCMAMBA(m, **TINY, layer_weights="equal")
    model.train(enable_progress_bar=False)
    assert len(model.history["train_loss"]) == 10 and model.trainer.global_step == 40
