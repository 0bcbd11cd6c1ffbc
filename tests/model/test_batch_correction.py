"""SCMAMBA(batch_correction='harmony'): donors mixed in every embedding of the registered batches, kept on save."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scvi
from conftest import TINY
from harmonypy import compute_lisi

from scmamba import SCMAMBA


def _ilisi(z, batch) -> float:
    return float(np.median(compute_lisi(z, pd.DataFrame({"b": np.asarray(batch)}), ["b"])))


def test_trained_model_mixes_donors_in_joint_and_layer_embeddings(trained):
    model, ref, _ = trained
    assert model.module.latent_correction.fitted
    batch = ref.obs["batch"].to_numpy()
    for modality in ("joint", "rna", "atac"):
        corrected = model.get_latent_representation(modality=modality)
        before = model.get_latent_representation(modality=modality, batch_corrected=False)
        assert _ilisi(corrected, batch) > _ilisi(before, batch) + 0.05, modality
        np.testing.assert_allclose(np.linalg.norm(corrected, axis=1), 1.0, atol=1e-4)


def test_anndata_cells_carry_no_batch_and_are_not_corrected(trained):
    model, _, query = trained
    rna = query.mod["rna"]
    from_anndata = model.get_latent_representation(rna, modality="rna")
    registered = query.copy()
    SCMAMBA.setup_mudata(registered, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac"})
    uncorrected = model.get_latent_representation(registered, modality="rna", batch_corrected=False)
    np.testing.assert_allclose(from_anndata, uncorrected, atol=1e-5)


def test_save_load_keeps_the_correction(trained, tmp_path):
    model, ref, _ = trained
    model.save(tmp_path / "m")
    loaded = SCMAMBA.load(tmp_path / "m", adata=ref)
    np.testing.assert_allclose(loaded.get_latent_representation(), model.get_latent_representation(), atol=1e-5)


@pytest.mark.parametrize("setting", [None, {"theta": 0.5}])
def test_off_or_weaker(demo_mdata, setting):
    m = demo_mdata[:400].copy()
    SCMAMBA.setup_mudata(m, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac"})
    scvi.settings.seed = 0
    model = SCMAMBA(m, **TINY, batch_correction=setting)
    model.train(max_epochs=2, enable_progress_bar=False)
    assert model.module.latent_correction.fitted == (setting is not None)
    if setting is None:
        np.testing.assert_array_equal(
            model.get_latent_representation(), model.get_latent_representation(batch_corrected=False)
        )
    with pytest.raises(ValueError, match="batch_correction must be 'harmony', None"):
        SCMAMBA(m, **TINY, batch_correction="strong")
