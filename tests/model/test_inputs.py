"""Real-world inputs: query data gets the set-up checks, data changed after set-up, backed files, set-up edge cases."""

from __future__ import annotations

import re

import mudata as md
import numpy as np
import pandas as pd
import pytest
import scvi
from conftest import TINY
from scipy import sparse

from scmamba import SCMAMBA

MODS = {"rna_layer": "rna", "atac_layer": "atac"}


def _with_counts_layer(m):
    m = m.copy()
    m.mod["rna"].layers["counts"] = m["rna"].X.copy()
    return m


@pytest.fixture(scope="module")
def layered(demo_mdata):
    """A tiny model set up with ``rna_layer='counts'`` on 200 demo cells; 60 other cells as query."""
    scvi.settings.seed = 0
    ref = _with_counts_layer(demo_mdata[:200])
    SCMAMBA.setup_mudata(ref, rna_layer="counts", modalities=MODS)
    model = SCMAMBA(ref, **TINY)
    model.train(max_epochs=1, batch_size=50, enable_progress_bar=False)
    return model, _with_counts_layer(demo_mdata[200:260])


def _spoil(q, kind):
    q = q.copy()
    X = q["rna"].layers["counts"].astype(np.float32).toarray()
    X[3, 5] = {"nan": np.nan, "inf": np.inf, "negative": -1.0}[kind]
    q.mod["rna"].layers["counts"] = sparse.csr_matrix(X)
    return q


ENTRY_POINTS = {
    "setup_mudata": lambda model, q: SCMAMBA.setup_mudata(q, rna_layer="counts", modalities=MODS),
    "get_latent_representation": lambda model, q: model.get_latent_representation(q),
    "get_latent_representation_rna": lambda model, q: model.get_latent_representation(q, modality="rna"),
    "anndata": lambda model, q: model.get_latent_representation(q["rna"], modality="rna", layer="counts"),
    "prepare_query_mudata": lambda model, q: SCMAMBA.prepare_query_mudata(q, model, inplace=False),
    "load_query_data": lambda model, q: SCMAMBA.load_query_data(q, model),
}
MESSAGES = {"nan": "contains 1 NaN or infinite values", "inf": "contains 1 NaN or infinite values",
            "negative": "contains negative values"}  # fmt: skip


@pytest.mark.parametrize("kind", list(MESSAGES))
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_query_values_are_checked_like_training_data(layered, entry, kind):
    model, query = layered
    with pytest.raises(ValueError, match=MESSAGES[kind]):
        ENTRY_POINTS[entry](model, _spoil(query, kind))


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_query_without_the_counts_layer(layered, entry):
    model, query = layered
    q = query.copy()
    del q.mod["rna"].layers["counts"]
    with pytest.raises(ValueError, match=r"'counts' is not a layer of .*'rna'.*layers are \[\]"):
        ENTRY_POINTS[entry](model, q)


def test_query_names_are_checked(layered):
    model, query = layered
    q = query.copy()
    names = q["rna"].obs_names.tolist()
    names[1] = names[0]
    q.mod["rna"].obs_names = names
    with pytest.raises(ValueError, match="duplicated cell names"):
        model.get_latent_representation(q)
    with pytest.raises(ValueError, match="duplicated cell names"):
        SCMAMBA.prepare_query_mudata(q, model, inplace=False)


def test_query_with_one_modality_points_to_the_anndata_path(layered):
    model, query = layered
    rna_only = md.MuData({"rna": query["rna"].copy()})
    for modality in ("joint", "rna"):
        with pytest.raises(
            ValueError, match=r"no modality 'atac'.*get_latent_representation\(mdata\['rna'\], modality='rna'\)"
        ):
            model.get_latent_representation(rna_only, modality=modality)


@pytest.fixture
def set_up(demo_mdata):
    m = demo_mdata[:120].copy()
    SCMAMBA.setup_mudata(m, modalities=MODS)
    return m


def _subset_genes(m):
    m.mod["rna"] = m["rna"][:, :1000].copy()
    m.update()


def _rename_genes(m):
    rna = m["rna"].copy()
    rna.var_names = [f"gene{i}" for i in range(rna.n_vars)]
    m.mod["rna"] = rna
    m.update()


@pytest.mark.parametrize("change", [_subset_genes, _rename_genes])
def test_data_changed_after_setup(set_up, change, tmp_path):
    original = set_up.copy()
    model = SCMAMBA(set_up, **TINY)
    z_rna = model.get_latent_representation(original["rna"], modality="rna")
    change(set_up)
    message = r"changed since .*setup_mudata.*[Mm]odality 'rna'.*features"
    with pytest.raises(ValueError, match=message):
        model.train(max_epochs=1, enable_progress_bar=False)
    with pytest.raises(ValueError, match=message):
        model.get_latent_representation()
    with pytest.raises(ValueError, match=message):
        SCMAMBA(set_up, **TINY)
    # the model itself is intact: the one-modality path and a saved copy still use the registered features
    np.testing.assert_array_equal(model.get_latent_representation(original["rna"], modality="rna"), z_rna)
    model.save(tmp_path / "m")
    loaded = SCMAMBA.load(str(tmp_path / "m"), original)
    np.testing.assert_allclose(loaded.get_latent_representation(modality="rna"), z_rna, atol=1e-6)


