"""Argument forms users pass, errors whose advice is run here, and the two-layer rule (issue 34, items 3, 6, 8)."""

from __future__ import annotations

import re

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scvi
from conftest import TINY
from scipy import sparse

import scmamba
from scmamba import SCMAMBA
from scmamba.cli import main

MODS = {"rna_layer": "rna", "atac_layer": "atac", "batch_key": "rna"}
TWO_LAYERS = r"SCMAMBA aligns two layers, got 3 \(rna, atac, protein\)"


@pytest.fixture(scope="module")
def small(demo_mdata):
    """A tiny model trained one epoch on 300 demo cells."""
    scvi.settings.seed = 0
    m = demo_mdata[:300].copy()
    SCMAMBA.setup_mudata(m, batch_key="batch", modalities=MODS)
    model = SCMAMBA(m, **TINY)
    model.train(max_epochs=1, batch_size=64, enable_progress_bar=False)
    return model, m


def _with_protein(m, n=20):
    """RNA + ATAC of ``m`` and a protein panel (``n`` genes' counts plus one, under antibody names)."""
    prot = ad.AnnData(
        sparse.csr_matrix(m["rna"].X[:, :n].toarray() + 1, dtype=np.float32),
        obs=m["rna"].obs[[]].copy(),
        var=pd.DataFrame(index=[f"CD{i}" for i in range(n)]),
    )
    return md.MuData({"rna": m["rna"].copy(), "atac": m["atac"].copy(), "prot": prot})


# ---------------------------------------------------------------------------------------------------------------
# item 3: argument forms


def test_anndata_indices_take_a_boolean_mask(small):
    model, m = small
    rna = m["rna"]
    z = model.get_latent_representation(rna, modality="rna")
    mask = np.zeros(rna.n_obs, dtype=bool)
    mask[::5] = True
    np.testing.assert_allclose(model.get_latent_representation(rna, modality="rna", indices=mask), z[mask], atol=1e-5)
    np.testing.assert_allclose(
        model.get_latent_representation(rna, modality="rna", indices=np.flatnonzero(mask)), z[mask], atol=1e-5
    )
    with pytest.raises(ValueError, match="boolean mask of 10 values, but the AnnData has 300 rows"):
        model.get_latent_representation(rna, modality="rna", indices=mask[:10])


def test_match_cells_aligns_series_labels_by_name(small):
    model, m = small
    ref = m["rna"].copy()
    ref.obsm["X_scmamba"] = model.get_latent_representation(ref, modality="rna")
    query = m["atac"].copy()
    query.obsm["X_scmamba"] = model.get_latent_representation(query, modality="atac")
    labels = ref.obs["cell_type"].astype(str)
    expected = scmamba.tl.match_cells(query, ref, ref_labels="cell_type").labels
    shuffled = labels.sample(frac=1.0, random_state=0)  # the same labels, indexed by name, in another order
    got = scmamba.tl.match_cells(query, ref, ref_labels=shuffled).labels
    pd.testing.assert_series_equal(got["label"], expected["label"])
    # an index that is not the reference's names is refused, and the advice (values in row order) works
    positional = labels.reset_index(drop=True)
    with pytest.raises(ValueError, match=r"300 of the 300 reference cells .* are not in its index") as err:
        scmamba.tl.match_cells(query, ref, ref_labels=positional)
    assert "ref_labels=labels.to_numpy()" in str(err.value)
    advised = scmamba.tl.match_cells(query, ref, ref_labels=positional.to_numpy()).labels
    pd.testing.assert_series_equal(advised["label"], expected["label"])


def test_train_without_an_epoch_limit(demo_mdata):
    m = demo_mdata[:200].copy()
    SCMAMBA.setup_mudata(m, batch_key="batch", modalities=MODS)
    model = SCMAMBA(m, **TINY)
    with pytest.raises(ValueError, match=r"max_epochs=-1 trains without a limit.*pass early_stopping=True"):
        model.train(max_epochs=-1, enable_progress_bar=False)
    # the advice: Lightning's "no limit" with early stopping trains until validation_loss stops improving
    model.train(max_epochs=-1, early_stopping=True, early_stopping_patience=1, enable_progress_bar=False)
    losses = model.history["train_loss"].to_numpy(dtype=float)
    assert 2 <= len(losses) < 100 and np.isfinite(losses).all()


