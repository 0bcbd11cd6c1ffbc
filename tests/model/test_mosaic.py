"""Mosaic MuData: paired cells plus cells measured in one layer only, trained on and embedded in one space."""

from __future__ import annotations

import mudata as md
import numpy as np
import pandas as pd
import pytest
import scvi
from conftest import TINY, dropout_rates

from scmamba import SCMAMBA

MODS = {"rna_layer": "rna", "atac_layer": "atac"}
N_CELLS = 600


def _mosaic(m, seed=0):
    """``m``'s cells split at random into thirds: paired, RNA-only (ATAC dropped), ATAC-only (RNA dropped)."""
    group = np.random.default_rng(seed).permutation(np.arange(m.n_obs) % 3)  # 0 paired, 1 RNA only, 2 ATAC only
    out = md.MuData({"rna": m["rna"][group != 2].copy(), "atac": m["atac"][group != 1].copy()})
    out = out[m.obs_names].copy()  # MuData puts the union of cells in modality order; keep the original order
    out.obs = m.obs.loc[out.obs_names, ["cell_type", "cell_type_coarse", "batch"]].copy()
    return out, pd.Series(np.array(["rna+atac", "rna", "atac"])[group], index=m.obs_names)


@pytest.fixture(scope="module")
def mosaic_model(demo_mdata):
    """A tiny model trained 2 epochs on a mosaic of 600 demo cells; the fully paired cells; the true groups."""
    scvi.settings.seed = 0
    paired = demo_mdata[:N_CELLS].copy()
    mosaic, groups = _mosaic(paired)
    SCMAMBA.setup_mudata(mosaic, batch_key="batch", modalities=MODS)
    model = SCMAMBA(mosaic, **TINY)
    model.train(max_epochs=2, batch_size=100, enable_progress_bar=False)
    return model, mosaic, paired, groups


def test_setup_reports_the_mosaic(demo_mdata, caplog):
    mosaic, _ = _mosaic(demo_mdata[:N_CELLS].copy())
    with caplog.at_level("INFO", logger="scmamba"):
        SCMAMBA.setup_mudata(mosaic, batch_key="batch", modalities=MODS)
    counts = SCMAMBA._get_most_recent_anndata_manager(mosaic).mosaic.counts()
    assert counts == {"rna+atac": 200, "rna": 200, "atac": 200}
    assert "600 cells: 200 paired (rna+atac), 200 rna only, 200 atac only" in caplog.text
    assert "Mosaic data, 600 cells" in SCMAMBA(mosaic, **TINY)._model_summary_string


def test_minibatches_carry_masks_only_on_mosaic_data(demo_mdata):
    paired = demo_mdata[:60].copy()
    SCMAMBA.setup_mudata(paired, modalities=MODS)
    tensors = SCMAMBA._get_most_recent_anndata_manager(paired).create_torch_dataset()[np.arange(10)]
    assert not any(k.startswith("observed_") for k in tensors)  # fully paired data: exactly as before

    mosaic, groups = _mosaic(paired)
    SCMAMBA.setup_mudata(mosaic, modalities=MODS)
    tensors = SCMAMBA._get_most_recent_anndata_manager(mosaic).create_torch_dataset()[np.arange(30)]
    np.testing.assert_array_equal(tensors["observed_rna"].ravel(), (groups != "atac").values[:30])
    np.testing.assert_array_equal(tensors["observed_atac"].ravel(), (groups != "rna").values[:30])
    # an unmeasured layer is an empty row
    atac_rows = np.asarray(tensors["atac"].to_dense() if hasattr(tensors["atac"], "to_dense") else tensors["atac"])
    assert not atac_rows[(groups == "rna").values[:30]].any()


def test_every_cell_gets_a_joint_embedding(mosaic_model):
    model, mosaic, _, groups = mosaic_model
    z = model.get_latent_representation()
    assert z.shape == (N_CELLS, TINY["n_latent"]) and np.isfinite(z).all()
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    layers = model.get_latent_layers()
    assert layers.index.equals(mosaic.obs_names)
    assert (layers.astype(str) == groups.values).all()
    assert layers.value_counts().to_dict() == {"rna+atac": 200, "rna": 200, "atac": 200}


