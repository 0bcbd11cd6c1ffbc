"""scmamba.tl pseudotime: diffusion pseudotime along a known curve, per-modality consistency."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from anndata import AnnData
from scipy.stats import spearmanr

from scmamba import tl


@pytest.fixture(scope="module")
def curve():
    """300 cells along a noisy 3-D helix in 10 dims; ``pos`` is the true position along it."""
    rng = np.random.default_rng(0)
    n = 300
    pos = np.sort(rng.uniform(0, 1, n))
    emb = np.zeros((n, 10))
    emb[:, :3] = np.c_[np.cos(3 * pos), np.sin(3 * pos), pos]
    emb += rng.normal(0, 0.05, emb.shape)
    stage = np.where(pos < 0.2, "early", np.where(pos < 0.6, "mid", "late"))
    obs = pd.DataFrame({"stage": pd.Categorical(stage)}, index=[f"cell{i}" for i in range(n)])
    return emb, pos, obs


def test_pseudotime_is_monotone_along_curve(curve):
    emb, pos, obs = curve
    adata = AnnData(obs=obs.copy(), obsm={"X_scmamba": emb.copy()})
    sc.pp.neighbors(adata, n_neighbors=5, use_rep="X_scmamba")  # the user's own graph must survive
    conn_before = adata.obsp["connectivities"].copy()

    pt = tl.pseudotime(adata, root=0)
    assert spearmanr(pt, pos).statistic > 0.95
    assert pt[0] == 0 and np.nanmax(pt) == 1
    np.testing.assert_array_equal(adata.obs["scmamba_pseudotime"].to_numpy(), pt)
    assert (adata.obsp["connectivities"] != conn_before).nnz == 0
    assert adata.uns["neighbors"]["params"]["n_neighbors"] == 5
    assert "X_diffmap" not in adata.obsm and "iroot" not in adata.uns
    assert list(adata.obs.columns) == ["stage", "scmamba_pseudotime"]

    by_name = tl.pseudotime(adata, root="cell0", key_added="pt_name")
    np.testing.assert_allclose(by_name, pt)


def test_pseudotime_root_by_type(curve):
    emb, pos, obs = curve
    adata = AnnData(obs=obs.copy(), obsm={"X_scmamba": emb})
    pt = tl.pseudotime(adata, root_key="stage", root_value="early", key_added="pt")
    root = int(np.argmin(pt))
    assert obs["stage"].iloc[root] == "early" and pos[root] < 0.1
    assert spearmanr(pt, pos).statistic > 0.95
    pt_late = tl.pseudotime(adata, root_key="stage", root_value="late", key_added="pt_late")
    assert obs["stage"].iloc[int(np.argmin(pt_late))] == "late"
    assert spearmanr(pt_late, pos).statistic < -0.95
    with pytest.raises(ValueError, match="root type 'blast'"):
        tl.pseudotime(adata, root_key="stage", root_value="blast")
    with pytest.raises(ValueError, match="root"):
        tl.pseudotime(adata)


def test_modality_pseudotime_consistency(curve):
    emb, _, _ = curve
    same = tl.modality_pseudotime_consistency(emb, emb.copy(), root_index=0)
    assert set(same) == {"pearson", "spearman", "trajectory_conservation"}
    for value in same.values():
        assert value == pytest.approx(1.0)
    shuffled = emb[np.random.default_rng(1).permutation(len(emb))]
    mismatched = tl.modality_pseudotime_consistency(emb, shuffled, root_index=0)
    assert mismatched["trajectory_conservation"] < 0.7
    assert abs(mismatched["spearman"]) < 0.3
