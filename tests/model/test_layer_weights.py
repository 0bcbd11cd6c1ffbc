"""The joint embedding weighs each layer by its split-half reliability: a layer of noise gets almost no weight."""

from __future__ import annotations

import mudata as md
import numpy as np
import pytest
import scvi
import torch
from conftest import TINY
from scipy import sparse

from scmamba import SCMAMBA
from scmamba.model._layer_weights import reliability_weights, thin


def test_thin_splits_every_count_and_leaves_the_input_alone():
    rng = np.random.default_rng(0)
    X = sparse.random(50, 80, density=0.2, random_state=0, format="csr", dtype=np.float32)
    X.data = np.ceil(X.data * 10)
    before = (X.data.copy(), X.indices.copy(), X.indptr.copy())
    a, b = thin(X, rng)
    np.testing.assert_array_equal((a + b).toarray(), X.toarray())
    for arr, old in zip((X.data, X.indices, X.indptr), before, strict=True):
        np.testing.assert_array_equal(arr, old)  # halves own their arrays: the input is not compacted
    assert 0.4 < a.sum() / X.sum() < 0.6


def test_reliability_weights_favour_the_reliable_layer():
    w = reliability_weights({"rna": 0.6, "atac": 0.05})
    assert w["rna"] > 0.95 and sum(w.values()) == pytest.approx(1.0)
    assert reliability_weights({"rna": 0.5, "atac": 0.5}) == {"rna": 0.5, "atac": 0.5}


@pytest.fixture(scope="module")
def noise_atac(demo_mdata):
    """800 demo cells whose ATAC layer is a panel of 600 peaks with ~10 random open peaks per cell (as a sparse peak
    panel of a small multiome): it says nothing about the cells."""
    m = demo_mdata[:800].copy()
    rng = np.random.default_rng(0)
    atac = m.mod["atac"][:, :600].copy()
    rows = np.repeat(np.arange(atac.n_obs), 10)
    cols = rng.integers(0, atac.n_vars, size=rows.size)
    noise = sparse.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=atac.shape)
    noise.data[:] = 1.0
    atac.X = noise
    m = md.MuData({"rna": m.mod["rna"], "atac": atac})
    m.obs["batch"] = m.mod["rna"].obs["batch"].to_numpy()
    m.obs["cell_type"] = m.mod["rna"].obs["cell_type"].to_numpy()
    return m


def test_noise_layer_gets_little_weight_and_joint_follows_rna(noise_atac):
    scvi.settings.seed = 0
    SCMAMBA.setup_mudata(noise_atac, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac"})
    model = SCMAMBA(noise_atac, **TINY)
    model.train(max_epochs=6, enable_progress_bar=False)
    w = model.layer_weights_
    assert model.layer_reliability_["atac"] < model.layer_reliability_["rna"]
    assert w["atac"] < 0.2 < w["rna"]
    # the weighted mean is taken before the donor correction (which moves each embedding by its own memberships)
    z = model.get_latent_representation(batch_corrected=False)
    z_rna = model.get_latent_representation(modality="rna", batch_corrected=False)
    z_atac = model.get_latent_representation(modality="atac", batch_corrected=False)
    expected = torch.nn.functional.normalize(torch.as_tensor(w["rna"] * z_rna + w["atac"] * z_atac), dim=-1).numpy()
    np.testing.assert_allclose(z, expected, atol=1e-5)
    # closer to the RNA embedding than the plain mean would be
    mean = z_rna + z_atac
    mean /= np.linalg.norm(mean, axis=1, keepdims=True)
    assert np.mean(np.sum(z * z_rna, 1)) > np.mean(np.sum(mean * z_rna, 1))


def test_weights_are_saved_and_kept_by_query_models(trained, tmp_path):
    model, ref, query = trained
    w = model.layer_weights_
    assert set(w) == {"rna", "atac"} and sum(w.values()) == pytest.approx(1.0)
    model.save(tmp_path / "m", overwrite=True)
    loaded = SCMAMBA.load(tmp_path / "m", ref)
    assert loaded.layer_weights_ == pytest.approx(w)
    np.testing.assert_allclose(loaded.get_latent_representation(), model.get_latent_representation(), atol=1e-5)
    q = query.copy()
    qmodel = SCMAMBA.load_query_data(q, model)
    qmodel.train(max_epochs=1, enable_progress_bar=False)
    assert qmodel.layer_weights_ == pytest.approx(w)


def test_fixed_and_equal_weights(demo_mdata):
    m = demo_mdata[:300].copy()
    SCMAMBA.setup_mudata(m, modalities={"rna_layer": "rna", "atac_layer": "atac"})
    fixed = SCMAMBA(m, **TINY, layer_weights={"rna": 3, "atac": 1})
    assert fixed.layer_weights_ == pytest.approx({"rna": 0.75, "atac": 0.25})
    fixed.train(max_epochs=1, enable_progress_bar=False)
    assert fixed.layer_weights_ == pytest.approx({"rna": 0.75, "atac": 0.25})  # not re-measured
    equal = SCMAMBA(m, **TINY, layer_weights="equal")
    equal.train(max_epochs=1, enable_progress_bar=False)
    assert equal.layer_weights_ == {"rna": 0.5, "atac": 0.5}
    with pytest.raises(ValueError, match="non-negative weight for each of"):
        SCMAMBA(m, **TINY, layer_weights={"rna": 1})
    with pytest.raises(ValueError, match="'reliability', 'equal' or a dict"):
        SCMAMBA(m, **TINY, layer_weights="wnn")
