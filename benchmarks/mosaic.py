"""Mosaic integration: SCMAMBA and scvi-tools peers trained on thirds of paired, RNA-only and other-only cells.

The cells of a paired data set are split at random into thirds: paired, RNA-only (the ATAC or protein layer
dropped) and other-only (the RNA layer dropped). Each method is trained on that mosaic with its package defaults
and evaluated on what the mosaic hid:

* (a) ``cell_type`` transferred from the RNA-only cells to the other-only cells through
  :func:`scmamba.tl.match_cells` (15 best matches, score-weighted vote) on each method's embedding of every cell:
  accuracy and macro-F1;
* (b) FOSCTTM between the RNA and the other-modality embeddings of the unpaired two thirds, each computed from the
  cell's full profiles: every such cell was trained with one of its layers only, so its true pairing was hidden
  (lower is better, random 0.5). Also per third.

Peers: MULTIVI with scvi-tools' documented mosaic set-up (every cell in both modalities, the unmeasured layer an
all-zero row, which MULTIVI masks, and the ``modality`` of each cell as batch), on RNA + ATAC and, through its
protein branch (``protein_layer``, no regions), on RNA + protein; TOTALVI (Abseq) can embed
paired and RNA-only cells but not protein-only cells (it needs RNA counts), so neither metric is defined for it: it
is trained on the paired and RNA-only cells (the RNA-only cells' proteins masked as a batch without protein data)
and reported as n/a. GLUE (scglue, if installed: ``pip install scglue``; SNARE-seq only) is given the RNA of the
paired and RNA-only cells and the ATAC of the paired and ATAC-only cells as two unpaired data sets (its own setting),
preprocessed as its tutorial does (RNA: log-normalised, scaled PCA 100; ATAC: LSI 100; library as batch) with the
tutorial's guidance graph (each gene body plus 2 kb promoter linked to the peaks it overlaps; reverse edges and
self-loops). PCA and LSI are fitted on the cells each layer was measured in and applied to the hidden layers.
GLUE's features (``--glue-features``): ``all`` (default), every gene and peak, as the other methods get; ``linked``,
its own defaults: 2,000 seurat_v3 highly variable genes (every gene of a smaller panel) and the peaks the guidance
graph links to them (``rna_anchored_guidance_graph``'s ``propagate_highly_variable``), which is what its tutorial
trains on.

    python -m benchmarks.mosaic                      # both shared data sets, package defaults
    python -m benchmarks.mosaic --quick              # 600 cells, 2 epochs, small SCMAMBA (minutes)
    python -m benchmarks.mosaic --methods scmamba --paired-only   # SCMAMBA trained on the paired third alone
    python -m benchmarks.mosaic --methods glue --glue-features linked   # GLUE as its tutorial runs it

Writes ``mosaic_<data>.json`` (``_paired_only`` / ``_quick`` before ``.json`` with those options) to ``--out`` (default
``benchmarks/results``) and prints a Markdown table last.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.helpers.common import (
    RESULTS,
    default_threads,
    limit_threads,
    load_data,
    machine_info,
    markdown_table,
    other_modality,
    quick_scmamba_config,
    to_jsonable,
)
from benchmarks.helpers.common import SHARED_DATA as SHARED
from benchmarks.helpers.methods import multivi, scmamba, totalvi

DEFAULT_DATA = [
    SHARED / "snareseq_mouse_cortex_chen2019.h5mu",
    SHARED / "abseq_bonemarrow_triana2021.h5mu",
]
QUICK = {"max_cells": 600, "epochs": 2}
GROUPS = np.array(["paired", "rna_only", "other_only"])


def mosaic_split(mdata, other: str, seed: int):
    """``mdata`` with its cells split at random into thirds; returns ``(mosaic, group)``.

    ``mosaic`` holds the paired and RNA-only cells in ``'rna'`` and the paired and other-only cells in ``other``
    (the MuData convention: a cell absent from a modality was not measured in it); ``group`` names each cell's
    third (``'paired'``, ``'rna_only'``, ``'other_only'``), in ``mdata.obs_names`` order.
    """
    import mudata as md

    group = GROUPS[np.random.default_rng(seed).permutation(np.arange(mdata.n_obs) % 3)]
    mosaic = md.MuData(
        {"rna": mdata["rna"][group != "other_only"].copy(), other: mdata[other][group != "rna_only"].copy()}
    )
    mosaic = mosaic[mdata.obs_names].copy()  # the union comes in modality order; keep the original cell order
    mosaic.obs = mdata.obs.loc[mosaic.obs_names].copy()
    return mosaic, group


def zero_filled(mdata, other: str, group: np.ndarray, keep: np.ndarray | None = None):
    """Every cell in both modalities, the unmeasured layer an all-zero row (scvi-tools' mosaic convention).

    ``obs['modality']`` is ``'paired'``, ``'expression'`` or ``'accessibility'``/``'protein'`` (as
    :func:`scvi.data.organize_multiome_anndatas` names them); ``keep`` selects cells. Proteins come dense: the
    totalVI protein likelihood (TOTALVI, MULTIVI's protein branch) reads a dense matrix.
    """
    import mudata as md
    from scipy import sparse

    keep = np.ones(mdata.n_obs, bool) if keep is None else keep
    dense = other_modality(mdata)[1] == "protein"
    mods = {}
    for mod, drop in (("rna", "other_only"), (other, "rna_only")):
        ad = mdata[mod][keep].copy()
        X = sparse.csr_matrix(ad.X, dtype=np.float32)
        X = sparse.diags((group[keep] != drop).astype(np.float32)) @ X
        X.eliminate_zeros()
        ad.X = X.toarray() if mod == other and dense else X
        mods[mod] = ad
    out = md.MuData(mods)
    out.obs = mdata.obs.loc[out.obs_names].copy()
    names = {
        "paired": "paired",
        "rna_only": "expression",
        "other_only": "accessibility" if other == "atac" else "protein",
    }
    out.obs["modality"] = [names[g] for g in group[keep]]
    out.obs["_indices"] = np.arange(out.n_obs)  # MULTIVI registers this column; embedding new data needs it too
    return out


def epochs_run(model) -> int:
    """Training epochs a model ran (early stopping may end before ``max_epochs``)."""
    return max(len(v) for k, v in model.history.items() if k.endswith("train") or k.startswith("train"))


def evaluate(z, x_rna, x_other, group, labels) -> dict:
    """(a) RNA-only -> other-only label transfer through ``match_cells``; (b) FOSCTTM of the unpaired cells."""
    from sklearn.metrics import accuracy_score, f1_score

    from scmamba.metrics import foscttm
    from scmamba.tl import match_cells

    rna, oth = group == "rna_only", group == "other_only"
    rec = {}
    if z is not None:
        m = match_cells(z[oth], z[rna], k=min(15, int(rna.sum())), ref_labels=labels[rna])
        pred = m.labels["label"].astype(str).to_numpy()
        rec["transfer_acc"] = accuracy_score(labels[oth], pred)
        rec["transfer_f1"] = f1_score(labels[oth], pred, average="macro")
        rec["top1_same_label"] = float((labels[rna][m.indices[:, 0]] == labels[oth]).mean())
    if x_rna is not None:
        un = rna | oth
        rec["foscttm"] = foscttm(x_rna[un], x_other[un])
        rec["foscttm_rna_only"] = foscttm(x_rna[rna], x_other[rna])
        rec["foscttm_other_only"] = foscttm(x_rna[oth], x_other[oth])
    return rec


def run_scmamba(mdata, mosaic, other, kind, quick: bool, epochs: int | None, kwargs: dict | None = None,
                train_kwargs: dict | None = None, paired_only: bool = False):  # fmt: skip
    # paired_only: a reference point, not the protocol; the model sees the paired third alone and embeds the rest
    train = mosaic
    if paired_only:
        names = mosaic.obs_names
        train = mosaic[names.isin(mosaic["rna"].obs_names) & names.isin(mosaic[other].obs_names)].copy()
    model = scmamba(train, other, kind, **{**(quick_scmamba_config() if quick else {}), **(kwargs or {})})
    model.train(**({"max_epochs": epochs} if epochs else {}), enable_progress_bar=False, **(train_kwargs or {}))
    z = model.get_latent_representation(mosaic)
    # the full profiles of every cell, through each encoder (the layer a single-modality cell lacked was never seen)
    x_rna = model.get_latent_representation(mdata, modality="rna")
    x_other = model.get_latent_representation(mdata, modality=kind)
    return z, x_rna, x_other, {"epochs": epochs_run(model)}


def run_multivi(mdata, other, kind, group, epochs: int | None):
    train = zero_filled(mdata, other, group)
    full = zero_filled(mdata, other, np.full(mdata.n_obs, "paired"))
    model = multivi(train, other, kind, batch_key="modality", batch_from_rna=False)
    model.train(**({"max_epochs": epochs} if epochs else {}), enable_progress_bar=False)
    z = model.get_latent_representation(train)  # masked mean over the layers each cell has
    x_rna = model.get_latent_representation(full, modality="expression")
    x_other = model.get_latent_representation(full, modality="accessibility" if kind == "atac" else "protein")
    return z, x_rna, x_other, {"epochs": epochs_run(model)}


def run_totalvi(mdata, other, group, epochs: int | None):
    keep = group != "other_only"  # TOTALVI needs RNA counts: protein-only cells cannot be embedded
    train = zero_filled(mdata, other, group, keep=keep)
    # RNA-only cells form a batch without protein data, which TOTALVI masks (zero_filled densified the proteins)
    model = totalvi(train, other, batch_key="modality", batch_from_rna=False)
    model.train(**({"max_epochs": epochs} if epochs else {}), enable_progress_bar=False)
    n = model.get_latent_representation().shape[0]
    note = f"embeds the {n:,} paired and RNA-only cells; protein-only cells cannot be embedded (no RNA), so n/a"
    return None, None, None, {"epochs": epochs_run(model), "note": note}


def _gene_peak_graph(genes, peaks, promoter_len: int = 2000):
    """The guidance graph of ``scglue.genomics.rna_anchored_guidance_graph`` (``gene_region="combined"``).

    Written with numpy interval overlaps because scglue's version shells out to the ``bedtools`` binary, which is
    not installable from PyPI. Edges: gene -> overlapping peak and back (weight 1, sign 1), and a self-loop on
    every feature.
    """
    import networkx as nx

    graph = nx.MultiDiGraph()
    for chrom, pk in peaks.groupby("chrom", observed=True):
        pk = pk.sort_values("start")
        p_start, p_end = pk["start"].to_numpy(), pk["end"].to_numpy()
        for name, g in genes[genes["chrom"] == chrom].iterrows():
            lo, hi = int(g["start"]), int(g["end"])
            if g["strand"] == "-":
                hi += promoter_len
            else:
                lo -= promoter_len
            # peaks overlapping [lo, hi): start < hi, and end > lo (the running maximum of ends bounds the search)
            i0, i1 = np.searchsorted(np.maximum.accumulate(p_end), lo, "right"), np.searchsorted(p_start, hi)
            for peak in pk.index[i0:i1][p_end[i0:i1] > lo]:
                graph.add_edge(name, peak, weight=1.0, sign=1, type="fwd")
                graph.add_edge(peak, name, weight=1.0, sign=1, type="rev")
    for name in [*genes.index, *peaks.index]:
        graph.add_edge(name, name, weight=1.0, sign=1, type="loop")
    return graph


def run_glue(mdata, other, group, epochs: int | None, features: str = "all"):
    import scanpy as sc
    import scglue
    from scipy import sparse
    from sklearn.decomposition import PCA, TruncatedSVD
    from sklearn.preprocessing import normalize

    rna_all, atac_all = mdata["rna"].copy(), mdata[other].copy()
    for ad in (rna_all, atac_all):
        ad.X = sparse.csr_matrix(ad.X, dtype=np.float32)
        ad.obs["batch"] = mdata.obs["batch"].astype(str).to_numpy()
    has_rna, has_atac = group != "other_only", group != "rna_only"
    # RNA as the tutorial: counts layer for the NB likelihood; PCA of the scaled log-normalised profiles
    rna_all.layers["counts"] = rna_all.X.copy()
    lognorm = sc.pp.log1p(sc.pp.normalize_total(rna_all, inplace=False)["X"])
    lognorm = np.asarray(lognorm.toarray() if sparse.issparse(lognorm) else lognorm)
    mu, sd = lognorm[has_rna].mean(0), lognorm[has_rna].std(0) + 1e-8
    pca = PCA(100, random_state=0).fit((lognorm[has_rna] - mu) / sd)
    rna_all.obsm["X_pca"] = pca.transform((lognorm - mu) / sd).astype(np.float32)
    # ATAC: scglue.data.lsi's TF-IDF, l1 normalisation, log1p(1e4 x), SVD; fitted on the measured cells
    X = atac_all.X
    idf = X[has_atac].shape[0] / (np.asarray(X[has_atac].sum(0)).ravel() + 1e-8)
    tf = normalize(X, norm="l1") @ sparse.diags(idf)
    tf = normalize(tf, norm="l1")
    tf.data = np.log1p(tf.data * 1e4)
    svd = TruncatedSVD(100, n_iter=15, random_state=0).fit(tf[has_atac])
    lsi = svd.transform(tf) / svd.singular_values_
    lsi -= lsi.mean(1, keepdims=True)
    lsi /= lsi.std(1, ddof=1, keepdims=True)
    atac_all.obsm["X_lsi"] = lsi.astype(np.float32)

    graph = _gene_peak_graph(rna_all.var, atac_all.var)
    if features == "all":
        # every feature, as SCMAMBA and MULTIVI get: the SNARE-seq panels are pre-filtered upstream (1,677 genes,
        # 24,744 peaks); peaks linked to no gene keep their self-loop
        rna_all.var["highly_variable"] = atac_all.var["highly_variable"] = True
    else:
        # GLUE's defaults (its tutorial): 2,000 seurat_v3 HVGs (every gene of a smaller panel), and the peaks the
        # guidance graph links to them (``rna_anchored_guidance_graph(propagate_highly_variable=True)``)
        if rna_all.n_vars > 2000:
            hvg = sc.pp.highly_variable_genes(
                rna_all[has_rna], n_top_genes=2000, flavor="seurat_v3", layer="counts", inplace=False
            )
            rna_all.var["highly_variable"] = hvg["highly_variable"].to_numpy()
        else:
            rna_all.var["highly_variable"] = True
        hvgs = set(rna_all.var_names[rna_all.var["highly_variable"]])
        linked = {v for u, v, t in graph.edges(data="type") if t == "fwd" and u in hvgs}
        atac_all.var["highly_variable"] = atac_all.var_names.isin(list(linked))
        graph = graph.subgraph([*hvgs, *linked]).copy()
    kw = {"use_highly_variable": True, "use_batch": "batch"}
    scglue.models.configure_dataset(rna_all, "NB", use_layer="counts", use_rep="X_pca", **kw)
    scglue.models.configure_dataset(atac_all, "NB", use_rep="X_lsi", **kw)
    rna, atac = rna_all[has_rna].copy(), atac_all[has_atac].copy()
    fit_kws = {"max_epochs": epochs} if epochs else {}
    with tempfile.TemporaryDirectory() as tmp:
        glue = scglue.models.fit_SCGLUE({"rna": rna, "atac": atac}, graph, fit_kws={"directory": tmp, **fit_kws})
    x_rna = glue.encode_data("rna", rna_all)
    x_other = glue.encode_data("atac", atac_all)
    z = np.where(
        has_rna[:, None] & has_atac[:, None], (x_rna + x_other) / 2, np.where(has_rna[:, None], x_rna, x_other)
    )
    n_used = {"rna": int(rna_all.var["highly_variable"].sum()), "atac": int(atac_all.var["highly_variable"].sum())}
    return z, x_rna, x_other, {"epochs": None, "features": features, "n_features_used": n_used}


def run_dataset(path: Path, args) -> list[dict]:
    import scvi

    mdata, other, kind = load_data(str(path), QUICK["max_cells"] if args.quick else args.max_cells, args.seed)
    mosaic, group = mosaic_split(mdata, other, args.seed)
    labels = mdata.obs[args.label_key].astype(str).to_numpy()
    epochs = QUICK["epochs"] if args.quick else None
    methods = args.methods or ["scmamba", "multivi", *(["totalvi"] if kind == "protein" else [])]
    rows = []
    for method in methods:
        scvi.settings.seed = args.seed
        t0 = time.perf_counter()
        if method == "scmamba":
            kwargs = json.loads(args.scmamba_kwargs) if args.scmamba_kwargs else None
            train_kwargs = json.loads(args.scmamba_train_kwargs) if args.scmamba_train_kwargs else None
            z, x_rna, x_other, info = run_scmamba(
                mdata, mosaic.copy(), other, kind, args.quick, epochs, kwargs, train_kwargs, args.paired_only
            )
            info["trained_on"] = "paired third only" if args.paired_only else "mosaic"
        elif method == "multivi":
            z, x_rna, x_other, info = run_multivi(mdata, other, kind, group, epochs)
        elif method == "glue":
            z, x_rna, x_other, info = run_glue(mdata, other, group, epochs, args.glue_features)
        elif method == "totalvi":
            z, x_rna, x_other, info = run_totalvi(mdata, other, group, epochs)
        else:
            raise ValueError(f"unknown method {method!r}")
        rec = {"data": path.stem, "method": method, "other": kind, "n_cells": mdata.n_obs, **info}
        rec.update(evaluate(z, x_rna, x_other, group, labels))
        rec["wall_s"] = time.perf_counter() - t0
        rows.append(rec)
        print(json.dumps(to_jsonable(rec)), flush=True)
    return rows


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", default=None, help="h5mu files (default: SNARE-seq and Abseq in ../shared)")
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="default: scmamba, multivi and (protein) totalvi; also glue (ATAC)",
    )
    p.add_argument("--label-key", default="cell_type")
    p.add_argument("--max-cells", type=int, default=0, help="random subset of cells (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=default_threads())
    p.add_argument("--quick", action="store_true", help=f"{QUICK['max_cells']} cells, {QUICK['epochs']} epochs")
    p.add_argument("--scmamba-kwargs", default=None, help="JSON of SCMAMBA init keywords (default: the defaults)")
    p.add_argument("--scmamba-train-kwargs", default=None, help="JSON of SCMAMBA.train keywords (e.g. batch_size)")
    p.add_argument(
        "--paired-only",
        action="store_true",
        help="SCMAMBA trains on the paired third alone (a reference point: what the single-layer cells add)",
    )
    p.add_argument(
        "--glue-features",
        choices=["all", "linked"],
        default="all",
        help="GLUE features: all (as every method gets) or linked (its defaults: HVGs and the peaks linked to them)",
    )
    p.add_argument("--out", default=None, help="output folder (default benchmarks/results)")
    return p.parse_args(argv)


COLUMNS = ["data", "method", "epochs", "transfer_acc", "transfer_f1", "foscttm", "foscttm_rna_only",
           "foscttm_other_only", "wall_s"]  # fmt: skip


def main(argv=None):
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    limit_threads(args.threads)
    out_dir = Path(args.out) if args.out else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    all_rows = []
    for path in [Path(p) for p in (args.data or DEFAULT_DATA)]:
        rows = run_dataset(path, args)
        all_rows += rows
        meta = {**machine_info(), "threads": args.threads, "quick": args.quick, "seed": args.seed,
                "label_key": args.label_key, "split": "random thirds: paired / rna_only / other_only",
                "scmamba_kwargs": args.scmamba_kwargs, "scmamba_train_kwargs": args.scmamba_train_kwargs,
                "paired_only": args.paired_only}  # fmt: skip
        name = f"mosaic_{path.stem}{'_paired_only' if args.paired_only else ''}{'_quick' if args.quick else ''}.json"
        (out_dir / name).write_text(json.dumps(to_jsonable({"meta": meta, "rows": rows}), indent=1))
        print(f"wrote {out_dir / name}", flush=True)
    print(markdown_table(all_rows, COLUMNS, digits={"wall_s": 0}))


if __name__ == "__main__":
    main()
