"""All-cells benchmark: every method trains on all cells and is scored on all cells, as users run them.

The protocol of most integration papers and of the scib benchmarks: no held-out split (``integration.py`` is the
held-out counterpart). One run per paired data set (RNA+ATAC or RNA+protein); each method runs in its own Python
subprocess, so the peak RSS reported is its own, and writes its embeddings for the parent process to score.
Methods (``--methods``; default: all that apply to the data):

``scmamba``          ``SCMAMBA`` at the package defaults: ``setup_mudata(mdata, batch_key="batch", modalities=
                     {"rna_layer": "rna", "atac_layer" | "protein_layer": ..., "batch_key": "rna"})``,
                     ``SCMAMBA(mdata)``, ``model.train()`` with its own defaults (no epochs passed unless
                     ``--epochs-scmamba``). Joint embedding ``get_latent_representation()``; per-layer embeddings
                     with ``modality="rna"`` / ``"atac"`` / ``"protein"``.
``multivi``          scvi-tools MULTIVI on all genes and peaks, ``train()`` at its own defaults (RNA+ATAC). In
                     scvi-tools 1.4.2: ``max_epochs=500``, ``early_stopping=True`` on
                     ``reconstruction_loss_validation`` with patience 50, 10% validation cells. Joint latent; per
                     layer ``modality="expression"`` / ``"accessibility"``.
``totalvi``          scvi-tools TOTALVI, ``train()`` at its own defaults (RNA+protein; protein counts densified, as it
                     needs). In 1.4.2: ``max_epochs = min(round(20000 / n_cells * 400), 400)`` (400 here),
                     ``early_stopping=True`` on ``elbo_validation`` with patience 45, ``reduce_lr_on_plateau``
                     (patience 30, factor 0.6), 10% validation cells. Joint latent only (no per-layer embeddings).
``pca_lsi_harmony``  RNA normalize_total + log1p + PCA(50); ATAC TF-IDF + LSI (first component dropped) or protein
                     CLR + PCA(50), on all cells (``LayerReducer``, as in ``integration.py``). Each layer
                     is scaled to unit total variance. Joint: the two layers side by side (100 dimensions),
                     batch-corrected by harmonypy with ``batch`` (library / donor) as the covariate. Per layer, for
                     FOSCTTM: the layers stacked (2N rows) and aligned by Harmony with the omics layer as the
                     covariate, as in ``integration.py``.
``wnn``              muon weighted nearest neighbours on the same RNA PCA and ATAC LSI / protein CLR-PCA. A graph,
                     no embedding: only ARI/NMI (Leiden sweep on the WNN graph) are defined; scib and FOSCTTM n/a.
``unintegrated``     RNA normalize_total + log1p + PCA(50) (scanpy, ``svd_solver="arpack"``): the scib
                     pre-integration baseline; also the ``pre_integrated_embedding_obsm_key`` of every scib run.

Metrics, on all cells:

* scib-metrics ``Benchmarker(adata, batch_key="batch", label_key="cell_type", embedding_obsm_keys=[key],
  pre_integrated_embedding_obsm_key="X_pca", n_jobs=1)`` with its default ``BioConservation()`` (isolated
  labels, KMeans NMI/ARI, silhouette label, cLISI) and ``BatchCorrection()`` (BRAS, iLISI, kBET, graph
  connectivity, PCR comparison), default neighbours (pynndescent). Every metric is reported, with "Bio
  conservation", "Batch correction" and "Total" (0.6 bio + 0.4 batch) from ``get_results(min_max_scale=False)``.
  **Scores are not min-max scaled**: scaling over the methods of a run maps the worst method to 0 and the best to
  1 on each metric, so scores would depend on which methods were run and could not be compared between runs,
  data sets or ``--methods`` choices; unscaled, each method's score is its own. One ``Benchmarker`` per method
  (same results as one for all: every metric and aggregate is per embedding) so that its time is known
  (``scib_s``; the first method's includes a few minutes of numba/jax compilation, paid once per process).
* The paper's metrics (:mod:`scmamba.metrics`): best Leiden ARI and NMI over resolutions 0.1-2.0
  (``ari_nmi_leiden``, 15-NN graph of the joint embedding; the WNN graph itself for ``wnn``), and FOSCTTM between
  the two layers' embeddings of all cells for the methods that have per-layer embeddings (scmamba, multivi,
  pca_lsi_harmony).
* Cost: training wall time (``train_s``: ``model.train()``; for the classic methods every step that makes the joint
  embedding), epochs run, training cells/s (cells given to ``train()`` x epochs / ``train_s``, validation
  included), joint-embedding time (``embed_s``) and cells/s, the extra time of the per-layer embeddings
  (``layers_s``), peak RSS of training (process peak, data loading included), of the embedding step alone, and of
  the whole process (``peak_rss_gb``).
* Convergence of the deep models: epochs run next to ``max_epochs``, whether early stopping ended the run, the
  monitored metric (the peers' validation metric, SCMAMBA's training loss: best epoch, final and best value,
  relative change over the last 10 epochs), the
  final ``elbo_validation``, and in the JSON the trainer's early-stopping and learning-rate settings as run
  (``children[*].trainer``) and every per-epoch history curve (``children[*].history``).

Usage::

    python -m benchmarks.allcells --data ../shared/data/snareseq_mouse_cortex_chen2019.h5mu
    python -m benchmarks.allcells --data ../shared/data/abseq_bonemarrow_triana2021.h5mu
    python -m benchmarks.allcells --data ... --quick --out /tmp/bench   # 600 cells, 2 epochs, tiny SCMAMBA

Writes ``allcells_<data>.json`` (``meta``, ``rows``, raw per-method ``children`` records) and ``.csv`` (the rows)
to ``--out`` (default ``benchmarks/results``); prints a table of every scib metric and then, last, the summary
Markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.helpers.common import (
    RESULTS,
    Sections,
    default_threads,
    limit_threads,
    load_data,
    machine_info,
    markdown_table,
    peak_rss_gb,
    quick_scmamba_config,
    run_child,
    set_threads,
    to_jsonable,
    train_probe,
)
from benchmarks.helpers.methods import (
    LayerReducer,
    harmony,
    multivi,
    rna_pca,
    scmamba,
    totalvi,
    unit_variance,
    wnn_graph,
)

METHODS = {
    "atac": ["scmamba", "multivi", "pca_lsi_harmony", "wnn", "unintegrated"],
    "protein": ["scmamba", "totalvi", "pca_lsi_harmony", "wnn", "unintegrated"],
}
ALL_METHODS = ["scmamba", "multivi", "totalvi", "pca_lsi_harmony", "wnn", "unintegrated"]
DEEP = ("scmamba", "multivi", "totalvi")
QUICK_CELLS = 600
QUICK_EPOCHS = 2
PRE_KEY = "X_pca"
#: Loss curve reported per deep model when its trainer has no early stopping: SCMAMBA trains on every cell by
#: default (no validation cells), so its training loss; the peers' validation metrics.
MONITOR = {"scmamba": "train_loss", "multivi": "reconstruction_loss_validation", "totalvi": "elbo_validation"}
NOTES = {
    "scmamba": "package defaults; joint + per-layer embeddings from each encoder",
    "multivi": "all features, train() defaults (early stopping); joint + per-layer latents",
    "totalvi": "train() defaults (early stopping); joint latent only, so no FOSCTTM",
    "pca_lsi_harmony": "joint: [PCA | LSI/CLR-PCA] + Harmony(batch); per layer: stacked + Harmony(omics layer)",
    "wnn": "muon WNN graph: ARI/NMI from Leiden on the graph; no embedding, so scib and FOSCTTM n/a",
    "unintegrated": "RNA normalize_total + log1p + PCA(50): scib's pre-integration baseline",
}
LATENT = {"totalvi": "joint", "wnn": "graph", "unintegrated": "RNA only"}


# --------------------------------------------------------------------------------------------------- child: methods
def _history(model) -> dict[str, list]:
    """Every per-epoch curve of ``model.history`` (scvi-tools: a DataFrame per logged metric) as lists."""
    out = {}
    for key, df in (getattr(model, "history", None) or {}).items():
        vals = np.asarray(df.to_numpy(), dtype=float).ravel()
        out[key] = [None if not math.isfinite(v) else float(f"{v:.6g}") for v in vals]
    return out


def convergence(history: dict, info: dict, default_monitor: str | None, elbo_final: bool = True) -> dict:
    """Summary of a validation curve: the early-stopping monitor if the trainer had one, else ``default_monitor``.

    ``elbo_final``: also report the last ``elbo_validation`` (the scvi-tools VAEs; SCMAMBA is not a VAE).
    """
    stops = info.get("early_stopping") or []
    monitor = stops[0]["monitor"] if stops else default_monitor
    out = {
        "max_epochs": info.get("max_epochs"),
        "early_stopping": bool(stops),
        "early_stopped": bool(stops and stops[0]["stopped_epoch"] > 0),
        "patience": stops[0]["patience"] if stops else None,
        "monitor": monitor,
    }
    curve = np.array([np.nan if v is None else v for v in history.get(monitor, [])], dtype=float)
    if curve.size and np.isfinite(curve).any():
        best = int(np.nanargmin(curve))
        out.update(best_epoch=best + 1, val_best=float(curve[best]), val_final=float(curve[-1]))
        if curve.size > 10 and np.isfinite(curve[-11]) and curve[-11] != 0:
            out["val_rel_change_last10"] = float((curve[-1] - curve[-11]) / abs(curve[-11]))
    elbo = [v for v in history.get("elbo_validation", []) if v is not None]
    out["elbo_validation_final"] = elbo[-1] if elbo and elbo_final else None
    return out


def train_deep(model, method: str, sections: Sections, max_epochs: int | None) -> dict:
    """``model.train()`` at its own defaults (``max_epochs`` only if given), timed; epochs, history, convergence."""
    probe = train_probe()
    kwargs = {} if max_epochs is None else {"max_epochs": max_epochs}
    with sections.train():
        model.train(enable_progress_bar=False, callbacks=[probe], **kwargs)
    history = _history(model)
    out = {
        "epochs": len(probe.times),
        "time_per_epoch_s": float(np.median(probe.times)) if probe.times else None,
        "epochs_requested": max_epochs,
        "trainer": probe.info,
        "history": history,
        "n_fit_cells": len(model.train_indices),
        "n_validation_cells": len(model.validation_indices),
        "n_params": int(sum(p.numel() for p in model.module.parameters())),
        **convergence(history, probe.info, MONITOR[method], elbo_final=method != "scmamba"),
    }
    return out


def _embed(model, sections: Sections, layers: dict[str, dict]) -> dict:
    """Joint embedding (timed as ``embed_s``) and the per-layer embeddings (``layers_s``)."""
    with sections.embed():
        arrays = {"joint": model.get_latent_representation()}
    t0 = time.perf_counter()
    for name, kwargs in layers.items():
        arrays[name] = model.get_latent_representation(**kwargs)
    return {"arrays": arrays, "layers_s": time.perf_counter() - t0 if layers else None}


def run_scmamba(mdata, other, kind, batch_key, max_epochs, kwargs, sections) -> dict:
    """SCMAMBA at the package defaults (``kwargs`` only with ``--quick`` / ``--scmamba-kwargs``)."""
    model = scmamba(mdata, other, kind, batch_key=batch_key, batch_from_rna=True, **kwargs)
    out = train_deep(model, "scmamba", sections, max_epochs)
    out.update(_embed(model, sections, {"rna": {"modality": "rna"}, "other": {"modality": kind}}))
    return out


def run_multivi(mdata, other, batch_key, max_epochs, sections) -> dict:
    """MULTIVI on all genes and peaks, ``train()`` defaults."""
    model = multivi(mdata, other, batch_key=batch_key)
    out = train_deep(model, "multivi", sections, max_epochs)
    layers = {"rna": {"modality": "expression"}, "other": {"modality": "accessibility"}}
    out.update(_embed(model, sections, layers))
    return out


def run_totalvi(mdata, other, batch_key, max_epochs, sections) -> dict:
    """TOTALVI, ``train()`` defaults (protein counts densified, as TOTALVI requires); joint latent only."""
    model = totalvi(mdata, other, batch_key=batch_key)
    out = train_deep(model, "totalvi", sections, max_epochs)
    out.update(_embed(model, sections, {}))
    return out


def run_harmony(mdata, other, kind, batch_key, seed, sections) -> dict:
    """Per-layer reductions; joint = both side by side + Harmony(batch); per layer = stacked + Harmony(omics)."""
    threads = default_threads()
    with sections.train():
        r, o = LayerReducer(kind, seed=seed).fit_transform(mdata.mod["rna"].X, mdata.mod[other].X)
        r, o = unit_variance(r, o)
        joint = harmony(np.hstack([r, o]), mdata.obs[batch_key].astype(str).to_numpy(), seed, threads)
    t0 = time.perf_counter()  # the per-layer run (for FOSCTTM) is extra to the joint embedding, as layers_s
    d, n = min(r.shape[1], o.shape[1]), len(r)
    stacked = harmony(np.vstack([r[:, :d], o[:, :d]]), np.repeat(["rna", kind], n), seed, threads)
    arrays = {"joint": joint, "rna": stacked[:n], "other": stacked[n:]}
    return {"epochs": None, "arrays": arrays, "layers_s": time.perf_counter() - t0}


def run_wnn(mdata, other, kind, seed, sections) -> dict:
    """muon WNN on the per-layer reductions of all cells; its connectivities are the method's output."""
    with sections.train():
        r, o = LayerReducer(kind, seed=seed).fit_transform(mdata.mod["rna"].X, mdata.mod[other].X)
        graph = wnn_graph(r, o, kind, seed)
    return {"epochs": None, "arrays": {}, "graph": graph}


