"""Unit tests of scmamba.metrics on hand-computed and synthetic cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scmamba import metrics as M


def _blobs(n_per: int = 100, n_types: int = 4, dim: int = 10, spread: float = 20.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_types, dim)) * spread
    labels = np.repeat(np.array([f"t{i}" for i in range(n_types)]), n_per)
    emb = centers[np.repeat(np.arange(n_types), n_per)] + rng.normal(size=(n_per * n_types, dim))
    return emb, labels


# --------------------------------------------------------------------------- single-cell alignment


def test_foscttm_hand_computed_three_cells():
    # d(x_i, y_j) = |x_i - y_j|: rows x = (0, 2, 5), columns y = (1, 0, 5)
    #   [[1, 0, 5], [1, 2, 3], [4, 5, 0]], true-match distances (1, 2, 0).
    # n2 (per x_i, y closer than y_i): (1, 1, 0); n1 (per y_i, x closer than x_i): (0, 1, 0) -- the tie
    # d(x_1, y_0) = d(x_0, y_0) = 1 is not "closer". FOSCTTM = (2 + 1) / (2 * 3 * 3) = 1/6.
    x = np.array([[0.0], [2.0], [5.0]])
    y = np.array([[1.0], [0.0], [5.0]])
    score, frac_x, frac_y = M.foscttm(x, y, return_per_cell=True)
    assert score == pytest.approx(1 / 6)
    np.testing.assert_allclose(frac_x, [1 / 3, 1 / 3, 0])
    np.testing.assert_allclose(frac_y, [0, 1 / 3, 0])
    assert M.foscttm(x, y) == pytest.approx(1 / 6)


def test_foscttm_perfect_and_random():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 16))
    assert M.foscttm(x, x) == 0.0
    assert M.foscttm(x, x[rng.permutation(2000)]) == pytest.approx(0.5, abs=0.05)
    assert M.foscttm(x, x[::-1]) == pytest.approx(0.5, abs=0.05)


def test_foscttm_blocked_equals_single_block():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 5))
    y = x + rng.normal(size=x.shape)
    full = M.foscttm(x, y, block_size=300, return_per_cell=True)
    blocked = M.foscttm(x, y, block_size=7, return_per_cell=True)
    assert 0 < full[0] < 0.5
    assert blocked[0] == full[0]
    np.testing.assert_array_equal(blocked[1], full[1])
    np.testing.assert_array_equal(blocked[2], full[2])


def test_foscttm_cosine_ignores_scale():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 8))
    assert M.foscttm(x, 3.0 * x, metric="cosine") == pytest.approx(0.0, abs=1e-12)
    assert M.foscttm(x, 3.0 * x) > 0.0
    with pytest.raises(ValueError, match="metric"):
        M.foscttm(x, x, metric="manhattan")


def test_neighborhood_overlap():
    x = np.array([[0.0], [2.0], [5.0]])
    y = np.array([[1.0], [0.0], [5.0]])
    # per-cell counts from the FOSCTTM case: n_x = (1, 1, 0), n_y = (0, 1, 0)
    table = M.neighborhood_overlap(x, y, ks=[1, 2, 3])
    np.testing.assert_allclose(table["overlap_x_to_y"], [1 / 3, 1, 1])
    np.testing.assert_allclose(table["overlap_y_to_x"], [2 / 3, 1, 1])
    np.testing.assert_allclose(table["overlap"], [0.5, 1, 1])

    rng = np.random.default_rng(3)
    z = rng.normal(size=(500, 6))
    perfect = M.neighborhood_overlap(z, z)
    assert perfect["k"].iloc[0] == 1 and perfect["k"].iloc[-1] == 500
    assert (perfect["overlap"] == 1.0).all()
    shuffled = M.neighborhood_overlap(z, z[rng.permutation(500)], ks=[1, 250, 500])
    assert shuffled["overlap"].iloc[0] < 0.02
    assert shuffled["overlap"].iloc[1] == pytest.approx(0.5, abs=0.08)
    assert shuffled["overlap"].iloc[2] == 1.0


def test_matching_score_hand_computed():
    # k = 2 on x = y = (0, 1, 10, 11): cells 0 and 1 share the joint neighbourhood {0, 1} in both layers,
    # so M[0, 0] = M[0, 1] = 1 (Jaccard of identical sets) and the row-normalised diagonal is 1/2 everywhere.
    x = np.array([[0.0], [1.0], [10.0], [11.0]])
    assert M.matching_score(x, x, k=2) == pytest.approx(0.5)
    # k = 1 on isolated points: every joint neighbourhood is {i, N + i}, M is the identity.
    assert M.matching_score(x, x, k=1) == pytest.approx(1.0)


def test_matching_score_orders_alignment_quality():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 8))
    perfect = M.matching_score(x, x, k=10)
    noisy = M.matching_score(x, x + 0.3 * rng.normal(size=x.shape), k=10)
    shuffled = M.matching_score(x, x[rng.permutation(400)], k=10)
    assert perfect > noisy > shuffled
    assert shuffled < 0.01
    assert M.matching_score(x, x, k=10, block_size=33) == pytest.approx(perfect)


# --------------------------------------------------------------------------- label transfer


def test_label_transfer_separable_clusters():
    emb, labels = _blobs(n_per=50, seed=5)
    ref = np.arange(len(labels)) % 2 == 0
    pred = M.knn_label_transfer(emb[ref], labels[ref], emb[~ref], k=5)
    np.testing.assert_array_equal(pred, labels[~ref])
    scores = M.label_transfer_scores(emb[ref], labels[ref], emb[~ref], labels[~ref], k=5)
    assert scores["accuracy"] == 1.0 and scores["macro_f1"] == 1.0


def test_label_transfer_macro_f1_hand_computed():
    ref = np.array([[0.0], [10.0], [20.0]])
    ref_labels = np.array(["A", "B", "C"])
    query = np.array([[1.0], [2.0], [9.0], [11.0], [19.0]])
    truth = np.array(["A", "B", "B", "B", "C"])
    # 1-NN predictions A, A, B, B, C. F1: A = 2/3 (P 1/2, R 1), B = 0.8 (P 1, R 2/3), C = 1.
    scores = M.label_transfer_scores(ref, ref_labels, query, truth, k=1)
    np.testing.assert_array_equal(scores["predictions"], ["A", "A", "B", "B", "C"])
    assert scores["accuracy"] == pytest.approx(0.8)
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 1.0) / 3)


# --------------------------------------------------------------------------- biology conservation


def test_map_hand_computed():
    # positions 0, 1, 3, 10, 12 with labels a, b, a, b, b and k = 2 (self excluded):
    #   cell 0: neighbours 1(b), 3(a) -> hits (0, 1) -> AP = 1/2
    #   cell 1: neighbours 0(a), 3(a) -> no hit -> AP = 0
    #   cell 2: neighbours 1(b), 0(a) -> AP = 1/2
    #   cells 3, 4: nearest is the other b -> hits (1, 0) -> AP = 1
    emb = np.array([[0.0], [1.0], [3.0], [10.0], [12.0]])
    labels = np.array(["a", "b", "a", "b", "b"])
    assert M.mean_average_precision(emb, labels, k=2) == pytest.approx(0.6)


def test_map_default_k_and_blobs():
    emb, labels = _blobs(seed=6)
    assert M.mean_average_precision(emb, labels) == pytest.approx(1.0)
    rng = np.random.default_rng(6)
    assert M.mean_average_precision(emb, rng.permutation(labels)) < 0.5


def test_cell_type_asw():
    emb, labels = _blobs(seed=7)
    good = M.cell_type_asw(emb, labels)
    assert 0.9 < good <= 1.0
    from sklearn.metrics import silhouette_score

    assert good == pytest.approx((silhouette_score(emb, labels) + 1) / 2, abs=1e-5)
    rng = np.random.default_rng(7)
    random = M.cell_type_asw(emb, rng.permutation(labels))
    assert 0.0 <= random < 0.55


def test_ari_nmi_leiden_on_blobs():
    emb, labels = _blobs(n_per=80, seed=8)
    res = M.ari_nmi_leiden(emb, labels)
    assert res["ari"] == pytest.approx(1.0, abs=1e-6)
    assert res["nmi"] == pytest.approx(1.0, abs=1e-6)
    assert res["resolution_ari"] in M.DEFAULT_RESOLUTIONS
    assert set(res) == {"ari", "nmi", "resolution_ari", "resolution_nmi"}


def test_trajectory_conservation():
    t = np.linspace(0, 1, 50)
    assert M.trajectory_conservation(t, t) == pytest.approx(1.0)
    assert M.trajectory_conservation(t, t[::-1]) == pytest.approx(0.0)
    a = np.array([0.0, 1.0, 2.0, np.nan, np.inf, 3.0])
    b = np.array([0.0, 1.0, 2.0, 5.0, 3.0, 10.0])
    assert M.trajectory_conservation(a, b) == pytest.approx(1.0)
    assert np.isnan(M.trajectory_conservation([1.0, np.nan], [1.0, 2.0]))


# --------------------------------------------------------------------------- omics alignment


def test_stack_modalities():
    z, omics = M.stack_modalities(np.zeros((3, 2)), np.ones((2, 2)), names=("rna", "atac"))
    assert z.shape == (5, 2)
    assert list(omics) == ["rna"] * 3 + ["atac"] * 2
    with pytest.raises(ValueError):
        M.stack_modalities(np.zeros((3, 2)), np.ones((2, 3)))


def test_oems_hand_computed():
    # every cell's 3 neighbours are all other cells: one of its own layer, two of the other
    # p' = (1/3, 2/3) for equal layer sizes -> E = H(1/3, 2/3) / ln 2
    z = np.array([[0.0], [1.0], [2.0], [3.0]])
    groups = np.array(["a", "a", "b", "b"])
    expected = -(1 / 3 * np.log(1 / 3) + 2 / 3 * np.log(2 / 3)) / np.log(2)
    score = M.omics_entropy_mixing_score(z, groups=groups, n_cells=4, n_neighbors=3, n_repeats=3)
    assert score == pytest.approx(expected)


def test_oems_mixed_and_separated():
    emb, _ = _blobs(seed=9)
    mixed = M.omics_entropy_mixing_score(emb, emb, n_repeats=20)
    separated = M.omics_entropy_mixing_score(emb, emb + 1000.0, n_repeats=20)
    assert mixed > 0.95
    assert separated < 0.05
    # generic (stacked) form gives the same number
    z, omics = M.stack_modalities(emb, emb)
    assert M.omics_entropy_mixing_score(z, groups=omics, n_repeats=20) == pytest.approx(mixed)


def test_oems_corrects_for_layer_sizes():
    rng = np.random.default_rng(10)
    z = rng.normal(size=(1500, 5))
    groups = np.where(rng.random(1500) < 1 / 3, "small", "large")
    # well mixed but unbalanced: uncorrected entropy would be about H(1/3, 2/3) / ln 2 = 0.92
    assert M.omics_entropy_mixing_score(z, groups=groups, n_repeats=20) > 0.95


def test_sas():
    emb, _ = _blobs(seed=11)
    assert M.seurat_alignment_score(emb, emb) == pytest.approx(1.0)
    assert M.seurat_alignment_score(emb, emb + 1000.0) == pytest.approx(0.0)
    # layer a at 0, 1, 2 and layer b at 3.5, 10, 11 with k = 2: same-layer counts (2, 2, 1, 0, 2, 2),
    # mean 1.5, expected k / 2 = 1 -> SAS = 1 - (1.5 - 1) / (2 - 1) = 0.5
    x = np.array([[0.0], [1.0], [2.0]])
    y = np.array([[3.5], [10.0], [11.0]])
    assert M.seurat_alignment_score(x, y, k=2) == pytest.approx(0.5)


def test_sas_unequal_layers_subsamples():
    rng = np.random.default_rng(12)
    z = rng.normal(size=(900, 4))
    groups = np.array(["a"] * 600 + ["b"] * 300)
    assert M.seurat_alignment_score(z, groups=groups) > 0.85


def test_omics_asw():
    emb, labels = _blobs(n_per=60, seed=13)
    rng = np.random.default_rng(13)
    identical = M.omics_asw(emb, emb, labels)
    noisy = M.omics_asw(emb, emb + rng.normal(size=emb.shape), labels)
    separated = M.omics_asw(emb, emb + 5.0, labels)
    # identical layers: within a type of n = 60 cells per layer, a cell's mean distance to its own layer is
    # S / (n - 1) and to the other layer (which holds its twin at distance 0) S / n, so s = -1/n exactly
    assert identical == pytest.approx(1 - 1 / 60, abs=1e-5)
    assert identical > noisy > separated
    assert 0.0 <= separated < 0.5


def test_graph_connectivity():
    emb, labels = _blobs(seed=14)
    assert M.graph_connectivity(emb, emb + 0.1, labels) == pytest.approx(1.0)
    # type "b" is split into two far-apart halves of 30 cells: its largest component holds half of it
    rng = np.random.default_rng(14)
    z = np.concatenate([rng.normal(size=(60, 3)), rng.normal(size=(30, 3)) + 100, rng.normal(size=(30, 3)) - 100])
    lab = np.array(["a"] * 60 + ["b"] * 60)
    assert M.graph_connectivity(z, None, lab, n_neighbors=5) == pytest.approx(0.75)


# --------------------------------------------------------------------------- aggregation


def test_overall_scores_hand_computed():
    table = pd.DataFrame(
        {
            "ARI": [0.2, 0.6, 1.0],  # scaled 0, .5, 1
            "NMI": [0.5, 0.5, 0.9],  # 0, 0, 1
            "MAP": [0.3, 0.1, 0.2],  # 1, 0, .5
            "cASW": [0.4, 0.5, 0.6],  # 0, .5, 1
            "OEMS": [0.9, 0.5, 0.7],  # 1, 0, .5
            "SAS": [0.1, 0.3, 0.2],  # 0, 1, .5
            "GC": [0.8, 0.8, 0.9],  # 0, 0, 1
            "oASW": [0.7, 0.9, 0.8],  # 0, 1, .5
        },
        index=["A", "B", "C"],
    )
    out = M.overall_scores(table)
    np.testing.assert_allclose(out["S_bio"], [0.25, 0.25, 0.875])
    np.testing.assert_allclose(out["S_omics"], [0.25, 0.5, 0.625])
    np.testing.assert_allclose(out["overall"], [0.25, 0.35, 0.775])
    assert list(out.index) == ["A", "B", "C"]
    with pytest.raises(KeyError):
        M.overall_scores(table.drop(columns="GC"))


def test_integration_report_quick():
    emb, labels = _blobs(n_per=75, seed=15)
    rng = np.random.default_rng(15)
    good = M.integration_report(emb, emb + 0.1 * rng.normal(size=emb.shape), labels, quick=True)
    bad = M.integration_report(emb, rng.normal(size=emb.shape) * 20 + 200.0, labels, quick=True)
    for key in (*M.BIO_METRICS, *M.OMICS_METRICS, "FOSCTTM", "matching_score"):
        assert 0.0 <= good[key] <= 1.0, key
    assert good["FOSCTTM"] < 0.01 < bad["FOSCTTM"]
    assert good["OEMS"] > 0.9 > bad["OEMS"]
    table = pd.DataFrame([good, bad], index=["good", "bad"])
    overall = M.overall_scores(table)
    assert overall.loc["good", "overall"] > overall.loc["bad", "overall"]


def test_ari_nmi_leiden_on_a_precomputed_graph():
    from scipy import sparse

    labels = np.repeat(["a", "b", "c"], 30)
    blocks = sparse.block_diag([np.ones((30, 30)) - np.eye(30)] * 3, format="csr")  # three disconnected cliques
    res = M.ari_nmi_leiden(None, labels, adjacency=blocks, resolutions=[0.5, 1.0])
    assert res["ari"] == pytest.approx(1.0) and res["nmi"] == pytest.approx(1.0)
    shuffled = M.ari_nmi_leiden(None, np.random.default_rng(0).permutation(labels), adjacency=blocks, resolutions=[1.0])
    assert shuffled["ari"] < 0.1
    with pytest.raises(ValueError, match="square"):
        M.ari_nmi_leiden(None, labels, adjacency=blocks[:10])
