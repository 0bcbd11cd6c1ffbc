"""Bad input gets a clear error (or a warning) that says what to fix."""

from __future__ import annotations

import warnings

import anndata as ad
import mudata as md
import numpy as np
import pytest
from conftest import TINY, dropout_rates
from scipy import sparse

from scmamba import SCMAMBA
from scmamba.data import genomic_order

MODS = {"rna_layer": "rna", "atac_layer": "atac"}


@pytest.fixture
def small(demo_mdata):
    return demo_mdata[:120].copy()


def test_model_before_setup(small):
    with pytest.raises(ValueError, match="setup_mudata"):
        SCMAMBA(small)
    with pytest.raises(TypeError, match="needs the MuData"):
        SCMAMBA(None)


def test_setup_anndata_points_to_mudata(small):
    with pytest.raises(NotImplementedError, match="setup_mudata"):
        SCMAMBA.setup_anndata(small["rna"])


def test_missing_or_misnamed_modality(small):
    with pytest.raises(ValueError, match="no modality 'peaks'.*'rna', 'atac'"):
        SCMAMBA.setup_mudata(small, modalities={"rna_layer": "rna", "atac_layer": "peaks"})
    with pytest.raises(ValueError, match="two paired modalities"):
        SCMAMBA.setup_mudata(small, modalities={"rna_layer": "rna"})
    with pytest.raises(ValueError, match="not a layer"):
        SCMAMBA.setup_mudata(small, rna_layer="counts", modalities=MODS)
    with pytest.raises(TypeError, match="MuData"):
        SCMAMBA.setup_mudata(small["rna"], modalities=MODS)


def test_mosaic_that_cannot_be_trained(small):
    """Cells missing from a modality are a mosaic (tests/model/test_mosaic.py); these mosaics are errors."""
    # no cell measured in both layers (here: the same cells under other names in one modality)
    atac = small["atac"].copy()
    atac.obs_names = [f"{name}-atac" for name in atac.obs_names]
    with pytest.raises(ValueError, match=r"No cell is measured in both 'rna' \(rna\) and 'atac'.*same obs_names"):
        SCMAMBA.setup_mudata(md.MuData({"rna": small["rna"].copy(), "atac": atac}), modalities=MODS)
    # a registered modality without cells
    empty = md.MuData({"rna": small["rna"].copy(), "atac": small["atac"][:0].copy()})
    with pytest.raises(ValueError, match=r"Modality 'atac' \(atac\) has no cells"):
        SCMAMBA.setup_mudata(empty, modalities=MODS)
    # batch_key read from a modality that lacks some cells
    mosaic = md.MuData({"rna": small["rna"].copy(), "atac": small["atac"][10:].copy()})
    message = r"batch_key 'batch' is read from mdata.mod\['atac'\].obs.*10 cells.*mdata.obs"
    with pytest.raises(ValueError, match=message):
        SCMAMBA.setup_mudata(mosaic, batch_key="batch", modalities={**MODS, "batch_key": "atac"})
    mosaic.obs["batch"] = small.obs.loc[mosaic.obs_names, "batch"].values  # the fix the message gives
    SCMAMBA.setup_mudata(mosaic, batch_key="batch", modalities=MODS)


def _with_rna(small, X):
    rna = small["rna"].copy()
    rna.X = X
    return md.MuData({"rna": rna, "atac": small["atac"].copy()})


def test_nan_inf_and_negative_values(small):
    X = small["rna"].X.astype(np.float32).toarray()
    bad = X.copy()
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        SCMAMBA.setup_mudata(_with_rna(small, sparse.csr_matrix(bad)), modalities=MODS)
    bad = X.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        SCMAMBA.setup_mudata(_with_rna(small, bad), modalities=MODS)  # dense too
    bad = X.copy()
    bad[1, 2] = -1
    with pytest.raises(ValueError, match="negative values.*raw counts"):
        SCMAMBA.setup_mudata(_with_rna(small, sparse.csr_matrix(bad)), modalities=MODS)


def test_normalised_rna_warns(small):
    X = small["rna"].X.astype(np.float32)
    X = sparse.csr_matrix(X.multiply(1.0 / X.sum(1)) * 1e4)
    X.data = np.log1p(X.data)
    with pytest.warns(UserWarning, match="looks normalised"):
        SCMAMBA.setup_mudata(_with_rna(small, X), modalities=MODS)


def test_all_zero_cell(small):
    X = small["rna"].X.tolil()
    X[7, :] = 0
    with pytest.raises(ValueError, match="1 cells have no counts"):
        SCMAMBA.setup_mudata(_with_rna(small, X.tocsr()), modalities=MODS)


def test_duplicate_feature_names(small):
    rna = small["rna"].copy()
    names = rna.var_names.tolist()
    names[1] = names[0]
    rna.var_names = names
    mdata = md.MuData({"rna": rna, "atac": small["atac"].copy()})
    with pytest.raises(ValueError, match="duplicated feature names.*var_names_make_unique"):
        SCMAMBA.setup_mudata(mdata, modalities=MODS)