def child(args) -> dict:
    """Train and embed one method (in this process); save its arrays to ``--workdir``; return its record."""
    from scipy import sparse

    method = args.child
    threads = default_threads()
    if method in DEEP:
        import scvi

        threads = set_threads()
        scvi.settings.seed = args.seed
    mdata, other, kind = load_data(args.data, args.max_cells, args.seed)
    n_cells = mdata.n_obs
    sections = Sections()
    sections.rec["embed_s"] = None  # only the deep models have an embedding step apart from training
    if method == "scmamba":
        sections.rec["embed_s"] = 0.0
        kwargs = json.loads(args.scmamba_kwargs)
        out = run_scmamba(mdata, other, kind, args.batch_key, args.epochs_scmamba, kwargs, sections)
    elif method == "multivi":
        sections.rec["embed_s"] = 0.0
        out = run_multivi(mdata, other, args.batch_key, args.epochs_multivi, sections)
    elif method == "totalvi":
        sections.rec["embed_s"] = 0.0
        out = run_totalvi(mdata, other, args.batch_key, args.epochs_totalvi, sections)
    elif method == "pca_lsi_harmony":
        out = run_harmony(mdata, other, kind, args.batch_key, args.seed, sections)
    elif method == "wnn":
        out = run_wnn(mdata, other, kind, args.seed, sections)
    elif method == "unintegrated":
        with sections.train():
            out = {"epochs": None, "arrays": {"joint": rna_pca(mdata.mod["rna"], args.seed)}}
    else:
        raise ValueError(f"unknown method {method!r}")
    workdir = Path(args.workdir)
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in out.pop("arrays").items()}
    np.savez(workdir / f"{method}.npz", **arrays)
    if "graph" in out:
        sparse.save_npz(workdir / f"{method}_graph.npz", out.pop("graph"))
    rec = {**sections.rec, **out, "method": method, "threads": threads, "n_cells": n_cells}
    rec["peak_rss_gb"] = max(rec["peak_rss_train_gb"], rec["peak_rss_embed_gb"], peak_rss_gb())
    rec["train_cells_per_s"] = n_cells * (rec.get("epochs") or 1) / rec["train_s"]
    rec["embed_cells_per_s"] = n_cells / rec["embed_s"] if rec["embed_s"] else None
    return rec


