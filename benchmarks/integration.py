"""Integration benchmark: SCMAMBA next to scvi-tools peers and classic baselines on the same cells, one run.

On one paired data set (RNA+ATAC or RNA+protein) every method is trained on a random 80% of the cells (seed 0,
``helpers.common.holdout_split``) and evaluated on the held-out 20% and on an equally large random subset of the
training cells. Methods (``--methods``; default: all that apply to the data):

``scmamba``          SCMAMBA, default configuration (``--epochs-scmamba``, default 50 as ``SCMAMBA.train``).
``scmamba_paper``    SCMAMBA with ``SCMAMBA.paper_config(modalities)``; only with ``--paper`` (slow on CPU).
``multivi``          scvi-tools MULTIVI on all genes and peaks, defaults, 30 epochs (RNA+ATAC).
``multivi_hvg``      MULTIVI on the top 2,000 genes (``highly_variable_genes(flavor='seurat_v3')``) and the 20,000
                     most frequently open peaks, both chosen on the training cells (RNA+ATAC).
``totalvi``          scvi-tools TOTALVI, defaults, 100 epochs (RNA+protein). It has a joint latent only, which is
                     used for both layers (so its FOSCTTM is 0 and its omics-alignment metrics are trivially
                     perfect; the ``latent`` and ``note`` columns say so); its bio metrics use the joint latent.
``pca_lsi_harmony``  RNA normalize_total + log1p + PCA(50); ATAC TF-IDF + LSI (TruncatedSVD, first component
                     dropped) or protein CLR (per cell) + PCA; both fitted on the training cells, held-out cells
                     projected. Each layer's embedding is scaled to unit total variance, the layers are stacked
                     (2N rows) and aligned by harmonypy with the omics layer as the batch, on all cells (Harmony is
                     transductive: it cannot embed new cells, so the held-out cells take part in its run).
``wnn``              muon weighted nearest neighbours on the same PCA and LSI/PCA representations, one graph per
                     evaluated cell set. Only ARI/NMI (best Leiden clustering of the WNN graph) are defined; the
                     other metrics are n/a.

Metrics (:func:`scmamba.metrics.integration_report`): ARI, NMI, MAP, cASW (biology, on the 2N stacked per-layer
embeddings), OEMS, SAS, GC, oASW (omics alignment), FOSCTTM and matching score; ``overall_scores`` across the
methods per evaluation split (S_bio, S_omics, overall = 0.6 S_bio + 0.4 S_omics, min-max scaled over the methods
of this run); on the held-out cells also FOSCTTM within each batch (``FOSCTTM_within_batch``, weighted by the
batches' cell counts: batch correction removes what tells batches apart, so it can raise FOSCTTM over all cells
while leaving the matching inside a batch as it was); 15-NN label transfer from the training cells' RNA embedding
to the evaluated cells' other-layer embedding (accuracy, macro-F1); training and embedding wall time, cells/s and
peak RSS, each method in its own subprocess.

Usage::

    python -m benchmarks.integration --data ../shared/data/snareseq_mouse_cortex_chen2019.h5mu
    python -m benchmarks.integration --data ../shared/data/abseq_bonemarrow_triana2021.h5mu
    python -m benchmarks.integration --data ... --quick --out /tmp/bench      # ~600 cells, 2 epochs, minutes

Writes ``integration_<data>.json`` / ``.csv`` / ``_umap.png`` / ``_metrics.png`` to ``--out`` (default
``benchmarks/results``) and prints a Markdown table last.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.helpers.common import (
    RESULTS,
    THREADS_HELP,
    Sections,
    default_threads,
    epoch_timer,
    foscttm_within,
    holdout_split,
    limit_threads,
    load_data,
    machine_info,
    markdown_table,
    quick_scmamba_config,
    run_child,
    set_threads,
    to_jsonable,
)
from benchmarks.helpers.methods import LayerReducer, harmony, multivi, scmamba, totalvi, wnn_mdata

METHODS = {
    "atac": ["scmamba", "multivi", "multivi_hvg", "pca_lsi_harmony", "wnn"],
    "protein": ["scmamba", "totalvi", "pca_lsi_harmony", "wnn"],
}
ALL_METHODS = ["scmamba", "scmamba_paper", "multivi", "multivi_hvg", "totalvi", "pca_lsi_harmony", "wnn"]
DEFAULT_EPOCHS = {"scmamba": 50, "multivi": 30, "totalvi": 100}  # SCMAMBA: SCMAMBA.train's default max_epochs
QUICK_CELLS = 600
QUICK_EPOCHS = 2
HVG_GENES = 2000
HVG_PEAKS = 20000
LABEL_K = 15
METRICS = ["ARI", "NMI", "MAP", "cASW", "OEMS", "SAS", "GC", "oASW", "FOSCTTM", "matching_score"]
SCORES = ["S_bio", "S_omics", "overall"]
TRANSFER = ["label_acc", "label_f1"]
COST = [
    "epochs",
    "train_s",
    "time_per_epoch_s",
    "train_cells_per_s",
    "embed_s",
    "embed_cells_per_s",
    "peak_rss_train_gb",
    "peak_rss_embed_gb",
]
NOTES = {
    "scmamba": "per-layer embeddings from each encoder",
    "scmamba_paper": "paper_config sizes; per-layer encoders",
    "multivi": "all features; per-layer latents (expression / accessibility)",
    "multivi_hvg": f"top {HVG_GENES} seurat_v3 HVGs + top {HVG_PEAKS} peaks by frequency (training cells)",
    "totalvi": "joint latent only: used for both layers (FOSCTTM=0 and omics metrics trivially perfect); "
    "bio metrics on the joint latent",
    "pca_lsi_harmony": "PCA/LSI fitted on training cells, held-out projected; Harmony (omics layer as batch) on all "
    "cells",
    "wnn": "muon WNN graph per evaluated cell set; ARI/NMI from Leiden on the graph, other metrics n/a",
}


# --------------------------------------------------------------------------------------------------- data / split
def split_cells(n: int, seed: int) -> dict:
    """Held-out split and evaluation subsets.

    ``train``/``test``: indices into the cells (``helpers.common.holdout_split``, 80/20). ``train_eval``: positions
    within ``train`` of a random subset as large as the test set (metrics on training cells are computed there, so both
    splits have the same number of cells and N-dependent metrics are comparable). ``train_ref``: the other
    training positions, the label-transfer reference for the training split.
    """
    train, test = holdout_split(n, seed)
    rng = np.random.default_rng(seed + 1)
    n_eval = min(len(test), len(train) - 1)
    train_eval = np.sort(rng.choice(len(train), n_eval, replace=False))
    train_ref = np.setdiff1d(np.arange(len(train)), train_eval)
    return {"train": train, "test": test, "train_eval": train_eval, "train_ref": train_ref}


# --------------------------------------------------------------------------------------------------- child: methods
def _train_deep(model, epochs: int, sections: Sections, **kwargs) -> dict:
    timer = epoch_timer()
    with sections.train():
        model.train(max_epochs=epochs, enable_progress_bar=False, callbacks=[timer], **kwargs)
    return {"epochs": len(timer.times), "time_per_epoch_s": float(np.median(timer.times)) if timer.times else None}


def _with_embeddings(out: dict, model, rna_test, oth_test, rna_train, oth_train_eval) -> dict:
    """Add a deep model's parameter count and the embeddings the parent process evaluates."""
    out["n_params"] = int(sum(p.numel() for p in model.module.parameters()))
    out["arrays"] = {
        "rna_test": rna_test,
        "oth_test": oth_test,
        "rna_train": rna_train,
        "oth_train_eval": oth_train_eval,
    }
    return out


