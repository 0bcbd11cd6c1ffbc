"""scmamba.tl.match_cells: exact blocked cosine matches and label transfer through them."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from scmamba import tl
from scmamba.tl._matching import cosine_topk


def _brute_force(q, r, k):
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    rn = r / np.linalg.norm(r, axis=1, keepdims=True)
    sim = qn @ rn.T
    idx = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sim, idx, axis=1), idx


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(300, 8)), rng.normal(size=(500, 8))


def test_matches_equal_brute_force(data):
    q, r = data
    m = tl.match_cells(q, r, k=7)
    scores, idx = _brute_force(q, r, 7)
    np.testing.assert_array_equal(m.indices, idx)
    np.testing.assert_allclose(m.scores, scores, atol=1e-5)
    assert m.indices.dtype == np.int64 and m.scores.shape == (300, 7) and m.labels is None
    assert (np.diff(m.scores, axis=1) <= 1e-7).all()


@pytest.mark.parametrize("block_size", [1, 7, 64, 10_000])
def test_blocks_give_the_same_result(data, block_size, monkeypatch):
    q, r = data
    one = tl.match_cells(q, r, k=5, block_size=10_000)
    # small tiles split the reference too: the running top-k merge must not change anything
    monkeypatch.setattr("scmamba.tl._matching._TILE_ELEMENTS", 3 * block_size)
    blocked = tl.match_cells(q, r, k=5, block_size=block_size)
    np.testing.assert_array_equal(blocked.indices, one.indices)
    np.testing.assert_allclose(blocked.scores, one.scores, atol=1e-6)


def test_k_is_checked(data):
    q, r = data
    with pytest.raises(ValueError, match="between 1 and the number of reference cells \\(500\\)"):
        tl.match_cells(q, r, k=501)
    with pytest.raises(ValueError, match="between 1"):
        tl.match_cells(q, r, k=0)
    assert tl.match_cells(q, r, k=500).indices.shape == (300, 500)  # k = n: every reference cell, sorted
    with pytest.raises(ValueError, match="dimensions"):
        tl.match_cells(q[:, :4], r)


def test_nan_rows_of_a_mosaic_are_a_clear_error(data):
    q, r = data
    q = q.copy()
    q[3] = np.nan
    with pytest.raises(ValueError, match="1 of the 300 query rows are NaN.*get_latent_layers"):
        tl.match_cells(q, r)


def test_label_transfer_through_matches():
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(3, 16)) * 3
    ref_labels = np.repeat(["a", "b", "c"], 50)
    ref = centers[np.repeat(np.arange(3), 50)] + rng.normal(size=(150, 16))
    truth = rng.integers(0, 3, 40)
    query = centers[truth] + rng.normal(size=(40, 16))
    for vote in ("score", "uniform"):
        m = tl.match_cells(query, ref, k=10, ref_labels=ref_labels, vote=vote)
        assert list(m.labels.columns) == ["label", "confidence", "uncertainty", "label_filtered"]
        assert (m.labels["label"].astype(str).values == np.array(["a", "b", "c"])[truth]).mean() > 0.95
        assert ((m.labels["confidence"] > 0) & (m.labels["confidence"] <= 1)).all()
    # a uniform vote's confidence is the share of matches with the winning label
    m = tl.match_cells(query, ref, k=4, ref_labels=ref_labels, vote="uniform", min_confidence=0.8)
    winners = m.labels["label"].astype(str).values
    share = (ref_labels[m.indices] == winners[:, None]).mean(axis=1)
    np.testing.assert_allclose(m.labels["confidence"], share)
    assert ((m.labels["label_filtered"] == "Unknown") == (share < 0.8)).all()


def test_anndata_inputs_and_long_table():
    rng = np.random.default_rng(2)
    ref = ad.AnnData(obs=pd.DataFrame({"ct": list("xxyy")}, index=[f"r{i}" for i in range(4)]))
    ref.obsm["X_scmamba"] = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    query = ad.AnnData(obs=pd.DataFrame(index=["q0", "q1"]))
    query.obsm["X_scmamba"] = np.array([[1.0, 0.05], [0.05, 1.0]]) + rng.normal(scale=1e-3, size=(2, 2))
    m = tl.match_cells(query, ref, k=2, ref_labels="ct")
    assert m.labels.index.tolist() == ["q0", "q1"] and m.labels["label"].tolist() == ["x", "y"]
    frame = m.to_frame()
    assert frame.shape == (4, 4) and frame["query"].tolist() == ["q0", "q0", "q1", "q1"]
    assert set(frame["reference"][:2]) == {"r0", "r1"} and frame["rank"].tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="no embedding obsm\\['X_other'\\]"):
        tl.match_cells(query, ref, use_rep="X_other")
    with pytest.raises(ValueError, match="not a column"):
        tl.match_cells(query, ref, k=2, ref_labels="nope")


def test_cosine_topk_self_match():
    x = np.random.default_rng(3).normal(size=(50, 5)).astype(np.float32)
    scores, idx = cosine_topk(x, x, 1, block_size=16)
    np.testing.assert_array_equal(idx[:, 0], np.arange(50))
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-6)