# --------------------------------------------------------------------------------------------------- parent: metrics
def _scib_name(name: str) -> str:
    return "scib_" + re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def scib_scores(embedding: np.ndarray, pre: np.ndarray, obs, label_key: str, batch_key: str) -> dict:
    """scib-metrics ``Benchmarker`` defaults on one embedding; every metric and aggregate, not min-max scaled."""
    import anndata as ad
    from scib_metrics.benchmark import BatchCorrection, Benchmarker, BioConservation

    adata = ad.AnnData(obs=obs[[label_key, batch_key]].copy())
    adata.obsm["X_emb"] = np.ascontiguousarray(embedding, dtype=np.float32)
    adata.obsm[PRE_KEY] = np.ascontiguousarray(pre, dtype=np.float32)
    bm = Benchmarker(
        adata,
        batch_key=batch_key,
        label_key=label_key,
        embedding_obsm_keys=["X_emb"],
        bio_conservation_metrics=BioConservation(),
        batch_correction_metrics=BatchCorrection(),
        pre_integrated_embedding_obsm_key=PRE_KEY,
        n_jobs=1,
        progress_bar=False,
    )
    bm.benchmark()
    res = bm.get_results(min_max_scale=False)
    return {_scib_name(col): float(res.loc["X_emb", col]) for col in res.columns}