def run_scmamba(ref, query, other, kind, split, epochs, kwargs, sections) -> dict:
    """SCMAMBA: per-layer embeddings from each modality's encoder."""
    model = scmamba(ref, other, kind, **kwargs)
    out = _train_deep(model, epochs, sections)
    with sections.embed():
        rna_test = model.get_latent_representation(query, modality="rna")
        oth_test = model.get_latent_representation(query, modality=kind)
    rna_train = model.get_latent_representation(modality="rna")
    oth_train_eval = model.get_latent_representation(modality=kind, indices=split["train_eval"])
    return _with_embeddings(out, model, rna_test, oth_test, rna_train, oth_train_eval)


def select_multivi_features(ref, other: str) -> tuple[np.ndarray, np.ndarray]:
    """Top ``HVG_GENES`` genes by seurat_v3 and top ``HVG_PEAKS`` peaks by the fraction of training cells open."""
    import scanpy as sc

    rna = ref.mod["rna"].copy()
    n_genes = min(HVG_GENES, rna.n_vars)
    sc.pp.highly_variable_genes(rna, flavor="seurat_v3", n_top_genes=n_genes)
    genes = np.flatnonzero(rna.var["highly_variable"].to_numpy())
    X = ref.mod[other].X
    freq = np.asarray((X > 0).mean(axis=0)).ravel()
    n_peaks = min(HVG_PEAKS, X.shape[1])
    peaks = np.sort(np.argsort(-freq, kind="stable")[:n_peaks])
    return genes, peaks


