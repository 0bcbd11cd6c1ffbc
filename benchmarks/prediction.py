"""Cross-modal prediction on held-out cells measured by RNA alone: SCMAMBA vs TOTALVI / MULTIVI vs 15-NN.

* ``abseq``: the donors ``--abseq-query`` (default BM2 and Aged2) are held out; SCMAMBA trains on the other donors
  and predicts the held-out cells' 97 proteins from their RNA alone (an AnnData of the RNA layer). Score: per protein
  the Spearman correlation between predicted and measured CLR protein over the held-out cells; median over proteins.
  TOTALVI (scvi-tools, ``train()`` defaults) trains on the reference plus the held-out cells with their protein
  counts set to zero (TOTALVI's own mechanism for batches without protein) and imputes protein with
  ``get_normalized_expression(n_samples=25, transform_batch=<reference donors>)``, as in scvi-tools' reference
  mapping tutorial. 15-NN: mean measured CLR protein of the 15 nearest reference cells in RNA PCA space.
* ``snare``: a random ``--test-fraction`` of SNARE-seq cells is held out; predicted accessibility from RNA alone.
  Score: per cell AUROC and AUPRC (average precision) of the predictions against the measured binarised peaks;
  median over cells. MULTIVI trains on the reference and gets the held-out cells with their ATAC zeroed (MULTIVI
  then encodes them from RNA alone) for ``get_accessibility_estimates``. 15-NN: the 15 nearest reference cells'
  mean binarised accessibility. ``peak_rate`` (method ``rate``): each peak's detection rate in the reference cells,
  the same ranking for every cell (what a prediction that knows nothing of the cell scores).
* SCMAMBA is scored with both of ``get_normalized_expression``'s methods: ``scmamba`` (``method='decoder'``) and
  ``scmamba_neighbors`` (``method='neighbors'``: the mean measured profile of the 15 nearest reference cells in
  the model's RNA embedding); on SNARE-seq also ``scmamba_decoder_only`` (``peak_prior=0``: the decoder's shares
  without the peaks' detection rates). ``--model-dir`` saves the trained SCMAMBA (and MULTIVI) models and reuses
  them, so that a later run scores new prediction methods without training again; results of the methods run are
  merged into the part's entry (e.g. ``--methods knn scmamba`` keeps the stored TOTALVI numbers).
* ``memory``: peak RSS of ``get_normalized_expression(modality_out='atac', top_k=...)`` for 10,000 synthetic
  RNA-only cells x 150,000 peaks (``scaling.make_mudata``), measured from a reset peak mark (a child process).

Usage: ``python -m benchmarks.prediction --parts abseq snare memory --seed 0``; results are merged into
``benchmarks/results/prediction_<date>.json`` (one entry per part and seed) and the table is printed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.helpers.common import (
    RESULTS,
    SHARED_DATA,
    markdown_table,
    reset_peak_rss,
    set_threads,
    to_jsonable,
    window_peak_rss_gb,
)
from benchmarks.helpers.methods import fit_multivi, fit_totalvi, lognorm

#: The shared data folder beside the checkout (``$SCMAMBA_SHARED_DATA`` overrides it).
SHARED = Path(os.environ.get("SCMAMBA_SHARED_DATA", SHARED_DATA))
ABSEQ = SHARED / "abseq_bonemarrow_triana2021.h5mu"
SNARE = SHARED / "snareseq_mouse_cortex_chen2019.h5mu"
N_NEIGHBORS = 15
#: Result names of SCMAMBA's prediction methods (``get_normalized_expression(method=...)``).
SCMAMBA_NAMES = {"decoder": "scmamba", "neighbors": "scmamba_neighbors"}


def clr(X) -> np.ndarray:
    """Per-cell centred log-ratio of counts (``log1p``, minus the cell's mean), as muon's ``prot.pp.clr``."""
    X = np.log1p(np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64))
    return X - X.mean(axis=1, keepdims=True)


def rna_pca_neighbors(ref_rna, query_rna, seed: int) -> np.ndarray:
    """Indices of the ``N_NEIGHBORS`` nearest reference cells of each query cell in RNA PCA space (50 PCs)."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.neighbors import NearestNeighbors

    ref_x, query_x = (np.asarray(lognorm(x).toarray()) for x in (ref_rna, query_rna))
    mean = ref_x.mean(axis=0)
    svd = TruncatedSVD(50, random_state=seed).fit(ref_x - mean)  # PCA: centred on the reference
    ref_pc, query_pc = svd.transform(ref_x - mean), svd.transform(query_x - mean)
    return NearestNeighbors(n_neighbors=N_NEIGHBORS).fit(ref_pc).kneighbors(query_pc, return_distance=False)


def per_feature_spearman(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    from scipy.stats import spearmanr

    return np.array([spearmanr(pred[:, j], truth[:, j]).statistic for j in range(truth.shape[1])])


def per_cell_auc(pred: np.ndarray, truth) -> tuple[np.ndarray, np.ndarray]:
    """Per cell AUROC and average precision of ``pred`` against the binarised measured peaks ``truth``."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    truth = truth.tocsr()
    auroc, auprc = [], []
    for i in range(truth.shape[0]):
        y = np.zeros(truth.shape[1], dtype=bool)
        y[truth.indices[truth.indptr[i] : truth.indptr[i + 1]]] = True
        if y.all() or not y.any():
            continue
        auroc.append(roc_auc_score(y, pred[i]))
        auprc.append(average_precision_score(y, pred[i]))
    return np.array(auroc), np.array(auprc)


def train_scmamba(ref, other: str, seed: int, epochs: int | None, kwargs: dict, folder: Path | None = None):
    """SCMAMBA trained on ``ref``; with ``folder``: loaded from it when saved there before, else saved there."""
    import scvi

    from scmamba import SCMAMBA

    if folder is not None and (folder / "model.pt").exists():
        model = SCMAMBA.load(folder, ref)
        model.is_loaded_ = True
        return model
    scvi.settings.seed = seed
    SCMAMBA.setup_mudata(ref, batch_key="batch", modalities={"rna_layer": "rna", f"{kind_of(other)}_layer": other})
    model = SCMAMBA(ref, **kwargs)
    model.train(max_epochs=epochs, enable_progress_bar=False)
    if folder is not None:
        model.save(folder, overwrite=True)
    model.is_loaded_ = False
    return model


def model_folder(args, part: str) -> Path | None:
    return Path(args.model_dir) / f"{part}_seed{args.seed}{args.name}" if args.model_dir else None


def kind_of(mod: str) -> str:
    return "atac" if mod == "atac" else "protein"


def run_abseq(args) -> dict:
    import mudata as md

    md.set_options(pull_on_update=False)
    mdata = md.read_h5mu(ABSEQ)
    held = mdata.obs["batch"].isin(args.abseq_query).to_numpy()
    ref, query = mdata[~held].copy(), mdata[held].copy()
    truth = clr(query["prot"].X)
    out = {"n_reference": int(ref.n_obs), "n_query": int(query.n_obs), "query_donors": args.abseq_query}
    proteins = list(query["prot"].var_names)
    methods = {}
    if "knn" in args.methods:
        nn_idx = rna_pca_neighbors(ref["rna"].X, query["rna"].X, args.seed)
        pred = clr(ref["prot"].X)[nn_idx].mean(axis=1)
        methods["knn15"] = per_feature_spearman(pred, truth)
    if "scmamba" in args.methods:
        t0 = time.perf_counter()
        model = train_scmamba(
            ref.copy(), "prot", args.seed, args.epochs_scmamba, json.loads(args.scmamba_kwargs),
            model_folder(args, "abseq"),
        )  # fmt: skip
        train_s = None if model.is_loaded_ else time.perf_counter() - t0  # a saved model: no training time
        for method in ("decoder", "neighbors"):
            pred = model.get_normalized_expression(
                query["rna"].copy(), modality_in="rna", modality_out="protein", method=method
            )
            methods[SCMAMBA_NAMES[method]] = per_feature_spearman(pred[proteins].to_numpy(), truth)
        if train_s is not None:
            out["scmamba_train_s"] = train_s
        out["scmamba_epochs"] = max(len(v) for v in model.history.values())
    if "totalvi" in args.methods:
        import scvi

        scvi.settings.seed = args.seed
        full = mdata.copy()
        X = full["prot"].X
        X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float32)
        X[held] = 0.0  # the held-out donors' protein is missing: TOTALVI's batches without protein
        full["prot"].X = X
        t0 = time.perf_counter()
        model = fit_totalvi(full, "prot", None)
        out["totalvi_train_s"] = time.perf_counter() - t0
        out["totalvi_epochs"] = int(model.history["elbo_train"].shape[0])
        ref_donors = sorted(set(mdata.obs["batch"]) - set(args.abseq_query))
        _, prot = model.get_normalized_expression(
            indices=np.flatnonzero(held), n_samples=25, return_mean=True, transform_batch=ref_donors
        )
        methods["totalvi"] = per_feature_spearman(prot[proteins].to_numpy(), truth)
    out["median_spearman"] = {k: float(np.nanmedian(v)) for k, v in methods.items()}
    out["per_protein_spearman"] = {k: dict(zip(proteins, v.tolist(), strict=True)) for k, v in methods.items()}
    return out


def run_snare(args) -> dict:
    import mudata as md

    md.set_options(pull_on_update=False)
    mdata = md.read_h5mu(SNARE)
    if args.max_cells and mdata.n_obs > args.max_cells:  # a random subset first (a quicker run)
        keep = np.random.default_rng(args.seed).choice(mdata.n_obs, args.max_cells, replace=False)
        mdata = mdata[np.sort(keep)].copy()
    perm = np.random.default_rng(args.seed).permutation(mdata.n_obs)
    n_test = round(args.test_fraction * mdata.n_obs)
    held = np.zeros(mdata.n_obs, dtype=bool)
    held[perm[:n_test]] = True
    ref, query = mdata[~held].copy(), mdata[held].copy()
    truth = (query["atac"].X > 0).astype(np.float32)
    out = {"n_reference": int(ref.n_obs), "n_query": int(query.n_obs), "n_peaks": int(query["atac"].n_vars)}
    methods = {}
    if "knn" in args.methods:
        nn_idx = rna_pca_neighbors(ref["rna"].X, query["rna"].X, args.seed)
        ref_open = (ref["atac"].X > 0).astype(np.float32).tocsr()
        pred = np.vstack([np.asarray(ref_open[row].mean(axis=0)).ravel() for row in nn_idx])
        methods["knn15"] = per_cell_auc(pred, truth)
    if "rate" in args.methods:
        rate = np.asarray((ref["atac"].X > 0).mean(axis=0), dtype=np.float64).ravel()
        methods["peak_rate"] = per_cell_auc(np.broadcast_to(rate, truth.shape), truth)
    if "scmamba" in args.methods:
        t0 = time.perf_counter()
        model = train_scmamba(
            ref.copy(), "atac", args.seed, args.epochs_scmamba, json.loads(args.scmamba_kwargs),
            model_folder(args, "snare"),
        )  # fmt: skip
        if not model.is_loaded_:  # a saved model: no training time
            out["scmamba_train_s"] = time.perf_counter() - t0
        out["scmamba_epochs"] = max(len(v) for v in model.history.values())
        for method in ("decoder", "neighbors"):
            pred = model.get_normalized_expression(
                query["rna"].copy(), modality_in="rna", modality_out="atac", method=method, return_numpy=True
            )
            methods[SCMAMBA_NAMES[method]] = per_cell_auc(pred, truth)
        pred = model.get_normalized_expression(
            query["rna"].copy(), modality_in="rna", modality_out="atac", method="decoder", peak_prior=0,
            return_numpy=True,
        )  # fmt: skip
        methods["scmamba_decoder_only"] = per_cell_auc(pred, truth)
    if "multivi" in args.methods:
        import scvi

        scvi.settings.seed = args.seed
        folder = model_folder(args, "snare_multivi")
        t0 = time.perf_counter()
        if folder is not None and (folder / "model.pt").exists():
            model = scvi.model.MULTIVI.load(str(folder), adata=ref.copy())  # set up from the saved registry
        else:
            model = fit_multivi(ref.copy(), "atac", args.epochs_multivi)
            out["multivi_train_s"] = time.perf_counter() - t0
            if folder is not None:
                model.save(str(folder), overwrite=True)
        out["multivi_epochs"] = int(model.history["elbo_train"].shape[0])
        rna_only = query.copy()
        rna_only["atac"].X = rna_only["atac"].X.multiply(0).tocsr()  # unmeasured: MULTIVI encodes from RNA alone
        rna_only["atac"].X.eliminate_zeros()
        for a in (rna_only, *rna_only.mod.values()):  # scvi-tools 1.4's MuData transfer expects the index field
            a.obs["_indices"] = np.arange(a.n_obs)
        # scvi-tools >= 1.2 names it get_normalized_accessibility (before: get_accessibility_estimates)
        estimate = getattr(model, "get_normalized_accessibility", None) or model.get_accessibility_estimates
        acc = estimate(rna_only)
        methods["multivi"] = per_cell_auc(np.asarray(acc), truth)
    out["median_auroc"] = {k: float(np.median(v[0])) for k, v in methods.items()}
    out["median_auprc"] = {k: float(np.median(v[1])) for k, v in methods.items()}
    out["n_cells_scored"] = {k: len(v[0]) for k, v in methods.items()}
    return out


def run_memory(args) -> dict:
    """Peak RSS of predicting ``--peaks`` peaks for ``--cells`` RNA-only cells (top_k), in this process."""
    from benchmarks.helpers.synthetic import make_mudata, source_profiles
    from scmamba import SCMAMBA

    prof = source_profiles(SNARE)
    mdata = make_mudata(args.cells, args.genes, args.peaks, prof, seed=args.seed)
    SCMAMBA.setup_mudata(mdata, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac"})
    model = SCMAMBA(mdata, linear_view=None)  # untrained: memory does not depend on the weights' values
    rna = mdata["rna"].copy()
    del mdata
    import gc

    gc.collect()
    reset_ok = reset_peak_rss()
    t0 = time.perf_counter()
    pred = model.get_normalized_expression(
        rna, modality_in="rna", modality_out="atac", top_k=args.top_k, return_numpy=True
    )
    return {
        "cells": args.cells, "genes": args.genes, "peaks": args.peaks, "top_k": args.top_k,
        "predict_s": time.perf_counter() - t0, "peak_rss_predict_gb": window_peak_rss_gb(reset_ok),
        "peak_is_window": reset_ok, "result_nnz": int(pred.nnz),
    }  # fmt: skip


def table(results: dict) -> str:
    rows = []
    for key, r in sorted(results.items()):
        if key.startswith("abseq"):
            for m, v in r["median_spearman"].items():
                rows.append({"part": key, "method": m, "metric": "median per-protein Spearman", "value": v})
        elif key.startswith("snare"):
            for m in r["median_auroc"]:
                value = f"{r['median_auroc'][m]:.3f} / {r['median_auprc'][m]:.3f}"
                rows.append({"part": key, "method": m, "metric": "median per-cell AUROC / AUPRC", "value": value})
        elif key.startswith("memory"):
            value = f"{r['peak_rss_predict_gb']:.2f} GiB, {r['predict_s']:.0f} s"
            rows.append({"part": key, "method": "scmamba", "metric": "peak RSS, time", "value": value})
    return markdown_table(rows, ["part", "method", "metric", "value"])


def merge(old: dict, new: dict) -> dict:
    """``new`` over ``old``, per method inside the per-method dicts (a run of some methods keeps the others')."""
    out = {**old, **new}
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(old.get(k), dict) and k != "args":
            out[k] = {**old[k], **v}
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", nargs="+", default=["abseq", "snare", "memory"], choices=["abseq", "snare", "memory"])
    p.add_argument("--methods", nargs="+", default=["knn", "rate", "scmamba", "totalvi", "multivi"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--abseq-query", nargs="+", default=["BM2", "Aged2"])
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--max-cells", type=int, default=0, help="SNARE-seq: keep this many random cells (0: all)")
    p.add_argument("--epochs-scmamba", type=int, default=None, help="default: the model's own")
    p.add_argument("--epochs-multivi", type=int, default=30)
    p.add_argument("--scmamba-kwargs", default="{}")
    p.add_argument("--cells", type=int, default=10_000)
    p.add_argument("--genes", type=int, default=36_601)
    p.add_argument("--peaks", type=int, default=150_000)
    p.add_argument("--top-k", type=int, default=2_000)
    p.add_argument("--model-dir", default="", help="save trained SCMAMBA models here; reuse those saved before")
    p.add_argument("--name", default="", help="suffix of the result keys (e.g. a variant)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(RESULTS / f"prediction_{datetime.date.today().isoformat()}.json"))
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    set_threads()
    if args.child:
        print(json.dumps(to_jsonable(run_memory(args))))
        return
    path = Path(args.out)
    results = json.loads(path.read_text()) if path.exists() else {}
    for part in args.parts:
        if part == "memory":  # its own process, so that the peak is the prediction's alone
            cmd = [sys.executable, "-m", "benchmarks.prediction", "--child", "--seed", str(args.seed),
                   "--cells", str(args.cells), "--genes", str(args.genes), "--peaks", str(args.peaks),
                   "--top-k", str(args.top_k)]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-3000:])
            result = json.loads(done.stdout.strip().splitlines()[-1])
        else:
            result = {"abseq": run_abseq, "snare": run_snare}[part](args)
        result["args"] = vars(args)
        key = f"{part}_seed{args.seed}{args.name}"
        results[key] = merge(results.get(key, {}), to_jsonable(result))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1))
        print(table(results), flush=True)


if __name__ == "__main__":
    main()
