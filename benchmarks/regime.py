"""Regime benchmark: quality across data sizes, feature panels and seeds, on the labelled sets of ``../shared/data``.

The defaults of a model are only as good as the worst regime users bring: a 500-cell pilot, a targeted panel, a
weak second layer, several donors. Every row of this table is one data regime: a labelled set (SNARE-seq mouse
cortex RNA+ATAC, Abseq bone marrow RNA+protein, the package's shipped SNARE-seq demo subset) subsampled to
``--sizes`` cells (0: all), with all features (``all``) or a random feature panel (``panel``: 600 genes + 600 peaks
drawn with probabilities proportional to their detection rate; on Abseq 100 of its 422 genes and every protein),
with its batches (libraries / donors), over ``--seeds`` (each seed draws its own cells, panel and model seed).

Every method trains on all the row's cells and is scored on all of them (the protocol users follow):

``scmamba``        ``SCMAMBA`` at the package defaults (``setup_mudata(batch_key="batch")``, ``SCMAMBA(mdata)``,
                   ``train()``), joint embedding; ``scmamba_rna`` / ``scmamba_<layer>`` its per-layer embeddings
                   (``modality=``), from the same model.
``rna_pca``        normalize_total + log1p + PCA(50) of RNA (scib's unintegrated baseline, its pre-integration
                   embedding).
``second``         the second layer alone: ATAC TF-IDF + LSI (first component dropped) or protein CLR + PCA.
``wnn``            muon WNN on RNA PCA and the second layer's reduction (a graph: ARI/NMI only).
``harmony``        both reductions side by side (unit total variance each), Harmony on ``batch``.
``peer``           MULTIVI (RNA+ATAC) or TOTALVI (RNA+protein) at their own ``train()`` defaults (``--peers``).
``scmamba_no_block``  only when named in ``--methods``: ``SCMAMBA`` with ``n_layers=0`` (no Mamba2 block; the
                   tokens go straight into the head) and otherwise the ``scmamba`` keywords: what the blocks add.

Metrics: best Leiden ARI / NMI over resolutions 0.1-2.0 on the 15-NN graph (``scmamba.metrics.ari_nmi_leiden``;
WNN's own graph for ``wnn``), and scib-metrics' ``Benchmarker`` defaults (bio conservation, batch correction,
Total = 0.6 bio + 0.4 batch), not min-max scaled, with RNA PCA as the pre-integration embedding; train time.

Usage::

    python -m benchmarks.regime                                     # the whole table (hours on 2 cores)
    python -m benchmarks.regime --sets abseq --sizes 500 --panels panel --seeds 0 --methods scmamba,rna_pca
    python -m benchmarks.regime --scmamba-kwargs '{"lambda_adv": 3}' --tag adv3   # a candidate default
    python -m benchmarks.regime --methods scmamba,scmamba_no_block  # the Mamba2 blocks against none

Each finished (set, size, panel, seed, method) is appended to ``--out`` (JSON lines; a rerun skips what is there,
so a long run can be resumed); the table of means over seeds is printed and written beside it as ``.csv``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.helpers.common import RESULTS, SHARED_DATA, to_jsonable
from benchmarks.helpers.methods import (
    NO_BLOCK,
    LayerReducer,
    harmony,
    multivi,
    scmamba,
    totalvi,
    unit_variance,
    wnn_graph,
)

DATA = SHARED_DATA
SETS = {
    "snareseq": DATA / "snareseq_mouse_cortex_chen2019.h5mu",
    "abseq": DATA / "abseq_bonemarrow_triana2021.h5mu",
    "demo": None,  # scmamba.datasets.snareseq_cortex_demo()
}
#: Panel sizes: (genes, second-layer features); None keeps every feature of that layer.
PANELS = {"atac": (600, 600), "protein": (100, None)}
METHODS = ["scmamba", "rna_pca", "second", "wnn", "harmony", "peer"]
#: Tag of the SCMAMBA rows run at the package's current defaults (earlier defaults keep their own tags in the file:
#: ``defaults`` is the configuration before the donor correction, ``batch_correction="harmony"``; ``harmony`` had a
#: Mamba2 encoder on every layer; ``encoders`` RNA and protein embedded by their classic reduction alone; the SNARE-seq
#: and demo rows of ``rna_anchor`` are those of ``encoders``, the same configuration for RNA + ATAC).
CURRENT_TAG = "rna_anchor"
#: Accepted by ``--methods`` but not run by default.
EXTRA_METHODS = ["scmamba_no_block"]
LABEL, BATCH = "cell_type", "batch"


def load_set(name: str):
    """The labelled MuData of a set (mods ``rna`` and ``atac`` / ``prot``), its second layer's name and kind."""
    import mudata as md

    md.set_options(pull_on_update=False)
    if name == "demo":
        import scmamba

        mdata = scmamba.datasets.snareseq_cortex_demo()
    else:
        mdata = md.read_h5mu(SETS[name])
    other = "atac" if "atac" in mdata.mod else "prot"
    return mdata, other, "atac" if other == "atac" else "protein"