def _subset_features(mdata, other: str, genes: np.ndarray, peaks: np.ndarray):
    from mudata import MuData

    sub = MuData({"rna": mdata.mod["rna"][:, genes].copy(), other: mdata.mod[other][:, peaks].copy()})
    sub.obs = mdata.obs.loc[sub.obs_names].copy()
    return sub


def run_multivi(ref, query, other, split, epochs, hvg, sections) -> dict:
    """MULTIVI (all features, or the HVG/frequent-peak subset); per-layer latents expression/accessibility."""

    out = {}
    if hvg:  # feature selection counts as training; the held-out cells are subset with the chosen features
        t0 = time.perf_counter()
        with sections.train():
            genes, peaks = select_multivi_features(ref, other)
            ref = _subset_features(ref, other, genes, peaks)
        query = _subset_features(query, other, genes, peaks)
        out.update(n_genes_used=len(genes), n_peaks_used=len(peaks), feature_selection_s=time.perf_counter() - t0)
    model = multivi(ref, other)
    out.update(_train_deep(model, epochs, sections))
    query.obs["_indices"] = np.arange(query.n_obs)  # MULTIVI registers this column; its query transfer needs it
    with sections.embed():
        rna_test = model.get_latent_representation(query, modality="expression")
        oth_test = model.get_latent_representation(query, modality="accessibility")
    rna_train = model.get_latent_representation(modality="expression")
    oth_train_eval = model.get_latent_representation(modality="accessibility", indices=split["train_eval"])
    return _with_embeddings(out, model, rna_test, oth_test, rna_train, oth_train_eval)


def run_totalvi(ref, query, other, split, epochs, sections) -> dict:
    """TOTALVI (defaults): one joint latent, returned for both layers (protein counts densified, as it needs)."""
    model = totalvi(ref, other, also_dense=[query])
    out = _train_deep(model, epochs, sections)
    with sections.embed():
        z_test = model.get_latent_representation(query)
    z_train = model.get_latent_representation()
    return _with_embeddings(out, model, z_test, z_test, z_train, z_train[split["train_eval"]])


def run_harmony(ref, query, other, kind, split, seed, sections) -> dict:
    """PCA/LSI (or CLR+PCA) per layer, layers stacked and aligned by Harmony with the omics layer as batch."""
    red = LayerReducer(kind, seed=seed)
    with sections.train():
        r_tr, o_tr = red.fit_transform(ref.mod["rna"].X, ref.mod[other].X)
    with sections.embed():
        r_te, o_te = red.transform(query.mod["rna"].X, query.mod[other].X)
    t0 = time.perf_counter()
    with sections.train():  # Harmony is transductive: it runs on training and held-out cells together
        # equal overall scale per layer (unrelated axes; Harmony aligns the layers' cluster centroids)
        s_r, s_o = np.sqrt(r_tr.var(axis=0).sum()), np.sqrt(o_tr.var(axis=0).sum())
        d = min(r_tr.shape[1], o_tr.shape[1])
        Z = np.vstack([r_tr[:, :d] / s_r, r_te[:, :d] / s_r, o_tr[:, :d] / s_o, o_te[:, :d] / s_o])
        n_tr, n_te = len(r_tr), len(r_te)
        Zc = harmony(Z, np.repeat(["rna", kind], n_tr + n_te), seed, default_threads())
    rna_all, oth_all = Zc[: n_tr + n_te], Zc[n_tr + n_te :]
    sections.rec["harmony_s"] = time.perf_counter() - t0
    return {
        "epochs": None,
        "arrays": {
            "rna_test": rna_all[n_tr:],
            "oth_test": oth_all[n_tr:],
            "rna_train": rna_all[:n_tr],
            "oth_train_eval": oth_all[:n_tr][split["train_eval"]],
        },
    }