def evaluate(method: str, workdir: Path, obs, pre: np.ndarray, args) -> dict:
    """Leiden ARI/NMI, FOSCTTM (per-layer methods) and the scib metrics of one method, with their times."""
    from scipy import sparse

    from scmamba.metrics import ari_nmi_leiden, foscttm

    labels = obs[args.label_key].astype(str).to_numpy()
    arrays = dict(np.load(workdir / f"{method}.npz"))
    out = {}
    t0 = time.perf_counter()
    if method == "wnn":
        graph = sparse.load_npz(workdir / f"{method}_graph.npz")
        best = ari_nmi_leiden(None, labels, adjacency=graph, seed=args.seed)
    else:
        best = ari_nmi_leiden(arrays["joint"], labels, seed=args.seed)
    out.update(ARI=best["ari"], NMI=best["nmi"], resolution_ARI=best["resolution_ari"],
               resolution_NMI=best["resolution_nmi"], leiden_s=time.perf_counter() - t0)  # fmt: skip
    if "rna" in arrays and "other" in arrays:
        t0 = time.perf_counter()
        out["FOSCTTM"] = foscttm(arrays["rna"], arrays["other"])
        out["foscttm_s"] = time.perf_counter() - t0
    if "joint" in arrays:
        t0 = time.perf_counter()
        out.update(scib_scores(arrays["joint"], pre, obs, args.label_key, args.batch_key))
        out["scib_s"] = time.perf_counter() - t0
    return out