def draw_features(X, n: int | None, rng) -> np.ndarray:
    """``n`` feature indices (sorted) drawn without replacement, with probabilities proportional to detection rate."""
    n_features = X.shape[1]
    if n is None or n >= n_features:
        return np.arange(n_features)
    detected = np.asarray((X > 0).sum(axis=0)).ravel().astype(float)
    p = detected / detected.sum()
    k = int(min(n, np.count_nonzero(p)))
    return np.sort(rng.choice(n_features, k, replace=False, p=p))


def make_regime(name: str, size: int, panel: str, seed: int):
    """The row's MuData: ``size`` random cells (0: all), all features or a panel, every cell with counts."""
    import mudata as md
    from scipy import sparse

    mdata, other, kind = load_set(name)
    rng = np.random.default_rng([seed, size, 0 if panel == "all" else 1])
    cells = np.arange(mdata.n_obs)
    if size and size < mdata.n_obs:
        cells = np.sort(rng.choice(mdata.n_obs, size, replace=False))
    rna, oth = mdata.mod["rna"][cells], mdata.mod[other][cells]
    if panel == "panel":
        n_genes, n_other = PANELS[kind]
        rna = rna[:, draw_features(rna.X, n_genes, rng)]
        oth = oth[:, draw_features(oth.X, n_other, rng)]
    rna, oth = rna.copy(), oth.copy()
    # a panel can leave a cell without counts in a layer; such cells are dropped from the row (set-up refuses them)
    keep = (np.asarray(rna.X.sum(1)).ravel() > 0) & (np.asarray(oth.X.sum(1)).ravel() > 0)
    rna, oth = rna[keep].copy(), oth[keep].copy()
    for a in (rna, oth):
        a.X = sparse.csr_matrix(a.X, dtype=np.float32)
    out = md.MuData({"rna": rna, other: oth})
    out.obs[LABEL] = rna.obs[LABEL].astype(str).to_numpy()
    out.obs[BATCH] = rna.obs[BATCH].astype(str).to_numpy()
    return out, other, kind


# -- methods ---------------------------------------------------------------------------------------------------------


def run_scmamba(mdata, other, kind, seed: int, model_kwargs: dict, train_kwargs: dict, name: str = "scmamba") -> dict:
    """SCMAMBA on the row's cells: joint embedding as ``name``; with ``name="scmamba"`` also its per-layer ones."""
    import scvi

    scvi.settings.seed = seed
    model = scmamba(mdata, other, kind, batch_key=BATCH, **model_kwargs)
    t0 = time.perf_counter()
    model.train(enable_progress_bar=False, **train_kwargs)
    train_s = time.perf_counter() - t0
    emb = {name: model.get_latent_representation()}
    if name == "scmamba":
        emb["scmamba_rna"] = model.get_latent_representation(modality="rna")
        emb[f"scmamba_{kind}"] = model.get_latent_representation(modality=kind)
    steps = int(model.trainer.global_step) if getattr(model, "trainer", None) is not None else None
    epochs = len(model.history["train_loss_epoch"]) if "train_loss_epoch" in model.history else None
    weights = {
        "layer_weights": model.layer_weights_,
        "layer_reliability": getattr(model, "layer_reliability_", None),
    }
    return {"embeddings": emb, "train_s": train_s, "steps": steps, "epochs": epochs, **weights}