def run_wnn(ref, query, other, kind, split, seed, sections, quick: bool = False) -> dict:
    """Weighted nearest neighbours (muon) on the PCA and LSI/PCA representations of each evaluated cell set.

    muon's WNN compiles numba code on every call (its distance closes over the data), so its time includes that.
    With ``quick`` the training-cell graph is skipped (its metrics are then n/a) to keep smoke runs short.
    """
    import muon as mu
    from scipy import sparse

    red = LayerReducer(kind, seed=seed)
    with sections.train():
        r_tr, o_tr = red.fit_transform(ref.mod["rna"].X, ref.mod[other].X)
    with sections.embed():  # the held-out cells' WNN graph is their "embedding"
        r_te, o_te = red.transform(query.mod["rna"].X, query.mod[other].X)
        m_test = wnn_mdata(r_te, o_te, kind, seed)
    mu.tl.umap(m_test, neighbors_key="wnn", random_state=seed)
    umap_test = np.asarray(m_test.obsm["X_umap"])
    graphs = {"graph_test": sparse.csr_matrix(m_test.obsp["wnn_connectivities"])}
    if not quick:
        ev = split["train_eval"]
        m_train = wnn_mdata(r_tr[ev], o_tr[ev], kind, seed)
        graphs["graph_train_eval"] = sparse.csr_matrix(m_train.obsp["wnn_connectivities"])
    return {"epochs": None, "arrays": {"umap_test": umap_test}, "graphs": graphs}


def child(args) -> dict:
    """Train and embed one method (in this process); save arrays to ``--workdir``; return the timing record."""
    from scipy import sparse

    method = args.child
    threads = default_threads()
    if method not in ("pca_lsi_harmony", "wnn"):  # the classic baselines need no torch
        import scvi

        threads = set_threads()
        scvi.settings.seed = args.seed
    mdata, other, kind = load_data(args.data, args.max_cells, args.seed)
    split = split_cells(mdata.n_obs, args.seed)
    ref, query = mdata[split["train"]].copy(), mdata[split["test"]].copy()
    del mdata
    sections = Sections()
    kwargs = json.loads(args.scmamba_kwargs)
    if method == "scmamba":
        out = run_scmamba(ref, query, other, kind, split, args.epochs_scmamba, kwargs, sections)
    elif method == "scmamba_paper":
        from scmamba import SCMAMBA

        cfg = {**SCMAMBA.paper_config(("rna", kind)), **{k: v for k, v in kwargs.items() if k == "use_fused_kernels"}}
        out = run_scmamba(ref, query, other, kind, split, args.epochs_scmamba, cfg, sections)
    elif method in ("multivi", "multivi_hvg"):
        out = run_multivi(ref, query, other, split, args.epochs_multivi, method == "multivi_hvg", sections)
    elif method == "totalvi":
        out = run_totalvi(ref, query, other, split, args.epochs_totalvi, sections)
    elif method == "pca_lsi_harmony":
        out = run_harmony(ref, query, other, kind, split, args.seed, sections)
    elif method == "wnn":
        out = run_wnn(ref, query, other, kind, split, args.seed, sections, quick=args.quick)
    else:
        raise ValueError(f"unknown method {method!r}")
    workdir = Path(args.workdir)
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in out.pop("arrays").items() if v is not None}
    np.savez(workdir / f"{method}.npz", **arrays)
    for name, g in out.pop("graphs", {}).items():
        sparse.save_npz(workdir / f"{method}_{name}.npz", g)
    rec = {
        **sections.rec,
        **out,
        "method": method,
        "threads": threads,
        "n_train": len(split["train"]),
        "n_test": len(split["test"]),
    }
    n_epochs = rec.get("epochs") or 1
    rec["train_cells_per_s"] = rec["n_train"] * n_epochs / rec["train_s"]
    rec["embed_cells_per_s"] = rec["n_test"] / rec["embed_s"]
    return rec