COST = ["train_s", "time_per_epoch_s", "train_cells_per_s", "embed_s", "embed_cells_per_s", "layers_s",
        "peak_rss_train_gb", "peak_rss_embed_gb", "peak_rss_gb", "n_params"]  # fmt: skip
CONVERGENCE = ["epochs", "max_epochs", "early_stopping", "early_stopped", "patience", "monitor", "best_epoch",
               "val_best", "val_final", "val_rel_change_last10", "elbo_validation_final"]  # fmt: skip


def build_rows(methods: list[str], records: dict, metrics: dict, scib_cols: list[str], n_cells: int) -> list[dict]:
    """One row per method: paper metrics, every scib metric, convergence and cost columns."""
    rows = []
    for method in methods:
        rec, m = records.get(method, {}), metrics.get(method, {})
        ok = rec.get("status", "ok") == "ok"
        row = {"method": method, "status": rec.get("status", "ok"), "n_cells": n_cells}
        for col in ["ARI", "NMI", "resolution_ARI", "resolution_NMI", "FOSCTTM", *scib_cols]:
            v = m.get(col)
            row[col] = None if v is None or not math.isfinite(v) else float(v)
        for col in CONVERGENCE + COST:
            row[col] = rec.get(col)
        for col in ("leiden_s", "foscttm_s", "scib_s"):
            row[col] = m.get(col)
        row["latent"] = LATENT.get(method, "joint + per-layer")
        row["note"] = NOTES[method] if ok else rec.get("error")
        rows.append(row)
    return rows


SCIB_AGGREGATES = ["scib_bio_conservation", "scib_batch_correction", "scib_total"]
TABLE_COLUMNS = ["method", "ARI", "NMI", *SCIB_AGGREGATES, "FOSCTTM", "epochs", "max_epochs", "early_stopped",
                 "best_epoch", "train_s", "peak_rss_gb"]  # fmt: skip