def run_classic(mdata, other, kind, seed: int, which: set[str]) -> dict:
    """RNA PCA, the second layer alone, Harmony on both, WNN: the reductions are computed once."""
    out: dict = {"embeddings": {}, "graphs": {}, "train_s": {}}
    t0 = time.perf_counter()
    r, o = LayerReducer(kind, seed=seed).fit_transform(mdata.mod["rna"].X, mdata.mod[other].X)
    reduce_s = time.perf_counter() - t0
    out["embeddings"]["rna_pca"], out["embeddings"]["second"] = r, o
    out["train_s"]["rna_pca"] = out["train_s"]["second"] = reduce_s
    if "harmony" in which:
        t0 = time.perf_counter()
        out["embeddings"]["harmony"] = harmony(np.hstack(unit_variance(r, o)), mdata.obs[BATCH].to_numpy(), seed)
        out["train_s"]["harmony"] = reduce_s + time.perf_counter() - t0
    if "wnn" in which:
        t0 = time.perf_counter()
        out["graphs"]["wnn"] = wnn_graph(r, o, kind, seed)
        out["train_s"]["wnn"] = reduce_s + time.perf_counter() - t0
    return out


def run_peer(mdata, other, kind, seed: int) -> dict:
    """MULTIVI or TOTALVI at its own ``train()`` defaults; joint latent."""
    import scvi

    scvi.settings.seed = seed
    model = multivi(mdata, other, batch_key=BATCH) if kind == "atac" else totalvi(mdata, other, batch_key=BATCH)
    t0 = time.perf_counter()
    model.train(enable_progress_bar=False)
    train_s = time.perf_counter() - t0
    return {"embeddings": {"peer": model.get_latent_representation()}, "train_s": train_s}


# -- metrics ---------------------------------------------------------------------------------------------------------


def scib_scores(embeddings: dict[str, np.ndarray], pre: np.ndarray, obs: pd.DataFrame) -> dict[str, dict]:
    """scib-metrics ``Benchmarker`` defaults per embedding (not min-max scaled): bio, batch, Total."""
    import anndata as ad
    from scib_metrics.benchmark import BatchCorrection, Benchmarker, BioConservation

    adata = ad.AnnData(obs=obs[[LABEL, BATCH]].copy())
    for key, z in embeddings.items():
        adata.obsm[key] = np.ascontiguousarray(z, dtype=np.float32)
    adata.obsm["_pre"] = np.ascontiguousarray(pre, dtype=np.float32)
    bm = Benchmarker(
        adata,
        batch_key=BATCH,
        label_key=LABEL,
        embedding_obsm_keys=list(embeddings),
        bio_conservation_metrics=BioConservation(),
        batch_correction_metrics=BatchCorrection(),
        pre_integrated_embedding_obsm_key="_pre",
        n_jobs=1,
        progress_bar=False,
    )
    bm.benchmark()
    res = bm.get_results(min_max_scale=False)
    cols = {"Bio conservation": "bio", "Batch correction": "batch", "Total": "total", "iLISI": "ilisi"}
    return {key: {v: float(res.loc[key, k]) for k, v in cols.items() if k in res.columns} for key in embeddings}