def test_paper_config_fits_rna_protein(demo_mdata):
    m = _with_protein(demo_mdata[:60])
    abseq = md.MuData({"rna": m["rna"], "prot": m["prot"]})
    SCMAMBA.setup_mudata(abseq, modalities={"rna_layer": "rna", "protein_layer": "prot"})
    model = SCMAMBA(abseq, **SCMAMBA.paper_config())  # as the README shows
    assert {m: len(enc.blocks) for m, enc in model.module.encoders.items()} == {"rna": 10, "protein": 4}
    assert SCMAMBA.paper_config(abseq)["n_layers"] == {"rna": 8, "protein": 4}  # the paper's RNA+protein sizes
    assert SCMAMBA.paper_config(("atac", "protein"))["n_layers"] == {"atac": 12, "protein": 4}


def test_rna_gets_a_mamba_encoder_beside_a_protein_panel_from_enough_pairs(demo_mdata, monkeypatch):
    from scmamba.model import _presets

    m = _with_protein(demo_mdata[:60])
    cite = md.MuData({"rna": m["rna"], "prot": m["prot"]})
    SCMAMBA.setup_mudata(cite, modalities={"rna_layer": "rna", "protein_layer": "prot"})
    # few pairs: RNA is embedded by its PCA (its Mamba2 encoder would cost cell-type structure)
    few = SCMAMBA(cite, **TINY)
    assert few.init_params_["non_kwargs"]["encoder"] == {"rna": "linear", "protein": "mamba"}
    assert set(few.module.encoders) == {"protein"}
    # from the threshold on, RNA gets its encoder too (a panel cannot pair thousands of cells with a linear RNA)
    monkeypatch.setattr(_presets, "RNA_ENCODER_WITH_PROTEIN_CELLS", 60)
    many = SCMAMBA(cite, **TINY)
    assert set(many.module.encoders) == {"rna", "protein"}
    assert many.init_params_["non_kwargs"]["encoder"] == {"rna": "mamba", "protein": "mamba"}
    # what the user names wins; what they leave out follows the rule
    named = SCMAMBA(cite, **TINY, encoder={"protein": "linear"})
    assert named.init_params_["non_kwargs"]["encoder"] == {"rna": "mamba", "protein": "linear"}
    assert set(SCMAMBA(cite, **TINY, encoder={"rna": "linear"}).module.encoders) == {"protein"}
    # peaks pair cells at any size: RNA stays linear beside ATAC
    assert _presets.default_encoders(["rna", "atac"], 10**6) == {"rna": "linear", "atac": "mamba"}


# ---------------------------------------------------------------------------------------------------------------
# item 8: more than two layers, one rule


def test_three_layers_are_refused_in_one_place_with_one_message(demo_mdata, tmp_path, capsys):
    m = _with_protein(demo_mdata[:60])
    three = {"rna_layer": "rna", "atac_layer": "atac", "protein_layer": "prot"}
    messages = []
    for call in (
        lambda: SCMAMBA.setup_mudata(m, modalities=three),
        lambda: SCMAMBA.setup_mudata(m),  # inferred from the modality names
        lambda: SCMAMBA.paper_config(("rna", "atac", "protein")),
    ):
        with pytest.raises(ValueError, match=TWO_LAYERS) as err:
            call()
        messages.append(re.sub(r"modalities=\{[^}]*\}", "", str(err.value)))
    path = tmp_path / "trimodal.h5mu"
    m.write_h5mu(path)
    code = main(["train", str(path), "--out", str(tmp_path / "out"), "--atac-mod", "atac", "--protein-mod", "prot"])
    assert code == 2
    assert re.search(TWO_LAYERS, capsys.readouterr().err)
    assert len(set(messages)) == 1
    # the advice: register two of them
    SCMAMBA.setup_mudata(m, modalities={"rna_layer": "rna", "atac_layer": "atac"})
    SCMAMBA(m, **TINY)