# --------------------------------------------------------------------------------------------------- parent: metrics
def evaluate(method: str, workdir: Path, labels: dict, split: dict, quick: bool, seed: int) -> dict:
    """All metrics of one method on the held-out cells and on the training subset: ``{split: metrics}``."""
    from scipy import sparse

    from scmamba.metrics import DEFAULT_RESOLUTIONS, ari_nmi_leiden, integration_report, label_transfer_scores

    arrays = dict(np.load(workdir / f"{method}.npz"))
    ev, ref_pos = split["train_eval"], split["train_ref"]
    out = {}
    for name in ("heldout", "train"):
        lab = labels["test"] if name == "heldout" else labels["train"][ev]
        if method == "wnn":
            path = workdir / f"wnn_graph_{'test' if name == 'heldout' else 'train_eval'}.npz"
            if not path.exists():  # --quick skips the training-cell WNN graph
                out[name] = {}
                continue
            graph = sparse.load_npz(path)
            res = (0.5, 1.0, 1.5) if quick else DEFAULT_RESOLUTIONS
            best = ari_nmi_leiden(None, lab, adjacency=graph, resolutions=res, seed=seed)
            out[name] = {"ARI": best["ari"], "NMI": best["nmi"], "resolution_ARI": best["resolution_ari"],
                         "resolution_NMI": best["resolution_nmi"]}  # fmt: skip
            continue
        if name == "heldout":
            x, y = arrays["rna_test"], arrays["oth_test"]
            lt_ref, lt_ref_lab = arrays["rna_train"], labels["train"]
        else:
            x, y = arrays["rna_train"][ev], arrays["oth_train_eval"]
            lt_ref, lt_ref_lab = arrays["rna_train"][ref_pos], labels["train"][ref_pos]
        bio = x if method == "totalvi" else None  # TOTALVI: x is y is the joint latent; avoid duplicated rows
        rep = integration_report(x, y, lab, bio_embedding=bio, quick=quick, seed=seed)
        lt = label_transfer_scores(lt_ref, lt_ref_lab, y, lab, k=LABEL_K)
        rep.update(label_acc=lt["accuracy"], label_f1=lt["macro_f1"])
        if name == "heldout" and "test_batch" in labels and method != "totalvi":
            rep["FOSCTTM_within_batch"] = foscttm_within(x, y, labels["test_batch"])
        out[name] = rep
    return out


def umap_coords(method: str, workdir: Path, seed: int) -> tuple[np.ndarray, str]:
    """UMAP of the held-out cells: stacked per-layer embeddings (2N), or joint (N) for TOTALVI / WNN."""
    import anndata as ad
    import scanpy as sc

    arrays = dict(np.load(workdir / f"{method}.npz"))
    if method == "wnn":
        return arrays["umap_test"], "joint"
    if method == "totalvi":
        z, kind = arrays["rna_test"], "joint"
    else:
        z, kind = np.vstack([arrays["rna_test"], arrays["oth_test"]]), "stacked"
    a = ad.AnnData(X=z.astype(np.float32))
    sc.pp.neighbors(a, n_neighbors=15, use_rep="X", random_state=seed)
    sc.tl.umap(a, random_state=seed)
    return np.asarray(a.obsm["X_umap"]), kind