def score(embeddings: dict, graphs: dict, obs: pd.DataFrame, pre: np.ndarray, seed: int, scib: bool) -> dict:
    from scmamba.metrics import ari_nmi_leiden

    labels = obs[LABEL].to_numpy()
    out = {}
    for key, z in embeddings.items():
        best = ari_nmi_leiden(z, labels, seed=seed)
        out[key] = {"ari": best["ari"], "nmi": best["nmi"]}
    for key, graph in graphs.items():
        best = ari_nmi_leiden(None, labels, adjacency=graph, seed=seed)
        out[key] = {"ari": best["ari"], "nmi": best["nmi"]}
    if scib and obs[BATCH].nunique() > 1:
        for key, vals in scib_scores(embeddings, pre, obs).items():
            out[key].update(vals)
    return out


# -- driver ----------------------------------------------------------------------------------------------------------


def done_keys(path: Path) -> set[tuple]:
    if not path.exists():
        return set()
    keys = set()
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            keys.add((r["set"], r["size"], r["panel"], r["seed"], r["tag"], r["method"]))
    return keys


def run_row(args, name: str, size: int, panel: str, seed: int, done: set, tag: str) -> list[dict]:
    methods = [m for m in args.methods.split(",") if m]
    mdata, other, kind = make_regime(name, size, panel, seed)
    meta = {
        "set": name, "size": size, "panel": panel, "seed": seed, "tag": tag, "n_cells": int(mdata.n_obs),
        "n_genes": int(mdata.mod["rna"].n_vars), "n_other": int(mdata.mod[other].n_vars),
        "n_batches": int(mdata.obs[BATCH].nunique()), "n_types": int(mdata.obs[LABEL].nunique()),
    }  # fmt: skip
    key = (name, size, panel, seed, tag)
    todo = [m for m in methods if (*key, m) not in done]
    if not todo:
        return []
    embeddings, graphs, extra = {}, {}, {}
    classic = {"rna_pca", "second", "wnn", "harmony"} & set(todo)
    res = run_classic(mdata, other, kind, seed, classic)  # RNA PCA is also scib's pre-integration embedding
    pre = res["embeddings"]["rna_pca"]
    for m in classic:
        (graphs if m == "wnn" else embeddings)[m] = res["graphs"][m] if m == "wnn" else res["embeddings"][m]
        extra[m] = {"train_s": res["train_s"][m]}
    model_kwargs, train_kwargs = json.loads(args.scmamba_kwargs), json.loads(args.train_kwargs)
    for name, kwargs in (("scmamba", model_kwargs), ("scmamba_no_block", {**model_kwargs, **NO_BLOCK})):
        if name in todo:
            out = run_scmamba(mdata.copy(), other, kind, seed, kwargs, train_kwargs, name)
            embeddings.update(out["embeddings"])
            for m in out["embeddings"]:
                extra[m] = {k: out[k] for k in ("train_s", "steps", "epochs", "layer_weights", "layer_reliability")}
    if "peer" in todo:
        out = run_peer(mdata.copy(), other, kind, seed)
        embeddings.update(out["embeddings"])
        extra["peer"] = {"train_s": out["train_s"], "peer": "multivi" if kind == "atac" else "totalvi"}
    if args.save_embeddings is not None:
        args.save_embeddings.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            args.save_embeddings / f"{name}_{size}_{panel}_{seed}_{tag}.npz", **embeddings,
            labels=mdata.obs[LABEL].to_numpy(), batch=mdata.obs[BATCH].to_numpy(),
        )  # fmt: skip
    scores = score(embeddings, graphs, mdata.obs, pre, seed, scib=not args.no_scib)
    records = []
    for m, vals in scores.items():
        if m in ("scmamba_rna", f"scmamba_{kind}") and "scmamba" not in todo:
            continue
        records.append({**meta, "method": m, **vals, **extra.get(m, {})})
    return records


