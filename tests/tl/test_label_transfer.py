"""scmamba.tl label transfer on cheap real embeddings (PCA of the shipped SNARE-seq RNA)."""

from __future__ import annotations

import mudata as md
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from threadpoolctl import threadpool_limits

from scmamba import tl

md.set_options(pull_on_update=False)

LABEL = "cell_type"
COLUMNS = [f"transferred_{LABEL}{s}" for s in ("", "_confidence", "_uncertainty", "_filtered")]


@pytest.fixture(scope="module")
def rna_pca(demo_mdata):
    """Log-normalised RNA of the demo data with a 20-dim PCA in obsm['X_pca'] and obsm['X_scmamba']."""
    rna = demo_mdata["rna"].copy()
    sc.pp.normalize_total(rna, target_sum=1e4)
    sc.pp.log1p(rna)
    sc.pp.pca(rna, n_comps=20, random_state=0)
    rna.obsm["X_scmamba"] = rna.obsm["X_pca"]
    return rna


@pytest.fixture(scope="module")
def ref_query(rna_pca):
    """Reference = libraries 09A-09F, query = libraries 09G-09L (cells never seen by the classifier)."""
    first = (rna_pca.obs["batch"].astype(str) < "09G").to_numpy()
    return rna_pca[first].copy(), rna_pca[~first].copy()


@pytest.mark.parametrize("method", ["knn", "mlp"])
def test_transfer_between_batches_beats_majority(ref_query, method):
    ref, query = ref_query
    ref, query = ref.copy(), query.copy()
    ref_obs_before = ref.obs.copy()
    with threadpool_limits(1):  # the small MLP is much faster on one BLAS thread of a shared 2-core machine
        df = tl.transfer_labels(ref, query, label_key=LABEL, method=method)

    truth = query.obs[LABEL].astype(str).to_numpy()
    majority = query.obs[LABEL].value_counts(normalize=True).iloc[0]
    correct = df["label"].astype(str).to_numpy() == truth
    assert correct.mean() > majority + 0.3
    # confident predictions are more often right than the rest
    confident = df["confidence"].to_numpy() >= 0.5
    assert 0 < confident.sum() < len(df)
    assert correct[confident].mean() > correct[~confident].mean() + 0.1

    assert list(df.columns) == ["label", "confidence", "uncertainty", "label_filtered"]
    assert df.index.equals(query.obs_names)
    assert ((df["confidence"] > 0) & (df["confidence"] <= 1)).all()
    np.testing.assert_allclose(df["uncertainty"], 1 - df["confidence"])
    expected_filtered = np.where(confident, df["label"].astype(str), "Unknown")
    np.testing.assert_array_equal(df["label_filtered"].astype(str).to_numpy(), expected_filtered)
    # written into the query's obs (categorical labels), reference untouched
    assert all(c in query.obs for c in COLUMNS)
    assert isinstance(query.obs[COLUMNS[0]].dtype, pd.CategoricalDtype)
    assert set(query.obs[COLUMNS[0]].cat.categories) <= set(ref.obs[LABEL].cat.categories)
    np.testing.assert_array_equal(query.obs[COLUMNS[1]].to_numpy(), df["confidence"].to_numpy())
    pd.testing.assert_frame_equal(ref.obs, ref_obs_before)


def test_identical_query_knn1_is_fully_confident(rna_pca):
    emb = rna_pca.obsm["X_pca"]
    labels = rna_pca.obs[LABEL]
    df = tl.transfer_labels_from_embeddings(emb, labels, emb, method="knn", n_neighbors=1)
    assert (df["confidence"] == 1.0).all()
    assert (df["uncertainty"] == 0.0).all()
    np.testing.assert_array_equal(df["label"].astype(str).to_numpy(), labels.astype(str).to_numpy())
    assert (df["label_filtered"].astype(str) == df["label"].astype(str)).all()


def test_min_confidence_above_one_flags_everything(ref_query):
    ref, query = ref_query
    df = tl.transfer_labels_from_embeddings(
        ref.obsm["X_pca"], ref.obs[LABEL], query.obsm["X_pca"], min_confidence=1.01, unknown_label="unassigned"
    )
    assert (df["label_filtered"] == "unassigned").all()
    assert (df["label"] != "unassigned").all()
    assert "unassigned" in df["label_filtered"].cat.categories


def test_mudata_in_and_copy(demo_mdata, rna_pca):
    mdata = demo_mdata.copy()
    mdata.obsm["X_scmamba"] = rna_pca.obsm["X_pca"]
    mdata.obsm["X_query"] = rna_pca.obsm["X_pca"]
    first = (mdata.obs["batch"].astype(str) < "09G").to_numpy()
    ref, query = mdata[first].copy(), mdata[~first].copy()
    obs_before, mod_obs_before = query.obs.copy(), query["rna"].obs.copy()

    annotated = tl.transfer_labels(ref, query, label_key=LABEL, query_rep="X_query", key_added="pred", copy=True)
    assert isinstance(annotated, md.MuData)
    pd.testing.assert_frame_equal(query.obs, obs_before)  # copy=True leaves the input alone
    assert f"pred_{LABEL}_filtered" in annotated.obs
    acc = (annotated.obs[f"pred_{LABEL}"].astype(str) == annotated.obs[LABEL].astype(str)).mean()
    assert acc > 0.5

    tl.transfer_labels(ref, query, label_key=LABEL, query_rep="X_query", key_added="pred")
    pd.testing.assert_series_equal(query.obs[f"pred_{LABEL}"], annotated.obs[f"pred_{LABEL}"])
    pd.testing.assert_frame_equal(query["rna"].obs, mod_obs_before)


def test_transfer_errors(ref_query):
    ref, query = ref_query
    ref, query = ref.copy(), query.copy()
    with pytest.raises(ValueError, match=r"'celltype'.*cell_type"):
        tl.transfer_labels(ref, query, label_key="celltype")
    with pytest.raises(ValueError, match=r"X_umap.*\['X_pca', 'X_scmamba'\]"):
        tl.transfer_labels(ref, query, label_key=LABEL, use_rep="X_umap")
    query.obsm["X_small"] = query.obsm["X_pca"][:, :10]
    with pytest.raises(ValueError, match=r"20 dimensions.*10"):
        tl.transfer_labels(ref, query, label_key=LABEL, query_rep="X_small")
    ref.obs[LABEL] = ref.obs[LABEL].astype(object)
    ref.obs.iloc[:7, ref.obs.columns.get_loc(LABEL)] = np.nan
    with pytest.raises(ValueError, match=r"7 of .*[Dd]rop"):
        tl.transfer_labels(ref, query, label_key=LABEL)
    labels = np.array(["a", None, "b", None], dtype=object)
    with pytest.raises(ValueError, match="2 of 4"):
        tl.transfer_labels_from_embeddings(np.eye(4), labels, np.eye(4))
    with pytest.raises(ValueError, match="method"):
        tl.transfer_labels_from_embeddings(np.eye(4), list("abab"), np.eye(4), method="svm")