def plot_umaps(coords: dict, labels: np.ndarray, kind: str, path: Path, title: str) -> None:
    """One row per method: held-out cells coloured by omics layer and by cell type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    types = np.unique(labels)
    cmap = plt.get_cmap("tab20" if len(types) <= 20 else "gist_ncar")
    colours = {t: cmap(i / max(len(types) - 1, 1)) if len(types) > 20 else cmap(i) for i, t in enumerate(types)}
    n = len(coords)
    fig, axes = plt.subplots(n, 2, figsize=(10, 4 * n), squeeze=False)
    for row, (method, (xy, mode)) in enumerate(coords.items()):
        if mode == "stacked":
            omics = np.repeat(["RNA", kind.upper() if kind == "atac" else "protein"], len(labels))
            lab = np.concatenate([labels, labels])
        else:
            omics, lab = np.repeat(["joint"], len(labels)), labels
        order = np.random.default_rng(0).permutation(len(xy))
        ax = axes[row, 0]
        for layer, colour in zip(np.unique(omics), ("tab:blue", "tab:orange"), strict=False):
            m = omics[order] == layer
            ax.scatter(xy[order][m, 0], xy[order][m, 1], s=3, c=[colour], label=layer, rasterized=True)
        ax.legend(markerscale=4, loc="best", fontsize=8)
        ax.set_title(f"{method}: omics layer" + ("" if mode == "stacked" else " (joint only)"))
        ax = axes[row, 1]
        ax.scatter(xy[order, 0], xy[order, 1], s=3, c=[colours[t] for t in lab[order]], rasterized=True)
        ax.set_title(f"{method}: cell type")
        for a in axes[row]:
            a.set_xticks([])
            a.set_yticks([])
    handles = [plt.Line2D([], [], marker="o", ls="", color=colours[t], label=t) for t in types]
    fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.8, 0.98))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_metrics(rows: list[dict], path: Path, title: str) -> None:
    """Grouped bars of the held-out metrics (FOSCTTM shown as 1 - FOSCTTM so higher is better everywhere)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["split"] == "heldout"]
    names = [m for m in METRICS if m != "FOSCTTM"] + ["1-FOSCTTM", *TRANSFER, *SCORES]
    fig, ax = plt.subplots(figsize=(max(10, 0.9 * len(names) * max(1, len(rows)) / 3), 4.5))
    width = 0.8 / max(len(rows), 1)
    for i, r in enumerate(rows):
        vals = [
            (1 - r["FOSCTTM"] if r.get("FOSCTTM") is not None else np.nan)
            if n == "1-FOSCTTM"
            else (np.nan if r.get(n) is None else r[n])
            for n in names
        ]
        ax.bar(np.arange(len(names)) + i * width, vals, width, label=r["method"])
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2)
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score (higher is better)")
    ax.legend(fontsize=8, ncol=2)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def build_rows(records: dict, metrics: dict, n_eval: dict) -> list[dict]:
    """One row per (method, split) with metrics, overall scores, label transfer and cost columns."""
    import pandas as pd

    from scmamba.metrics import overall_scores

    rows = []
    for split_name in ("heldout", "train"):
        block = []
        for method, rec in records.items():
            row = {
                "method": method,
                "split": split_name,
                "status": rec.get("status", "ok"),
                "n_train": rec.get("n_train"),
                "n_eval": n_eval[split_name],
            }
            m = metrics.get(method, {}).get(split_name, {})
            for col in [*METRICS, "FOSCTTM_within_batch", *TRANSFER, "resolution_ARI", "resolution_NMI"]:
                v = m.get(col)
                row[col] = None if v is None or (isinstance(v, float) and not np.isfinite(v)) else float(v)
            for col in COST:
                row[col] = rec.get(col)
            row["latent"] = {"totalvi": "joint (both layers)", "wnn": "graph"}.get(method, "per-layer")
            row["note"] = NOTES.get(method, "") if rec.get("status", "ok") == "ok" else rec.get("error")
            block.append(row)
        table = pd.DataFrame(block).set_index("method")
        cols = ["ARI", "NMI", "MAP", "cASW", "OEMS", "SAS", "GC", "oASW"]
        ok = table[cols].notna().all(axis=1)  # only methods with every metric (not wnn) enter the min-max scaling
        if ok.sum() >= 1:
            scores = overall_scores(table.loc[ok, cols].astype(float))
            for row in block:
                if row["method"] in scores.index:
                    for s in SCORES:
                        v = scores.loc[row["method"], s]
                        row[s] = None if pd.isna(v) else float(v)
        for row in block:
            for s in SCORES:
                row.setdefault(s, None)
        rows.extend(block)
    return rows