def test_values_replaced_after_setup_are_checked_again(set_up):
    model = SCMAMBA(set_up, **TINY)
    X = set_up["rna"].X.astype(np.float32).toarray()
    X[2, 2] = -3
    set_up.mod["rna"].X = sparse.csr_matrix(X)
    with pytest.raises(ValueError, match="negative values"):
        model.train(max_epochs=1, enable_progress_bar=False)


def test_backed_rna_only_and_prepare_query(demo_mdata, tmp_path):
    scvi.settings.seed = 0
    m = demo_mdata[:200].copy()
    SCMAMBA.setup_mudata(m, modalities=MODS)
    model = SCMAMBA(m, **TINY)
    model.train(max_epochs=1, batch_size=50, enable_progress_bar=False)
    query = demo_mdata[1900:].copy()  # 600 cells the model has not seen
    path = tmp_path / "query.h5mu"
    query.write_h5mu(path, compression="gzip")
    backed = md.read_h5mu(path, backed="r")
    idx = [0, 7, 3, 599]
    z_mem = model.get_latent_representation(query["rna"], modality="rna", indices=idx)
    np.testing.assert_allclose(
        model.get_latent_representation(backed["rna"], modality="rna", indices=idx), z_mem, atol=1e-5
    )
    z_all = model.get_latent_representation(backed["atac"], modality="atac")
    np.testing.assert_allclose(z_all, model.get_latent_representation(query, modality="atac"), atol=1e-5)
    prepared = SCMAMBA.prepare_query_mudata(backed, model, inplace=False)
    assert not prepared.isbacked
    np.testing.assert_allclose(
        model.get_latent_representation(prepared), model.get_latent_representation(query), atol=1e-5
    )


def test_one_modality_registered_twice(set_up):
    with pytest.raises(ValueError, match="'rna' is registered as both rna_layer and atac_layer"):
        SCMAMBA.setup_mudata(set_up, modalities={"rna_layer": "rna", "atac_layer": "rna"})


@pytest.mark.parametrize("where", [None, "rna"])
def test_batch_key_with_missing_values(demo_mdata, where):
    m = demo_mdata[:120].copy()
    obs = m.obs if where is None else m["rna"].obs
    batch = obs["batch"].astype(object)
    batch.iloc[[4, 9]] = np.nan
    obs["batch"] = pd.Categorical(batch)
    location = "mdata.obs" if where is None else "mdata.mod['rna'].obs"
    with pytest.raises(ValueError, match=rf"batch_key 'batch' has 2 missing values \(NaN\) in {re.escape(location)}"):
        SCMAMBA.setup_mudata(m, batch_key="batch", modalities={**MODS, **({"batch_key": where} if where else {})})


def test_query_batch_with_missing_values(demo_mdata):
    ref = demo_mdata[:120].copy()
    SCMAMBA.setup_mudata(ref, batch_key="batch", modalities=MODS)
    model = SCMAMBA(ref, **TINY)
    q = demo_mdata[200:260].copy()
    q.obs["batch"] = q.obs["batch"].astype(object)
    q.obs.iloc[0, q.obs.columns.get_loc("batch")] = np.nan
    with pytest.raises(ValueError, match=r"batch_key 'batch' has 1 missing values \(NaN\)"):
        model.get_latent_representation(q)


def test_wrong_genome_for_the_genes(demo_mdata):
    m = demo_mdata[:120].copy()  # mouse genes
    with pytest.raises(ValueError, match=r"rna_annotation='GRCh38' placed only \d+ of 1677 genes.*'GRCm38'"):
        SCMAMBA.setup_mudata(m, rna_annotation="GRCh38", modalities=MODS)
    SCMAMBA.setup_mudata(m, rna_annotation="GRCm38", modalities=MODS)  # the suggested fix


def test_no_coordinates_error_names_the_setup_keyword(demo_mdata):
    m = demo_mdata[:120].copy()
    m.mod["rna"].var = pd.DataFrame(index=m["rna"].var_names)
    with pytest.raises(ValueError, match="Could not find genomic coordinates") as err:
        SCMAMBA.setup_mudata(m, modalities=MODS)
    assert "rna_annotation=" in str(err.value) and "`annotation=`" not in str(err.value)
    SCMAMBA.setup_mudata(m, rna_annotation="GRCm38", modalities=MODS)  # the suggested fix


def test_load_with_an_anndata(set_up, tmp_path):
    model = SCMAMBA(set_up, **TINY)
    model.save(tmp_path / "m")
    with pytest.raises(TypeError, match=r"SCMAMBA.load needs a MuData.*get_latent_representation\(adata, modality="):
        SCMAMBA.load(str(tmp_path / "m"), set_up["rna"])
    assert SCMAMBA.load(str(tmp_path / "m"), set_up).adata is set_up
