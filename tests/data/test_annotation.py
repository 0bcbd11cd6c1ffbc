"""Gene annotation tables and coordinates in ``var`` (``scmamba.data._annotation``, ``._coordinates``)."""

from __future__ import annotations

import gzip

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from scmamba.data import add_genomic_coordinates, gene_positions, genomic_order, read_annotation


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