TABLE_COLUMNS = [
    "method",
    "split",
    *METRICS,
    "FOSCTTM_within_batch",
    *SCORES,
    *TRANSFER,
    "train_s",
    "train_cells_per_s",
    "embed_cells_per_s",
    "peak_rss_train_gb",
    "peak_rss_embed_gb",
]
TABLE_HEADERS = {
    "matching_score": "MS",
    "FOSCTTM_within_batch": "FOSCTTM in batch",
    "label_acc": "LT acc",
    "label_f1": "LT F1",
    "train_s": "train s",
    "train_cells_per_s": "train cells/s",
    "embed_cells_per_s": "embed cells/s",
    "peak_rss_train_gb": "RSS train GB",
    "peak_rss_embed_gb": "RSS embed GB",
}


TABLE_DIGITS = {
    "train_s": 1,
    "train_cells_per_s": 0,
    "embed_cells_per_s": 0,
    "peak_rss_train_gb": 2,
    "peak_rss_embed_gb": 2,
}


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="paired .h5mu (mods rna + atac, or rna + prot)")
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        choices=ALL_METHODS,
        help="default: every method that applies to the data (scmamba_paper only with --paper)",
    )
    p.add_argument("--paper", action="store_true", help="also run scmamba_paper (SCMAMBA.paper_config; slow on CPU)")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_CELLS} cells, {QUICK_EPOCHS} epochs, small SCMAMBA")
    p.add_argument(
        "--max-cells",
        type=int,
        default=None,
        help=f"random cells kept before the split (default: all; {QUICK_CELLS} with --quick; 0: all)",
    )
    p.add_argument("--epochs-scmamba", type=int, default=None, help="default 50 (2 with --quick); also scmamba_paper")
    p.add_argument("--epochs-multivi", type=int, default=None, help="default 30 (2 with --quick)")
    p.add_argument("--epochs-totalvi", type=int, default=None, help="default 100 (2 with --quick)")
    p.add_argument("--scmamba-kwargs", default=None, help="JSON of SCMAMBA init keywords (default config if omitted)")
    p.add_argument("--label-key", default="cell_type")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=default_threads(), help=THREADS_HELP)
    p.add_argument("--timeout", type=float, default=3600, help="seconds per method subprocess")
    p.add_argument("--out", default=None, help="output folder (default benchmarks/results)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name, default in (
        ("scmamba", DEFAULT_EPOCHS["scmamba"]),
        ("multivi", DEFAULT_EPOCHS["multivi"]),
        ("totalvi", DEFAULT_EPOCHS["totalvi"]),
    ):
        if getattr(args, f"epochs_{name}") is None:
            setattr(args, f"epochs_{name}", QUICK_EPOCHS if args.quick else default)
    if args.max_cells is None:
        args.max_cells = QUICK_CELLS if args.quick else 0
    if args.scmamba_kwargs is None:
        args.scmamba_kwargs = json.dumps(quick_scmamba_config() if args.quick else {})
    return args