def test_unparseable_chromosome_warns_and_places_last(small):
    rna = small["rna"].copy()
    rna.var["chrom"] = rna.var["chrom"].astype(object)
    rna.var.iloc[0, rna.var.columns.get_loc("chrom")] = "GL456233.1"
    mdata = md.MuData({"rna": rna, "atac": small["atac"].copy()})
    with pytest.warns(UserWarning, match="GL456233.1"):
        SCMAMBA.setup_mudata(mdata, modalities=MODS)
    with warnings.catch_warnings(record=True) as caught:  # the model reuses the order set-up computed
        warnings.simplefilter("always")
        model = SCMAMBA(mdata, **TINY)
    assert not any("GL456233.1" in str(w.message) for w in caught)
    with pytest.warns(UserWarning, match="GL456233.1"):
        n_unplaced = genomic_order(rna.var, modality="rna").n_unplaced
    assert n_unplaced == 28 + 1  # the 28 genes without coordinates, and this one
    order = model.module.layers["rna"].order.numpy()
    assert 0 in order[-n_unplaced:] and 0 not in order[:-n_unplaced]  # placed last, with the unplaced genes


def test_unknown_batch_key_and_empty_data(small):
    with pytest.raises(ValueError, match="batch_key 'library' is not a column"):
        SCMAMBA.setup_mudata(small.copy(), batch_key="library", modalities=MODS)
    with pytest.raises(ValueError, match="no cells"):
        SCMAMBA.setup_mudata(small[:0].copy(), modalities=MODS)


def test_rna_only_anndata_without_shared_genes(small):
    SCMAMBA.setup_mudata(small, modalities=MODS)
    model = SCMAMBA(small, **TINY)
    foreign = ad.AnnData(sparse.csr_matrix(np.ones((4, 3), dtype=np.float32)))
    foreign.var_names = ["g1", "g2", "g3"]
    with pytest.warns(UserWarning):
        with pytest.raises(ValueError, match="shares no feature"):
            model.get_latent_representation(foreign, modality="rna")
    with pytest.raises(ValueError, match="no 'protein' encoder"):
        model.get_latent_representation(small["rna"], modality="protein")


def test_feature_dropout_and_bin_size_per_modality(small):
    SCMAMBA.setup_mudata(small, modalities=MODS)
    config = {k: v for k, v in TINY.items() if k != "feature_dropout"}
    default = SCMAMBA(small, **config)
    assert default.module.feature_dropout == {"rna": 0.3, "atac": 0.5}
    # ATAC peaks share part of their projection with their genome neighbours by default; genes do not
    assert default.module.encoders["atac"].tokenizer.bin_size == 8
    assert SCMAMBA(small, **config, encoder="mamba").module.encoders["rna"].tokenizer.bin_size is None
    model = SCMAMBA(small, **config, feature_dropout={"rna": 0.1, "atac": 0.0, "protein": 0.5})
    assert model.module.feature_dropout == {"rna": 0.1, "atac": 0.0}
    # a modality left out of the dict takes its default
    assert SCMAMBA(small, **config, feature_dropout={"rna": 0.2}).module.feature_dropout == {"rna": 0.2, "atac": 0.5}
    with pytest.raises(ValueError, match=r"unknown modalities \['gex'\]"):
        SCMAMBA(small, **config, feature_dropout={"gex": 0.2})
    with pytest.raises(ValueError, match=r"feature_dropout must be in \[0, 1\)"):
        SCMAMBA(small, **config, feature_dropout=1.0)


def test_encoder_dropout_per_modality(small):
    SCMAMBA.setup_mudata(small, modalities=MODS)
    config = {k: v for k, v in TINY.items() if k != "dropout"} | {"encoder": "mamba"}

    assert dropout_rates(SCMAMBA(small, **config, dropout=0.25)) == {"rna": [0.25], "atac": [0.25]}
    assert dropout_rates(SCMAMBA(small, **config, dropout={"rna": 0.0, "atac": 0.3})) == {"rna": [0.0], "atac": [0.3]}
    with pytest.raises(ValueError, match=r"dropout has values for unknown modalities \['gex'\]"):
        SCMAMBA(small, **config, dropout={"gex": 0.2})
    with pytest.raises(ValueError, match=r"dropout has no value for \['atac'\]"):
        SCMAMBA(small, **config, dropout={"rna": 0.2})
    with pytest.raises(ValueError, match=r"n_layers has no value for \['rna'\]"):
        SCMAMBA(small, **{k: v for k, v in config.items() if k != "n_layers"}, n_layers={"atac": 2})


def test_encoder_per_modality(small):
    SCMAMBA.setup_mudata(small, modalities=MODS)
    default = SCMAMBA(small, **TINY)
    # RNA is embedded by its classic reduction, ATAC by a Mamba2 encoder; the choice is kept with the model
    assert set(default.module.encoders) == {"atac"}
    assert default.init_params_["non_kwargs"]["encoder"] == {"rna": "linear", "atac": "mamba"}
    assert set(SCMAMBA(small, **TINY, encoder="mamba").module.encoders) == {"rna", "atac"}
    assert set(SCMAMBA(small, **TINY, encoder={"rna": "mamba"}).module.encoders) == {"rna", "atac"}
    # without linear views every layer needs its encoder
    assert set(SCMAMBA(small, **TINY, linear_view=None).module.encoders) == {"rna", "atac"}
    with pytest.raises(ValueError, match="encoder must be one of"):
        SCMAMBA(small, **TINY, encoder="transformer")
    with pytest.raises(ValueError, match=r"give linear_view a number of components \(e.g. linear_view=50\)"):
        SCMAMBA(small, **TINY, encoder="linear", linear_view=None)
    assert set(SCMAMBA(small, **TINY, encoder="linear", linear_view=50).module.encoders) == set()  # the advice
