"""Genomic order of features (``scmamba.data._order``): sources of coordinates, ties, unplaced features, real data."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import shared_file
from scipy import sparse

from scmamba.data import GenomeOrder, chromosome_rank, genomic_order


@pytest.fixture
def toy_var() -> pd.DataFrame:
    # original index:   0       1        2       3        4       5       6       7
    chroms = ["chr10", "chr2", "chrX", "chr19", "chrM", "chr2", "chr1", "chr2"]
    starts = [50, 300, 10, 999, 1, 100, 7, 100]
    return pd.DataFrame({"chrom": chroms, "start": starts}, index=[f"g{i}" for i in range(8)])


def test_natural_order_and_stable_ties(toy_var):
    before = toy_var.copy()
    go = genomic_order(toy_var)
    assert isinstance(go, GenomeOrder)
    assert go.source == "var columns"
    assert go.n_unplaced == 0 and go.n_features == 8
    assert go.order.dtype == np.int64
    # chr1, chr2 (100: g5 before g7 by original index), chr2 300, chr10, chr19, chrX, chrM
    assert go.order.tolist() == [6, 5, 7, 1, 0, 3, 2, 4]
    assert toy_var.index[go.order].tolist() == ["g6", "g5", "g7", "g1", "g0", "g3", "g2", "g4"]
    # per-original-feature coordinates
    assert go.chrom.tolist() == toy_var["chrom"].tolist()
    assert go.start.tolist() == toy_var["start"].tolist()
    pd.testing.assert_frame_equal(toy_var, before)


def test_apply_reorders_all_matrix_types_identically(toy_var):
    torch = pytest.importorskip("torch")
    go = genomic_order(toy_var)
    rng = np.random.default_rng(0)
    dense = rng.poisson(1.0, size=(5, 8)).astype(np.float32)
    # give every column a unique signature so a wrong permutation cannot go unnoticed
    dense[0] = np.arange(8) + 100
    csr = sparse.csr_matrix(dense)
    tensor = torch.from_numpy(dense.copy())

    out_dense = go.apply(dense)
    out_csr = go.apply(csr)
    out_tensor = go.apply(tensor)

    assert sparse.issparse(out_csr) and out_csr.format == "csr"
    assert isinstance(out_tensor, torch.Tensor)
    np.testing.assert_array_equal(out_dense, dense[:, go.order])
    np.testing.assert_array_equal(out_csr.toarray(), out_dense)
    np.testing.assert_array_equal(out_tensor.numpy(), out_dense)
    # labels and columns move together: column j of the output is feature var_names[order][j]
    ordered_names = toy_var.index[go.order]
    for j, name in enumerate(ordered_names):
        original_col = toy_var.index.get_loc(name)
        np.testing.assert_array_equal(out_dense[:, j], dense[:, original_col])
    assert out_dense[0].tolist() == [100 + int(name[1:]) for name in ordered_names]
    # the inverse gives the input back, and the input was not modified
    np.testing.assert_array_equal(out_dense[:, go.inverse], dense)
    assert dense[0].tolist() == list(range(100, 108))
    with pytest.raises(ValueError, match="features"):
        go.apply(np.zeros((2, 7)))


def test_non_string_chrom_and_float_start_with_nan():
    var = pd.DataFrame(
        {"chromosome": [2, 1, "X", 1, 10], "start": [5.0, np.nan, 3.0, 9.0, 1.0]},
        index=list("abcde"),
    )
    go = genomic_order(var)
    assert go.order.tolist() == [3, 0, 4, 2, 1]
    assert go.n_unplaced == 1
    assert go.chrom.tolist() == ["chr2", "", "chrX", "chr1", "chr10"]
    assert go.start.tolist() == [5, -1, 3, 9, 1]


@pytest.mark.parametrize("fmt", ["{c}:{s}-{e}", "{c}-{s}-{e}", "{c}_{s}_{e}"])
@pytest.mark.parametrize("prefix", ["chr", ""])
def test_peak_names(fmt, prefix):
    peaks = [("10", 5, 9), ("2", 900, 950), ("X", 1, 2), ("2", 100, 150), ("1", 70, 80)]
    names = [fmt.format(c=prefix + c, s=s, e=e) for c, s, e in peaks]
    go = genomic_order(pd.DataFrame(index=names))
    assert go.source == "feature names"
    assert go.n_unplaced == 0
    assert go.order.tolist() == [4, 3, 1, 0, 2]
    assert go.chrom.tolist() == ["chr10", "chr2", "chrX", "chr2", "chr1"]


def test_interval_column_with_missing_values():
    var = pd.DataFrame(
        {"interval": ["chr3:50-60", "NA", "chr1:500-600", np.nan, "chr1:10-20", "chrX:1-2"]},
        index=["A", "B", "C", "D", "E", "F"],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # missing intervals are not "unparseable names"
        go = genomic_order(var)
    assert go.source == "interval column"
    assert go.n_unplaced == 2
    assert var.index[go.order].tolist() == ["E", "C", "A", "F", "B", "D"]


def test_unplaced_keep_relative_order_and_warn_once():
    var = pd.DataFrame(
        {
            "chrom": ["GL456233.1", "chr2", "", "chrUn_x", "chr1", "JH584304.1", None, "chr1"],
            "start": [1, 5, 1, 1, 9, 1, 1, np.nan],
        },
        index=[f"f{i}" for i in range(8)],
    )
    with pytest.warns(UserWarning, match="could not be parsed") as record:
        go = genomic_order(var)
    assert len([w for w in record if issubclass(w.category, UserWarning)]) == 1
    message = str(record[0].message)
    assert "3 of 8" in message and "GL456233.1" in message
    assert go.order.tolist() == [4, 1, 0, 2, 3, 5, 6, 7]
    assert go.n_unplaced == 6
    assert go.chrom.tolist() == ["", "chr2", "", "", "chr1", "", "", ""]
    assert go.start.tolist() == [-1, 5, -1, -1, 9, -1, -1, -1]


def test_no_coordinates_raises():
    var = pd.DataFrame({"gene_id": ["ENSG1", "ENSG2"]}, index=["CD3E", "MS4A1"])
    with pytest.raises(ValueError, match="annotation=") as info:
        genomic_order(var)
    assert "add_genomic_coordinates" in str(info.value)
    with pytest.raises(ValueError, match="coordinates"):
        genomic_order(pd.DataFrame({"chrom": [np.nan, ""], "start": [1, 2]}, index=["a", "b"]))


@pytest.mark.parametrize("modality", ["protein", "prot", "ADT", "Antibody Capture", "protein_expression"])
def test_protein_keeps_given_order(modality):
    var = pd.DataFrame({"chrom": ["chr2", "chr1", "chr3"], "start": [1, 2, 3]}, index=["CD8", "CD4", "CD3"])
    go = genomic_order(var, modality=modality)
    assert go.order.tolist() == [0, 1, 2]
    assert go.n_unplaced == 0
    assert go.source == "given order"
    X = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(go.apply(X), X)


@pytest.fixture(scope="module")
def snare():
    import mudata

    return mudata.read_h5mu(shared_file("snareseq_mouse_cortex_chen2019.h5mu"))


def test_snareseq_rna(snare):
    rna = snare["rna"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # '' chromosomes are missing, not unparseable
        go = genomic_order(rna.var)
    assert go.source == "var columns"
    assert go.n_unplaced == 28
    unplaced = go.order[-28:]
    assert np.all(np.diff(unplaced) > 0)
    assert rna.var["start"].isna().to_numpy()[unplaced].all()
    placed = rna.var.iloc[go.order[:-28]]
    ranks = np.array([chromosome_rank(c) for c in placed["chrom"]])
    assert np.all(np.diff(ranks) >= 0)
    starts = placed["start"].to_numpy(dtype=np.int64)
    assert np.all((np.diff(ranks) > 0) | (np.diff(starts) >= 0))
    # the permuted matrix matches the permuted labels
    X = go.apply(rna.X)
    assert X.format == rna.X.format
    j = 17
    np.testing.assert_array_equal(X[:, j].toarray(), rna[:, placed.index[j]].X.toarray())
    # the shipped GRCm38 table gives the same placement
    np.testing.assert_array_equal(genomic_order(rna.var[["gene_id"]], annotation="mm10").order, go.order)


def test_snareseq_atac(snare):
    var = snare["atac"].var
    by_columns = genomic_order(var)
    by_names = genomic_order(var[[]])
    assert by_columns.source == "var columns" and by_names.source == "feature names"
    assert by_columns.n_unplaced == 0 and by_names.n_unplaced == 0
    np.testing.assert_array_equal(by_names.order, by_columns.order)
    assert not np.array_equal(by_columns.order, np.arange(var.shape[0]))  # the file is not in natural order
    ordered = var.iloc[by_columns.order]
    ranks = ordered["chrom"].map(chromosome_rank).to_numpy(dtype=np.int64)
    assert np.all(np.diff(ranks) >= 0)
    assert ordered["chrom"].iloc[0] == "chr1" and ordered["chrom"].iloc[-1] == "chrX"