def table(path: Path) -> pd.DataFrame:
    """Means over seeds per (set, size, panel, tag, method)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    df = pd.DataFrame(rows)
    cols = [c for c in ("ari", "nmi", "bio", "batch", "total", "ilisi", "train_s") if c in df.columns]
    g = df.groupby(["set", "size", "panel", "tag", "method"], sort=False)
    out = g[cols].mean()
    out["seeds"] = g.size()
    return out.reset_index()


ORDER = [
    "scmamba",
    "scmamba_rna",
    "scmamba_atac",
    "scmamba_protein",
    "scmamba_no_block",
    "rna_pca",
    "second",
    "wnn",
    "harmony",
    "peer",
]


def markdown(df: pd.DataFrame, tag: str) -> str:
    """One line per regime: Leiden ARI / NMI of every method, scib Total where defined, SCMAMBA's train time."""
    df = df[(df["tag"] == tag) | ~df["method"].str.startswith("scmamba")]
    methods = [m for m in ORDER if m in set(df["method"])]
    head = ["set", "cells", "features", "seeds", *methods, "Total: SCMAMBA / best other", "SCMAMBA train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (name, size, panel), g in df.groupby(["set", "size", "panel"], sort=False):
        g = g.set_index("method")
        cells = [name, str(size or "all"), panel, str(int(g["seeds"].min()))]
        for m in methods:
            cells.append(f"{g.loc[m, 'ari']:.3f} / {g.loc[m, 'nmi']:.3f}" if m in g.index else "–")
        if "total" in g.columns and "scmamba" in g.index and g["total"].notna().any():
            others = g.drop(index=[m for m in g.index if m.startswith("scmamba")])["total"].dropna()
            best = f"{others.max():.3f} ({others.idxmax()})" if len(others) else "–"
            cells.append(f"{g.loc['scmamba', 'total']:.3f} / {best}")
        else:
            cells.append("–")
        cells.append(f"{g.loc['scmamba', 'train_s']:.0f}" if "scmamba" in g.index else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", default="demo,snareseq,abseq")
    p.add_argument("--sizes", default="500,1000,2500,0", help="cells per row (0: all)")
    p.add_argument("--panels", default="all,panel")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default=",".join(METHODS), help=f"also: {', '.join(EXTRA_METHODS)}")
    p.add_argument("--scmamba-kwargs", default="{}", help="JSON keyword arguments of SCMAMBA(...)")
    p.add_argument("--train-kwargs", default="{}", help="JSON keyword arguments of SCMAMBA.train(...)")
    p.add_argument("--tag", default=CURRENT_TAG, help="name of the SCMAMBA configuration in the records")
    p.add_argument("--no-scib", action="store_true", help="Leiden ARI / NMI only (faster)")
    p.add_argument("--save-embeddings", type=Path, default=None, help="folder for each row's embeddings (.npz)")
    p.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 1)))
    p.add_argument("--out", type=Path, default=RESULTS / "regime.jsonl")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("scvi").setLevel(logging.ERROR)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = done_keys(args.out)
    for name in args.sets.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            if name == "demo" and size not in (0, 500, 1000):
                continue  # the demo has 2,500 cells: 0 is all of them
            for panel in args.panels.split(","):
                for seed in (int(s) for s in args.seeds.split(",")):
                    t0 = time.perf_counter()
                    recs = run_row(args, name, size, panel, seed, done, args.tag)
                    with args.out.open("a") as fh:
                        for r in recs:
                            fh.write(json.dumps(to_jsonable(r)) + "\n")
                    if recs:
                        print(f"# {name} {size} {panel} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
                        for r in recs:
                            vals = " ".join(f"{k} {r[k]:.3f}" for k in ("ari", "nmi", "total") if k in r)
                            print(f"  {r['method']:<18} {vals}", flush=True)
    if args.out.exists():
        df = table(args.out)
        df.to_csv(args.out.with_suffix(".csv"), index=False)
        with pd.option_context("display.width", 200, "display.max_rows", 500):
            print(df.round(3).to_string(index=False))
        print("\nLeiden best ARI / NMI (mean over seeds); scib Total, not min-max scaled:\n")
        print(markdown(df, args.tag))


if __name__ == "__main__":
    main()
