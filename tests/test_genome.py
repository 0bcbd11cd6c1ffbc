from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from scmamba.data._genome import (
    GenomeOrder,
    add_genomic_coordinates,
    chromosome_rank,
    gene_positions,
    genomic_order,
    parse_region,
    read_annotation,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SNARE = SHARED_DATA / "snareseq_mouse_cortex_chen2019.h5mu"


@pytest.fixture
def toy_var() -> pd.DataFrame:
    # original index:   0       1        2       3        4       5       6       7
    chroms = ["chr10", "chr2", "chrX", "chr19", "chrM", "chr2", "chr1", "chr2"]
    starts = [50, 300, 10, 999, 1, 100, 7, 100]
    return pd.DataFrame({"chrom": chroms, "start": starts}, index=[f"g{i}" for i in range(8)])


# --------------------------------------------------------------------------------------------------
# chromosome names and regions
# --------------------------------------------------------------------------------------------------
def test_chromosome_rank_natural_order():
    names = ["chrM", "chrX", "chr10", "chr2", "chrY", "chr1", "chr22", "chr19"]
    assert sorted(names, key=chromosome_rank) == ["chr1", "chr2", "chr10", "chr19", "chr22", "chrX", "chrY", "chrM"]
    assert chromosome_rank("chr1") == chromosome_rank("1") == chromosome_rank("Chr1") == chromosome_rank(1)
    assert chromosome_rank("chrX") == chromosome_rank("X")
    assert chromosome_rank("chrM") == chromosome_rank("MT") == chromosome_rank("chrMT") == chromosome_rank("M")
    assert chromosome_rank("chr19") < chromosome_rank("chrX") < chromosome_rank("chrY") < chromosome_rank("chrM")
    assert chromosome_rank("chr2") < chromosome_rank("chr10")
    for bad in ["GL456233.1", "chrUn_GL000220v1", "chr1_KI270706v1_random", "", "  ", np.nan, None, "chr0", "foo"]:
        assert chromosome_rank(bad) is None, bad


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("chr1:100-200", ("chr1", 100, 200)),
        ("chr1-100-200", ("chr1", 100, 200)),
        ("chr1_100_200", ("chr1", 100, 200)),
        ("1:100-200", ("chr1", 100, 200)),
        ("1-100-200", ("chr1", 100, 200)),
        ("X_5_10", ("chrX", 5, 10)),
        ("MT:1-20", ("chrM", 1, 20)),
        ("chr12:3000000-3000500", ("chr12", 3000000, 3000500)),
        ("GL456233.1:10-20", ("GL456233.1", 10, 20)),
        ("Gapdh", None),
        ("HLA-A", None),
        ("chr1:100", None),
        ("chr1:200-100", None),
    ],
)
def test_parse_region(name, expected):
    assert parse_region(name) == expected


# --------------------------------------------------------------------------------------------------
# ordering
# --------------------------------------------------------------------------------------------------
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


@pytest.mark.parametrize("modality", ["protein", "prot", "ADT"])
def test_protein_keeps_given_order(modality):
    var = pd.DataFrame({"chrom": ["chr2", "chr1", "chr3"], "start": [1, 2, 3]}, index=["CD8", "CD4", "CD3"])
    go = genomic_order(var, modality=modality)
    assert go.order.tolist() == [0, 1, 2]
    assert go.n_unplaced == 0
    assert go.source == "given order"
    X = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(go.apply(X), X)


# --------------------------------------------------------------------------------------------------
# annotations
# --------------------------------------------------------------------------------------------------
def test_annotation_dataframe_by_name_and_by_gene_id():
    ann = pd.DataFrame(
        {
            "gene_name": ["Cd4", "Actb", "Gapdh", "Cd4", "Xist"],
            "gene_id": ["ENSMUSG4", "ENSMUSG2", "ENSMUSG3", "ENSMUSG99", "ENSMUSG5"],
            "chrom": ["6", "5", "6", "1", "X"],
            "start": [100, 200, 50, 1, 10],
        }
    )
    var = pd.DataFrame(
        {"gene_id": ["ENSMUSG5.2", "ENSMUSG4.1", "ENSMUSG0", "ENSMUSG3.7", "ENSMUSG2.1"]},
        index=["Xist", "Cd4", "Unknown", "Gapdh", "Actb"],
    )
    go = genomic_order(var, annotation=ann)
    assert go.source == "annotation"
    # first row wins for the duplicated Cd4 (chr6:100, not chr1:1)
    assert var.index[go.order].tolist() == ["Actb", "Gapdh", "Cd4", "Xist", "Unknown"]
    assert go.n_unplaced == 1
    assert go.chrom.tolist() == ["chrX", "chr6", "", "chr6", "chr5"]

    # symbols that match nothing: fall back to var['gene_id'] (version suffix ignored) against gene_id
    by_id = genomic_order(var.set_axis(["a", "b", "c", "d", "e"]), annotation=ann)
    np.testing.assert_array_equal(by_id.order, go.order)

    # annotation_key selects the var column used for matching
    keyed = var.reset_index(names="symbol").set_axis(list("vwxyz"))
    np.testing.assert_array_equal(genomic_order(keyed, annotation=ann, annotation_key="symbol").order, go.order)


