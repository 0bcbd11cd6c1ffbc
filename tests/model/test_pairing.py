"""Cells are paired by ``obs_names`` across modalities, and results come back in ``mdata.obs_names`` order.

The modalities of a MuData built from separate files often hold the same cells in different row orders; every
entry point must pair them by name, never by position.
"""

from __future__ import annotations

import mudata as md
import muon as mu
import numpy as np
import pytest
import scvi
from conftest import TINY

from scmamba import SCMAMBA

MODS = {"rna_layer": "rna", "atac_layer": "atac"}


@pytest.fixture(scope="module")
def model_400(demo_mdata):
    """A tiny model trained on 400 demo cells, and its embeddings of those cells (modalities in the same order)."""
    scvi.settings.seed = 0
    m = demo_mdata[:400].copy()
    SCMAMBA.setup_mudata(m, modalities=MODS)
    model = SCMAMBA(m, **TINY)
    model.train(max_epochs=1, batch_size=100, enable_progress_bar=False)
    z = {k: model.get_latent_representation(modality=k) for k in ("joint", "rna", "atac")}
    return model, m, z


def _shuffled(m, seed=1, rna_too=False):
    """The same cells with the ATAC rows (and optionally the RNA rows) in another order."""
    rng = np.random.default_rng(seed)
    rna = m["rna"][rng.permutation(m.n_obs)].copy() if rna_too else m["rna"].copy()
    return md.MuData({"rna": rna, "atac": m["atac"][rng.permutation(m.n_obs)].copy()})


def _expected(z, m, q):
    """Rows of the reference embeddings in ``q.obs_names`` order."""
    pos = m.obs_names.get_indexer(q.obs_names)
    assert (pos >= 0).all()
    return {k: v[pos] for k, v in z.items()}


@pytest.mark.parametrize("rna_too", [False, True])
def test_get_latent_representation_pairs_by_name(model_400, rna_too):
    model, m, z = model_400
    q = _shuffled(m, rna_too=rna_too)
    assert not np.array_equal(q["atac"].obs_names, q.obs_names)  # rows really are in another order
    expected = _expected(z, m, q)
    for k in ("joint", "rna", "atac"):
        np.testing.assert_allclose(model.get_latent_representation(q, modality=k), expected[k], atol=1e-5)
    # a subset by indices refers to rows of q.obs_names
    np.testing.assert_allclose(
        model.get_latent_representation(q, modality="atac", indices=[3, 0, 7]), expected["atac"][[3, 0, 7]], atol=1e-5
    )


def test_anndata_path_keeps_the_anndatas_order(model_400):
    model, m, z = model_400
    q = _shuffled(m)
    pos = m.obs_names.get_indexer(q["atac"].obs_names)
    np.testing.assert_allclose(model.get_latent_representation(q["atac"], modality="atac"), z["atac"][pos], atol=1e-5)


def test_load_prepare_and_query_pair_by_name(model_400, tmp_path):
    model, m, z = model_400
    model.save(tmp_path / "m", overwrite=True)
    q = _shuffled(m, rna_too=True)
    expected = _expected(z, m, q)
    loaded = SCMAMBA.load(str(tmp_path / "m"), q)
    np.testing.assert_allclose(loaded.get_latent_representation(), expected["joint"], atol=1e-5)

    q = _shuffled(m, seed=2, rna_too=True)
    expected = _expected(z, m, q)
    prepared = SCMAMBA.prepare_query_mudata(q, model, inplace=False)
    for mod in prepared.mod.values():
        assert np.array_equal(mod.obs_names, q.obs_names)  # every modality in q.obs_names order
    assert np.array_equal(prepared.obs_names, q.obs_names)
    np.testing.assert_allclose(model.get_latent_representation(prepared), expected["joint"], atol=1e-5)

    q = _shuffled(m, seed=3)
    qmodel = SCMAMBA.load_query_data(q, model)
    np.testing.assert_allclose(qmodel.get_latent_representation(), _expected(z, m, q)["joint"], atol=1e-5)