TABLE_HEADERS = {
    "scib_bio_conservation": "scib Bio",
    "scib_batch_correction": "scib Batch",
    "scib_total": "scib Total",
    "max_epochs": "max epochs",
    "early_stopped": "early stop",
    "best_epoch": "best epoch (monitor)",
    "train_s": "train s",
    "peak_rss_gb": "peak RSS GB",
}
TABLE_DIGITS = {"train_s": 1, "peak_rss_gb": 2}


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="paired .h5mu (mods rna + atac, or rna + prot)")
    p.add_argument("--methods", nargs="+", default=None, choices=ALL_METHODS, help="default: all that apply")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_CELLS} cells, {QUICK_EPOCHS} epochs, small SCMAMBA")
    p.add_argument("--max-cells", type=int, default=None,
                   help=f"random cells kept (default: all; {QUICK_CELLS} with --quick; 0: all)")  # fmt: skip
    p.add_argument("--epochs-scmamba", type=int, default=None, help="default: SCMAMBA.train's own (2 with --quick)")
    p.add_argument("--epochs-multivi", type=int, default=None,
                   help="default: MULTIVI.train's own, early stopping as shipped (2 with --quick); setting it "
                   "departs from the protocol")  # fmt: skip
    p.add_argument("--epochs-totalvi", type=int, default=None,
                   help="default: TOTALVI.train's own, early stopping as shipped (2 with --quick); setting it "
                   "departs from the protocol")  # fmt: skip
    p.add_argument("--scmamba-kwargs", default=None,
                   help="JSON of SCMAMBA init keywords (default: none, the package defaults; small_config with "
                   "--quick)")  # fmt: skip
    p.add_argument("--label-key", default="cell_type")
    p.add_argument("--batch-key", default="batch", help="obs column of libraries / donors (scib, Harmony)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=default_threads(),
                   help="threads per method process and for the metrics (torch, OpenMP, BLAS, numba, XLA); "
                   "default $BENCH_THREADS or 1")  # fmt: skip
    p.add_argument("--timeout", type=float, default=6 * 3600,
                   help="seconds per method subprocess (default 6 h: MULTIVI may run up to 500 epochs)")  # fmt: skip
    p.add_argument("--out", default=None, help="output folder (default benchmarks/results)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        for name in DEEP:
            if getattr(args, f"epochs_{name}") is None:
                setattr(args, f"epochs_{name}", QUICK_EPOCHS)
    if args.max_cells is None:
        args.max_cells = QUICK_CELLS if args.quick else 0
    if args.scmamba_kwargs is None:
        args.scmamba_kwargs = json.dumps(quick_scmamba_config() if args.quick else {})
    return args


def _child_cmd(args, method: str, workdir: Path) -> list[str]:
    cmd = [sys.executable, "-m", "benchmarks.allcells", "--child", method, "--data", args.data,
           "--workdir", str(workdir), "--max-cells", str(args.max_cells), "--seed", str(args.seed),
           "--label-key", args.label_key, "--batch-key", args.batch_key,
           "--scmamba-kwargs", args.scmamba_kwargs]  # fmt: skip
    for name in DEEP:
        if getattr(args, f"epochs_{name}") is not None:
            cmd += [f"--epochs-{name}", str(getattr(args, f"epochs_{name}"))]
    return cmd


def _limit_xla(threads: int) -> None:
    """Single-threaded XLA (jax, used by scib-metrics) when one thread is asked for, unless XLA_FLAGS is set."""
    if threads == 1 and "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def main(argv=None):
    """Run every method in its own subprocess, score it on all cells, write results and print the tables."""
    args = parse_args(argv)
    if args.child:  # child process: one method, record as JSON on the last line of stdout
        print(json.dumps(to_jsonable(child(args))))
        return

    t_start = time.perf_counter()
    _limit_xla(args.threads)
    limit_threads(args.threads)
    import scib_metrics

    scib_metrics.settings.verbosity = logging.WARNING  # per-label kBET skips are logged at INFO
    mdata, _, kind = load_data(args.data, args.max_cells, args.seed)
    obs = mdata.obs[[args.label_key, args.batch_key]].copy()
    obs.index = obs.index.astype(str)
    pre = rna_pca(mdata.mod["rna"], args.seed)  # the unintegrated method computes the same in its own process
    n_cells = mdata.n_obs
    del mdata
    methods = args.methods or METHODS[kind]
    bad = [m for m in methods if m not in METHODS[kind]]
    if bad:
        raise SystemExit(f"methods {bad} do not apply to RNA+{kind} data")
    stem = Path(args.data).stem
    out_dir = Path(args.out) if args.out else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"allcells_{stem}_"))
    print(f"{stem}: RNA+{kind}, {n_cells} cells (all trained on and scored); methods {methods}", flush=True)

    def write():  # after every method, so a run stopped later keeps the methods already scored
        scib_cols = list(
            dict.fromkeys(k for m in metrics.values() for k in m if k.startswith("scib_") and k != "scib_s")
        )
        scib_cols = [c for c in scib_cols if c not in SCIB_AGGREGATES] + SCIB_AGGREGATES
        rows = build_rows(methods, records, metrics, scib_cols, n_cells)
        meta = {
            **machine_info(),
            "protocol": "all cells: every method trained and scored on all cells",
            "threads": args.threads,
            "data": str(args.data),
            "modalities": ["rna", kind],
            "quick": args.quick,
            "max_cells": args.max_cells,
            "n_cells": n_cells,
            "seed": args.seed,
            "label_key": args.label_key,
            "batch_key": args.batch_key,
            "epochs_requested": {m: getattr(args, f"epochs_{m}") for m in DEEP},
            "scmamba_kwargs": json.loads(args.scmamba_kwargs),
            "scib": "scib-metrics Benchmarker, default BioConservation() and BatchCorrection(), pre-integrated "
            f"{PRE_KEY} = RNA PCA, get_results(min_max_scale=False) (not min-max scaled)",
            "notes": {m: NOTES[m] for m in methods},
            "total_wall_s": round(time.perf_counter() - t_start, 1),
        }
        json_path = out_dir / f"allcells_{stem}.json"
        json_path.write_text(json.dumps(to_jsonable({"meta": meta, "rows": rows, "children": records}), indent=1))
        import pandas as pd

        pd.DataFrame(rows).to_csv(json_path.with_suffix(".csv"), index=False)
        return json_path, rows, scib_cols

    records, metrics = {}, {}
    try:
        for method in methods:
            rec = run_child(_child_cmd(args, method, workdir), args.timeout, method, threads=args.threads)
            records[method] = rec
            if rec["status"] != "ok":
                continue
            t0 = time.perf_counter()
            try:
                metrics[method] = evaluate(method, workdir, obs, pre, args)
            except Exception as err:  # a metric failure must not lose the other methods' results
                print(f"[{method}] evaluation failed: {err!r}", file=sys.stderr, flush=True)
                rec.update(status="failed", error=f"evaluation: {err!r}"[:300])
                continue
            rec["eval_s"] = round(time.perf_counter() - t0, 1)
            m = metrics[method]
            print(f"[{method}] epochs {rec.get('epochs')}, train {rec['train_s']:.1f} s, metrics {rec['eval_s']:.1f} s "
                  f"(scib {m.get('scib_s', 0):.1f} s); ARI {m['ARI']:.3f}, scib Total "
                  f"{m.get('scib_total', float('nan')):.3f}, FOSCTTM {m.get('FOSCTTM', float('nan')):.3f}",
                  flush=True)  # fmt: skip
            write()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    json_path, rows, scib_cols = write()
    print(f"wrote {json_path} and .csv in {time.perf_counter() - t_start:.0f} s", flush=True)
    detail = [{"method": r["method"], **{c: r.get(c) for c in scib_cols}} for r in rows]
    print("\nscib-metrics, all cells, not min-max scaled:\n")
    print(markdown_table(detail, ["method", *scib_cols], {c: c.removeprefix("scib_") for c in scib_cols}))
    print(f"\n{stem}: all {n_cells} cells ({'quick' if args.quick else 'full'})\n")
    print(markdown_table(rows, TABLE_COLUMNS, TABLE_HEADERS, TABLE_DIGITS))


if __name__ == "__main__":
    main()