def test_annotation_gtf(tmp_path):
    lines = [
        "#!genome-build GRCm38",
        'chr2\tsrc\tgene\t500\t900\t.\t+\t.\tgene_id "G1"; gene_name "Alpha";',
        'chr2\tsrc\texon\t500\t600\t.\t+\t.\tgene_id "G1"; gene_name "Alpha"; transcript_id "T1";',
        'chr1\tsrc\tgene\t300\t400\t.\t-\t.\tgene_id "G2"; gene_name "Beta";',
        'MT\tsrc\tgene\t1\t50\t.\t+\t.\tgene_id "G3";',
        'chr1\tsrc\tgene\t100\t200\t.\t+\t.\tgene_id "G4"; gene_name "Gamma";',
    ]
    path = tmp_path / "genes.gtf.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")

    table = read_annotation(path)
    assert table.columns.tolist() == ["gene_name", "gene_id", "chrom", "start", "end"]
    assert table["gene_name"].tolist() == ["Alpha", "Beta", "G3", "Gamma"]  # gene records only; name falls back to id
    assert table["chrom"].tolist() == ["chr2", "chr1", "chrM", "chr1"]
    assert table["start"].tolist() == [500, 300, 1, 100]

    var = pd.DataFrame(index=["G3", "Alpha", "Beta", "Delta", "Gamma"])
    go = genomic_order(var, annotation=path)
    assert go.source == "annotation"
    assert var.index[go.order].tolist() == ["Gamma", "Beta", "Alpha", "G3", "Delta"]
    assert go.n_unplaced == 1


def test_annotation_csv(tmp_path):
    path = tmp_path / "genes.csv"
    pd.DataFrame({"symbol": ["B", "A"], "chromosome": ["chr1", "chr1"], "start": [20, 10], "end": [30, 15]}).to_csv(
        path, index=False
    )
    table = read_annotation(path)
    assert table["gene_name"].tolist() == ["B", "A"]
    go = genomic_order(pd.DataFrame(index=["B", "A"]), annotation=path)
    assert go.order.tolist() == [1, 0]


def test_gene_positions_tables():
    mm10 = gene_positions("mm10")
    assert {"gene_id", "gene_name", "chrom", "start", "end", "strand"} <= set(mm10.columns)
    assert len(mm10) > 50_000
    assert (mm10["chrom"] == "chr1").sum() > 1000
    assert set(mm10["chrom"]) <= {f"chr{i}" for i in range(1, 20)} | {"chrX", "chrY", "chrM"}
    assert mm10["start"].dtype == np.int64
    assert gene_positions("GRCM38").shape == mm10.shape
    hg38 = gene_positions("hg38")
    assert "chr22" in set(hg38["chrom"])
    # a fresh copy each time
    hg38.loc[0, "chrom"] = "changed"
    assert gene_positions("GRCh38").loc[0, "chrom"] != "changed"
    with pytest.raises(ValueError, match="GRCh38"):
        gene_positions("hg18")


def test_add_genomic_coordinates_copy_and_in_place():
    var = pd.DataFrame(
        {"chrom": ["chr11", None, np.nan], "start": [1.0, np.nan, np.nan]},
        index=["Gapdh", "Actb", "NotAGene123"],
    )
    adata = ad.AnnData(np.zeros((2, 3), dtype=np.float32), var=var)
    before = adata.var.copy()

    result = add_genomic_coordinates(adata, "mm10", copy=True)
    assert result is not None and result is not adata
    pd.testing.assert_frame_equal(adata.var, before)
    assert "end" not in adata.var.columns

    mm10 = gene_positions("mm10")
    actb = mm10[mm10["gene_name"] == "Actb"].iloc[0]
    gapdh = mm10[mm10["gene_name"] == "Gapdh"].iloc[0]
    assert result.var.loc["Actb", "chrom"] == actb["chrom"] == "chr5"
    assert result.var.loc["Actb", "start"] == actb["start"]
    assert result.var.loc["Actb", "end"] == actb["end"]
    # existing coordinates are kept unless overwrite=True
    assert result.var.loc["Gapdh", "chrom"] == "chr11" and result.var.loc["Gapdh", "start"] == 1
    assert pd.isna(result.var.loc["NotAGene123", "chrom"]) and pd.isna(result.var.loc["NotAGene123", "start"])

    assert add_genomic_coordinates(adata, "mm10", overwrite=True) is None
    assert adata.var.loc["Gapdh", "chrom"] == gapdh["chrom"] == "chr6"
    assert adata.var.loc["Gapdh", "start"] == gapdh["start"]
    go = genomic_order(adata.var)
    assert adata.var_names[go.order].tolist() == ["Actb", "Gapdh", "NotAGene123"]


# --------------------------------------------------------------------------------------------------
# real data
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def snare():
    if not SNARE.exists():
        pytest.skip(f"real test data not found: {SNARE}")
    import mudata

    mudata.set_options(pull_on_update=False)
    return mudata.read_h5mu(SNARE)


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