def test_single_modality_rows_are_nan_for_unmeasured_cells(mosaic_model):
    model, _, _, groups = mosaic_model
    with pytest.warns(UserWarning, match="200 of the 600 cells embedded were not measured in 'rna'"):
        z_rna = model.get_latent_representation(modality="rna")
    assert np.isnan(z_rna[(groups == "atac").values]).all()
    assert np.isfinite(z_rna[(groups != "atac").values]).all()
    layers = model.get_latent_layers(modality="rna")
    assert ((layers == "none") == (groups == "atac").values).all()
    assert set(layers.cat.categories) == {"rna", "none"}


def test_joint_of_a_single_layer_cell_is_that_layer(mosaic_model):
    """The empty row of an unmeasured layer must not enter the joint embedding (nor the measured layer's)."""
    model, _, paired, groups = mosaic_model
    # before the donor correction: AnnData cells carry no batch, and the correction moves each embedding by its own
    # cluster memberships (so a weighted mean of corrected layers is not the corrected joint)
    z = model.get_latent_representation(batch_corrected=False)
    with pytest.warns(UserWarning, match="not measured"):
        z_rna, z_atac = (model.get_latent_representation(modality=m, batch_corrected=False) for m in ("rna", "atac"))
    rna_only, atac_only = (groups == "rna").values, (groups == "atac").values
    np.testing.assert_allclose(z[rna_only], z_rna[rna_only], atol=1e-6)
    np.testing.assert_allclose(z[atac_only], z_atac[atac_only], atol=1e-6)
    # a layer's embedding does not depend on which other cells share the minibatch (paired, or the AnnData path)
    np.testing.assert_allclose(
        z_rna[~atac_only], model.get_latent_representation(paired["rna"][~atac_only].copy(), modality="rna"), atol=1e-5
    )
    # and the joint embedding of paired cells is the normalised weighted mean of their two layers
    both = (groups == "rna+atac").values
    w = model.layer_weights_
    mean = w["rna"] * z_rna[both] + w["atac"] * z_atac[both]
    np.testing.assert_allclose(z[both], mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=1e-5)


def test_mosaic_training_uses_every_cell_in_its_own_layer(mosaic_model):
    """Single-layer cells reach the loss: their reconstruction terms are logged, contrast uses pairs only."""
    model, *_ = mosaic_model
    history = model.history
    for key in ("rec_rna_to_rna_train", "rec_atac_to_atac_train", "rec_rna_to_atac_train", "n_contrast_train"):
        assert key in history, sorted(history)
    # 500 training cells of which a third paired: far fewer contrasted cells than minibatch cells
    assert float(history["n_contrast_train"].iloc[-1, 0]) < 60


def test_save_load_mosaic(mosaic_model, tmp_path):
    model, mosaic, _, _ = mosaic_model
    z = model.get_latent_representation()
    model.save(tmp_path / "m", save_anndata=True)
    loaded = SCMAMBA.load(tmp_path / "m")
    assert loaded.adata_manager.mosaic.counts() == {"rna+atac": 200, "rna": 200, "atac": 200}
    np.testing.assert_allclose(loaded.get_latent_representation(), z, atol=1e-5)
    onto = SCMAMBA.load(tmp_path / "m", adata=mosaic.copy())
    np.testing.assert_allclose(onto.get_latent_representation(), z, atol=1e-5)


def test_mosaic_query(mosaic_model, demo_mdata):
    """A mosaic query: prepare_query_mudata keeps the mosaic, load_query_data embeds it like the reference."""
    model, *_ = mosaic_model
    query, _ = _mosaic(demo_mdata[N_CELLS : N_CELLS + 90].copy(), seed=1)
    query["atac"].obs["batch"] = query["rna"].obs["batch"] = "new"
    prepared = SCMAMBA.prepare_query_mudata(query, model, inplace=False)
    assert prepared.obs_names.equals(query.obs_names)
    assert prepared["rna"].n_obs == 60 and prepared["atac"].n_obs == 60
    # the encoders do not use the batch: before the donor correction (of the reference's batches) they embed alike
    z = model.get_latent_representation(prepared, batch_corrected=False)
    assert z.shape == (90, TINY["n_latent"]) and np.isfinite(z).all()
    prepared.obs["batch"] = "new"
    qmodel = SCMAMBA.load_query_data(prepared, model)
    np.testing.assert_allclose(qmodel.get_latent_representation(batch_corrected=False), z, atol=1e-5)
    assert qmodel.get_latent_layers().value_counts().to_dict() == {"rna+atac": 30, "rna": 30, "atac": 30}
    qmodel.train(max_epochs=1, batch_size=30, enable_progress_bar=False)  # fine-tuning on a mosaic query runs


