"""Conversion of the downloaded public files into the MuData objects :mod:`scmamba.datasets` returns.

Text columns are mostly left as strings: writing the MuData (``write_h5mu``) stores those with repeated values as
categoricals in natural order (``chr2`` before ``chr10``), as anndata does for every file it writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..data import gene_positions

SNARESEQ_SOURCE = (
    "Chen, Lake & Zhang 2019 SNARE-seq adult mouse cortex (GEO GSE126074), as re-quantified in PeterZZQ/scMoMaT "
    "data/real/MOp_5batches batch 1 (GxC1/RxC1); mm10"
)
ABSEQ_SOURCE = (
    "Triana et al. 2021 Nat Immunol (BD Rhapsody Abseq, human bone marrow, 3 young + 3 aged donors), 9,663-cell "
    "QC-ed subset shipped as data/triana_data.rda in GitHub HsiaoChiLiao/EXTruvIIInb"
)

#: Gene symbols of the Abseq panel that Ensembl 109 knows under a newer name (used to look up coordinates only).
ABSEQ_RENAMED = {
    "ATPIF1": "ATP5IF1",
    "C6orf48": "SNHG32",
    "GUCY1B3": "GUCY1B1",
    "H1F0": "H1-0",
    "H2AFY": "MACROH2A1",
    "H2AFZ": "H2AZ1",
    "H3F3A": "H3-3A",
    "H3F3B": "H3-3B",
}


def _positions(symbols: np.ndarray, genome: str) -> pd.DataFrame:
    """``gene_id``, ``chrom``, ``start``, ``end``, ``strand`` of each symbol (first match; ``''``/NA if none)."""
    table = gene_positions(genome).drop_duplicates("gene_name").set_index("gene_name").reindex(symbols)
    out = table[["gene_id", "chrom", "start", "end", "strand"]].reset_index(drop=True)
    for col in ("gene_id", "chrom", "strand"):
        out[col] = out[col].fillna("").astype(object)
    for col in ("start", "end"):
        out[col] = out[col].astype("Int64")
    return out


def _mudata(mods: Mapping[str, ad.AnnData], obs: pd.DataFrame, uns: dict) -> md.MuData:
    for adata in mods.values():
        adata.obs = obs.copy()
    with md.set_options(pull_on_update=False):
        mdata = md.MuData(dict(mods))
        mdata.obs = obs.copy()
    mdata.uns.update(uns)
    return mdata


def _counts(matrix) -> sp.csr_matrix:
    return sp.csr_matrix(matrix, dtype=np.int32)


def snareseq(files: Mapping[str, Path]) -> md.MuData:
    """The SNARE-seq MuData from scMoMaT's files (``files`` maps their names to local paths).

    ``GxC1.npz``, ``RxC1.npz``, ``GxR.npz``, ``genes.txt``, ``regions.txt`` and ``meta_c1.csv``.
    """
    genes_x_cells = sp.load_npz(files["GxC1.npz"])
    regions_x_cells = sp.load_npz(files["RxC1.npz"]).tocsr()
    genes_x_regions = sp.load_npz(files["GxR.npz"]).tocsc()
    genes = pd.read_csv(files["genes.txt"], header=None, dtype=str)[0].to_numpy()
    regions = pd.read_csv(files["regions.txt"], header=None, dtype=str)[0].to_numpy()
    meta = pd.read_csv(files["meta_c1.csv"], index_col=0, dtype=str)
    if genes_x_cells.shape != (len(genes), len(meta)) or regions_x_cells.shape != (len(regions), len(meta)):
        raise ValueError("The scMoMaT files disagree on the numbers of genes, regions or cells.")

    obs = pd.DataFrame(
        {
            "cell_type": meta["Ident"].to_numpy(),
            "cell_type_coarse": meta["cluster (remapped)"].to_numpy(),
            "batch": meta["Batch"].to_numpy(),
            "barcode": meta["Barcode"].to_numpy(),
        },
        index=pd.Index(meta.index.to_numpy(dtype=object)),
    )
    rna_var = _positions(genes, "GRCm38").set_index(pd.Index(genes.astype(object)))

    # the regions were defined over five MOp batches: keep those with a count in these cells
    keep = np.flatnonzero(regions_x_cells.getnnz(axis=1) > 0)
    chrom, start, end = (pd.Series(regions[keep]).str.split("_", n=2, expand=True)[i] for i in range(3))
    linked = genes[genes_x_regions.indices[genes_x_regions.indptr[keep]]]  # one gene per region
    atac_var = pd.DataFrame(
        {
            "chrom": chrom.to_numpy(dtype=object),
            "start": start.astype(np.int64).to_numpy(),
            "end": end.astype(np.int64).to_numpy(),
            "linked_gene": linked.astype(object),
        },
        index=pd.Index((chrom + ":" + start + "-" + end).to_numpy(dtype=object)),
    )
    mods = {
        "rna": ad.AnnData(_counts(genes_x_cells.T), var=rna_var),
        "atac": ad.AnnData(_counts(regions_x_cells[keep].T), var=atac_var),
    }
    return _mudata(mods, obs, {"source": SNARESEQ_SOURCE})


def abseq(rda: Path) -> md.MuData:
    """The Abseq MuData from the R list in ``triana_data.rda`` (read with the ``rdata`` package, no R)."""
    import rdata

    data = rdata.conversion.convert(rdata.parser.parse_file(rda))["triana_data"]
    meta = data["metadata"]
    cells = pd.Index(meta.index.to_numpy(dtype=object))
    obs = pd.DataFrame(
        {
            "cell_type": meta["cellType_broad"].astype(str).to_numpy(dtype=object),
            "cell_type_fine": meta["cellType_refined"].astype(str).to_numpy(dtype=object),
            "batch": meta["sample_batch"].astype(str).to_numpy(dtype=object),
            "age_group": meta["sample_class"].astype(str).to_numpy(dtype=object),
        },
        index=cells,
    ).astype("category")  # categories in plain (not natural) order, as the data set was first published
    mods = {}
    for key, matrix, prefix in (("rna", data["rna_raw"], "mod1_"), ("prot", data["adt_raw"], "mod2_")):
        if not np.array_equal(matrix.coords[matrix.dims[0]].values.astype(str), cells.to_numpy(dtype=str)):
            raise ValueError(f"The cells of {key} differ from those of the metadata in {rda}.")
        original = matrix.coords[matrix.dims[1]].values.astype(str).astype(object)
        names = np.array([n.removeprefix(prefix) for n in original], dtype=object)
        values = np.asarray(matrix.values)
        if not np.array_equal(values, np.round(values)):
            raise ValueError(f"{key} holds non-integer counts in {rda}.")
        if key == "rna":
            names = np.array([n.replace("HLA.", "HLA-") for n in names], dtype=object)  # R's make.names undone
            lookup = np.array([ABSEQ_RENAMED.get(n, n) for n in names], dtype=object)
            var = pd.concat([pd.DataFrame({"lookup_symbol": lookup}), _positions(lookup, "GRCh38")], axis=1)
            var["original_name"] = original
        else:
            var = pd.DataFrame({"original_name": original})
        mods[key] = ad.AnnData(_counts(values), var=var.set_index(pd.Index(names)))
    controls = {k: np.asarray(data[k]).astype(str).astype(object) for k in ("nc1", "nc2", "nc3")}
    return _mudata(mods, obs, {"negative_control_sets": controls, "source": ABSEQ_SOURCE})