def test_training_minibatches_pair_by_name(demo_mdata):
    m = demo_mdata[:200].copy()
    m.obs["batch"] = m["rna"].obs["batch"].astype(str).values
    q = _shuffled(m, seed=4)
    q.mod["rna"].obs["batch"] = m["rna"].obs["batch"].astype(str).values
    q.mod["atac"].obs["batch"] = m["atac"].obs.loc[q["atac"].obs_names, "batch"].astype(str).values
    SCMAMBA.setup_mudata(q, batch_key="batch", modalities={**MODS, "batch_key": "atac"})
    manager = SCMAMBA._get_most_recent_anndata_manager(q)
    rows = [5, 0, 17, 199]
    tensors = manager.create_torch_dataset()[rows]
    names = q.obs_names[rows]
    np.testing.assert_array_equal(tensors["X"], m["rna"][names].X.toarray())
    np.testing.assert_array_equal(tensors["atac"], m["atac"][names].X.toarray())
    codes = manager.get_state_registry("batch")["categorical_mapping"]
    assert list(codes[tensors["batch"].ravel()]) == list(m.obs.loc[names, "batch"])
    model = SCMAMBA(q, **TINY)
    model.train(max_epochs=1, batch_size=50, enable_progress_bar=False)
    assert np.isfinite(model.history["train_loss"].to_numpy(dtype=float)).all()


def test_backed_file_with_shuffled_rows(model_400, tmp_path):
    model, m, z = model_400
    q = _shuffled(m, seed=5)
    q.write_h5mu(tmp_path / "q.h5mu")
    backed = md.read_h5mu(tmp_path / "q.h5mu", backed="r")
    expected = _expected(z, m, backed)
    np.testing.assert_allclose(model.get_latent_representation(backed), expected["joint"], atol=1e-5)


def test_missing_cells_are_a_mosaic_and_intersect_obs_still_pairs(demo_mdata, caplog):
    """Cells missing from a registered modality are cells measured without it: accepted and reported."""
    m = demo_mdata[:120].copy()
    mosaic = md.MuData({"rna": m["rna"].copy(), "atac": m["atac"][10:].copy()})
    with caplog.at_level("INFO", logger="scmamba"):
        SCMAMBA.setup_mudata(mosaic, modalities=MODS)
    assert "Mosaic MuData: 120 cells: 110 paired (rna+atac), 10 rna only" in caplog.text
    mu.pp.intersect_obs(mosaic)  # users who want the paired cells only keep doing this
    SCMAMBA.setup_mudata(mosaic, modalities=MODS)
    assert mosaic.n_obs == 110
    assert not SCMAMBA._get_most_recent_anndata_manager(mosaic).mosaic.is_mosaic


def test_extra_modality_on_a_subset_of_cells(demo_mdata):
    """An unregistered modality (e.g. hashtags) measured on some cells does not block set-up or drop paired cells."""
    m = demo_mdata[:120].copy()
    hto = m["rna"][:60, :3].copy()
    hto.var_names = ["hto1", "hto2", "hto3"]
    with_hto = md.MuData({"rna": m["rna"].copy(), "atac": m["atac"].copy(), "hto": hto})
    SCMAMBA.setup_mudata(with_hto, modalities=MODS)
    model = SCMAMBA(with_hto, **TINY)
    model.train(max_epochs=1, batch_size=40, enable_progress_bar=False)
    assert model.get_latent_representation().shape == (120, 16)

    # cells missing from a registered modality: a mosaic, whatever the extra modality holds
    partial = md.MuData({"rna": m["rna"].copy(), "atac": m["atac"][10:].copy(), "hto": hto})
    SCMAMBA.setup_mudata(partial, modalities=MODS)
    assert SCMAMBA._get_most_recent_anndata_manager(partial).mosaic.counts() == {"rna+atac": 110, "rna": 10}

    # cells in the extra modality only are in no registered modality: an error whose fix keeps the others
    extra = hto[:20].copy()
    extra.obs_names = [f"hto_only_{i}" for i in range(20)]
    orphan = md.MuData({"rna": m["rna"].copy(), "atac": m["atac"].copy(), "hto": extra})
    with pytest.raises(ValueError, match=r"20 of the 140 cells.*none of the registered modalities.*\['hto'\] only"):
        SCMAMBA.setup_mudata(orphan, modalities=MODS)
    fixed = orphan[
        orphan.obs_names.isin(orphan["rna"].obs_names) | orphan.obs_names.isin(orphan["atac"].obs_names)
    ].copy()  # the fix the message gives
    SCMAMBA.setup_mudata(fixed, modalities=MODS)
    assert fixed.n_obs == 120