def main(argv=None):
    """Run every method in its own subprocess, evaluate, write results and print the Markdown table."""
    args = parse_args(argv)
    if args.child:  # child process: one method, timing record as JSON on the last line of stdout
        print(json.dumps(to_jsonable(child(args))))
        return

    t_start = time.perf_counter()
    limit_threads(args.threads)
    mdata, _, kind = load_data(args.data, args.max_cells, args.seed)
    split = split_cells(mdata.n_obs, args.seed)
    cell_labels = mdata.obs[args.label_key].astype(str).to_numpy()
    labels = {"train": cell_labels[split["train"]], "test": cell_labels[split["test"]]}
    if "batch" in mdata.obs:  # held-out FOSCTTM within each batch, beside the usual one over all held-out cells
        labels["test_batch"] = mdata.obs["batch"].astype(str).to_numpy()[split["test"]]
    del mdata
    methods = args.methods or [*METHODS[kind], *(["scmamba_paper"] if args.paper else [])]
    bad = [m for m in methods if m not in METHODS[kind] and m != "scmamba_paper"]
    if bad:
        raise SystemExit(f"methods {bad} do not apply to RNA+{kind} data")
    stem = Path(args.data).stem
    out_dir = Path(args.out) if args.out else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"integration_{stem}_"))
    print(
        f"{stem}: RNA+{kind}, {len(split['train'])} training / {len(split['test'])} held-out cells; methods {methods}",
        flush=True,
    )

    records, metrics, coords = {}, {}, {}
    try:
        for method in methods:
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.integration",
                "--child",
                method,
                "--data",
                args.data,
                "--workdir",
                str(workdir),
                "--max-cells",
                str(args.max_cells),
                "--seed",
                str(args.seed),
                "--label-key",
                args.label_key,
                "--epochs-scmamba",
                str(args.epochs_scmamba),
                "--epochs-multivi",
                str(args.epochs_multivi),
                "--epochs-totalvi",
                str(args.epochs_totalvi),
                "--scmamba-kwargs",
                args.scmamba_kwargs,
                *(["--quick"] if args.quick else []),
            ]
            rec = run_child(cmd, args.timeout, method, threads=args.threads)
            records[method] = rec
            if rec["status"] != "ok":
                continue
            t0 = time.perf_counter()
            metrics[method] = evaluate(method, workdir, labels, split, args.quick, args.seed)
            coords[method] = umap_coords(method, workdir, args.seed)
            rec["eval_s"] = round(time.perf_counter() - t0, 1)
            print(
                f"[{method}] train {rec['train_s']:.1f} s, embed {rec['embed_s']:.1f} s, metrics+UMAP "
                f"{rec['eval_s']:.1f} s; held-out ARI {metrics[method]['heldout'].get('ARI', float('nan')):.3f} "
                f"FOSCTTM {metrics[method]['heldout'].get('FOSCTTM', float('nan')):.3f}",
                flush=True,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    n_eval = {"heldout": len(split["test"]), "train": len(split["train_eval"])}
    rows = build_rows(records, metrics, n_eval)
    title = f"{stem} ({'quick' if args.quick else 'full'}; {n_eval['heldout']} held-out cells)"
    json_path = out_dir / f"integration_{stem}.json"
    meta = {
        **machine_info(),
        "threads": args.threads,
        "data": str(args.data),
        "modalities": ["rna", kind],
        "quick": args.quick,
        "max_cells": args.max_cells,
        "n_cells": len(split["train"]) + len(split["test"]),
        "n_train": len(split["train"]),
        "n_heldout": len(split["test"]),
        "n_train_eval": len(split["train_eval"]),
        "seed": args.seed,
        "label_key": args.label_key,
        "label_transfer_k": LABEL_K,
        "epochs": {"scmamba": args.epochs_scmamba, "multivi": args.epochs_multivi, "totalvi": args.epochs_totalvi},
        "scmamba_kwargs": json.loads(args.scmamba_kwargs),
        "notes": {m: NOTES[m] for m in methods},
        "total_wall_s": round(time.perf_counter() - t_start, 1),
    }
    json_path.write_text(json.dumps(to_jsonable({"meta": meta, "rows": rows, "children": records}), indent=1))
    import pandas as pd

    pd.DataFrame(rows).to_csv(json_path.with_suffix(".csv"), index=False)
    if coords:
        plot_umaps(coords, labels["test"], kind, out_dir / f"integration_{stem}_umap.png", title)
    plot_metrics(rows, out_dir / f"integration_{stem}_metrics.png", title)
    print(f"wrote {json_path}, .csv, _umap.png, _metrics.png in {time.perf_counter() - t_start:.0f} s", flush=True)
    print(markdown_table(rows, TABLE_COLUMNS, TABLE_HEADERS, TABLE_DIGITS))


if __name__ == "__main__":
    main()