# ---------------------------------------------------------------------------------------------------------------
# item 6: every error's advice is run and works


def test_duplicate_cell_names_advice_works(demo_mdata):
    m = demo_mdata[:100].copy()
    for adata in m.mod.values():
        adata.obs_names = list(adata.obs_names[:50]) * 2
    m.update()
    with pytest.raises(ValueError, match="duplicated cell names") as err:
        SCMAMBA.setup_mudata(m, modalities=MODS)
    assert "for adata in mdata.mod.values(): adata.obs_names_make_unique(), then mdata.update()" in str(err.value)
    mdata = m
    for adata in mdata.mod.values():
        adata.obs_names_make_unique()
    mdata.update()
    SCMAMBA.setup_mudata(mdata, modalities=MODS)
    assert mdata.n_obs == 100


def _advised(message: str) -> str:
    """The Python statements after 'Remove them first:' / 'Embed the other cells:' in an error message."""
    code = re.split(r"Remove them first: |Embed the other cells: ", message)[1]
    code = re.sub(r" \(e\.g\. row \[.*$", "", code)
    return code.replace(", then ", "\n").replace("; ", "\n")


def test_cells_without_counts_advice_works(demo_mdata):
    m = demo_mdata[:100].copy()
    X = m["rna"].X.toarray()
    X[[3, 7]] = 0
    m.mod["rna"].layers["counts"] = sparse.csr_matrix(X)
    with pytest.raises(ValueError, match="2 cells have no counts at all") as err:
        SCMAMBA.setup_mudata(m, rna_layer="counts", modalities=MODS)
    scope = {"mdata": m, "np": np}
    exec(_advised(str(err.value)), scope)
    mdata = scope["mdata"]
    assert mdata.n_obs == 98
    SCMAMBA.setup_mudata(mdata, rna_layer="counts", modalities=MODS)


def test_cells_with_counts_only_outside_the_model_features_advice_works(small):
    model, m = small
    rna = m["rna"][:40].copy()
    X = rna.X.toarray()
    X[5] = 0
    X[5, :3] = 4  # counts only in the first 3 genes, which this query renames: the model lacks them
    rna.X = sparse.csr_matrix(X)
    rna.var_names = [f"new{i}" if i < 3 else g for i, g in enumerate(rna.var_names)]
    with pytest.warns(UserWarning, match="zero-filled"), pytest.raises(ValueError, match="1 cells have no counts in"):
        model.get_latent_representation(rna, modality="rna")
    try:
        model.get_latent_representation(rna, modality="rna")
    except ValueError as err:
        message = str(err)
    assert "counts at all" not in message
    scope = {"adata": rna, "model": model, "np": np}
    with pytest.warns(UserWarning, match="zero-filled"):
        exec(_advised(message).replace("model.get_latent", "z = model.get_latent"), scope)
    assert scope["z"].shape == (39, 16) and np.isfinite(scope["z"]).all()


def test_model_on_data_not_set_up_advice_works(demo_mdata):
    m = demo_mdata[:120].copy()
    with pytest.raises(ValueError, match=r"Call SCMAMBA\.setup_mudata\(mdata, modalities=\{\.\.\.\}\) first"):
        SCMAMBA(m, **TINY)
    SCMAMBA.setup_mudata(m, modalities=MODS)  # the advice
    assert SCMAMBA(m, **TINY).adata is m


def test_model_on_data_changed_after_set_up_is_refused(demo_mdata):
    m = demo_mdata[:120].copy()
    SCMAMBA.setup_mudata(m, modalities=MODS)
    m.mod["rna"] = m["rna"][:, :-5].copy()  # five genes dropped after set-up
    m.update()
    with pytest.raises(ValueError, match="changed since SCMAMBA.setup_mudata.*run SCMAMBA.setup_mudata on it"):
        SCMAMBA(m, **TINY)
    SCMAMBA.setup_mudata(m, modalities=MODS)  # the advice
    assert SCMAMBA(m, **TINY).module is not None