def test_match_cells_with_a_model_on_a_mosaic(mosaic_model):
    from scmamba import tl

    model, mosaic, _, groups = mosaic_model
    m = tl.match_cells(mosaic, mosaic, model=model, k=1)  # every cell's best match in the shared space is itself
    np.testing.assert_array_equal(m.indices[:, 0], np.arange(N_CELLS))
    assert m.query_names.equals(mosaic.obs_names)
    with pytest.warns(UserWarning, match="not measured"), pytest.raises(ValueError, match="200 of the 600 query rows"):
        tl.match_cells(mosaic, mosaic, model=model, query_modality="rna")
    rna, atac = (groups == "rna").values, (groups == "atac").values
    m = tl.match_cells(mosaic[atac], mosaic[rna], model=model, k=5, ref_labels="cell_type_coarse")
    assert m.labels.index.equals(mosaic.obs_names[atac]) and m.labels["label"].notna().all()


def test_selections_without_pairs_or_without_a_layer_embed(mosaic_model):
    """A trained model embeds any selection of a mosaic: the ATAC-only cells alone, or the unpaired cells."""
    model, mosaic, _, groups = mosaic_model
    z = model.get_latent_representation()
    for keep in ((groups == "atac").values, (groups != "rna+atac").values):
        part = mosaic[keep].copy()
        np.testing.assert_allclose(model.get_latent_representation(part), z[keep], atol=1e-5)
        prepared = SCMAMBA.prepare_query_mudata(part, model, inplace=False)
        np.testing.assert_allclose(model.get_latent_representation(prepared), z[keep], atol=1e-5)
    # training data still needs pairs and cells in every layer
    with pytest.raises(ValueError, match="has no cells"):
        SCMAMBA.setup_mudata(mosaic[(groups == "atac").values].copy(), modalities=MODS)


def test_default_encoder_dropout_follows_the_paired_cells(demo_mdata, monkeypatch, tmp_path):
    """``dropout=None`` counts the cells measured in both layers, not all cells; the rate chosen is saved."""
    from scmamba.model import _presets

    config = {k: v for k, v in TINY.items() if k != "dropout"} | {"encoder": "mamba"}  # Mamba2 encoders on both
    mosaic, _ = _mosaic(demo_mdata[:N_CELLS].copy())  # 600 cells, 200 of them paired
    SCMAMBA.setup_mudata(mosaic, batch_key="batch", modalities=MODS)
    monkeypatch.setattr(_presets, "FEW_PAIRED_CELLS", 300)  # between the paired cells and all cells
    few = SCMAMBA(mosaic, **config)
    high = _presets.ENCODER_DROPOUT_FEW_PAIRS
    assert dropout_rates(few) == {"rna": [high], "atac": [high]}
    paired = demo_mdata[:N_CELLS].copy()  # the same 600 cells, all paired
    SCMAMBA.setup_mudata(paired, batch_key="batch", modalities=MODS)
    many = SCMAMBA(paired, **config)
    assert dropout_rates(many) == {"rna": [_presets.ENCODER_DROPOUT], "atac": [_presets.ENCODER_DROPOUT]}
    # a given rate is kept
    assert dropout_rates(SCMAMBA(paired, **config, dropout=0.3)) == {"rna": [0.3], "atac": [0.3]}
    # the rate chosen is what the model saves: loading it with other data does not choose again
    few.save(tmp_path / "few", save_anndata=False)
    monkeypatch.setattr(_presets, "FEW_PAIRED_CELLS", 100)  # chosen again, 600 paired cells would get the lower rate
    assert few.init_params_["non_kwargs"]["dropout"] == _presets.ENCODER_DROPOUT_FEW_PAIRS
    loaded = SCMAMBA.load(str(tmp_path / "few"), adata=paired)
    assert dropout_rates(loaded) == dropout_rates(few)
