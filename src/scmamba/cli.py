"""Command line: ``scmamba train INPUT.h5mu --out DIR`` and ``scmamba demo`` (thin layer over the Python API)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

logger = logging.getLogger("scmamba")


def _second_modality(mdata) -> tuple[str, str]:
    from ._constants import DEFAULT_MOD_NAMES

    for kind in ("atac", "protein"):
        for name in DEFAULT_MOD_NAMES[kind]:
            if name in mdata.mod:
                return name, kind
    raise SystemExit(f"No ATAC or protein modality found among {list(mdata.mod)}; name them e.g. 'atac' or 'prot'.")


def run_training(
    mdata,
    out: Path,
    *,
    epochs: int,
    batch_key: str | None,
    label_key: str | None,
    model_kwargs: dict | None = None,
    seed: int = 0,
) -> dict:
    """Set up, train, embed, save and report; returns the summary that is also written to ``out/summary.json``."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    import scanpy as sc
    import scvi

    from . import SCMAMBA
    from .metrics import foscttm, label_transfer_scores

    scvi.settings.seed = seed
    out.mkdir(parents=True, exist_ok=True)
    rna = next((n for n in ("rna", "RNA", "gex", "GEX") if n in mdata.mod), None)
    if rna is None:
        raise SystemExit(f"No RNA modality found among {list(mdata.mod)}; name it 'rna'.")
    other, kind = _second_modality(mdata)
    if batch_key is not None and batch_key not in mdata.obs:
        raise SystemExit(f"--batch-key {batch_key!r} is not a column of mdata.obs ({list(mdata.obs.columns)}).")
    SCMAMBA.setup_mudata(mdata, batch_key=batch_key, modalities={"rna_layer": rna, f"{kind}_layer": other})
    model = SCMAMBA(mdata, **(model_kwargs or {}))
    print(model, flush=True)
    t0 = time.perf_counter()
    model.train(max_epochs=epochs)
    train_s = time.perf_counter() - t0

    z_rna = model.get_latent_representation(modality="rna")
    z_other = model.get_latent_representation(modality=kind)
    mdata.obsm["X_scmamba"] = model.get_latent_representation()
    mdata.obsm["X_scmamba_rna"] = z_rna
    mdata.obsm[f"X_scmamba_{kind}"] = z_other
    summary = {
        "cells": int(mdata.n_obs),
        "features": {m: int(mdata.mod[name].n_vars) for m, name in model.modality_mods_.items()},
        "epochs": epochs,
        "train_seconds": round(train_s, 1),
        "foscttm_rna_vs_" + kind: round(float(foscttm(z_rna, z_other)), 4),
    }
    if label_key is not None and label_key in mdata.obs:
        # Cross-modal label agreement: each cell's label predicted by its 15 nearest RNA-embedded neighbours
        # (leave-one-out is not needed: the query is the other modality's embedding of the cell).
        labels = mdata.obs[label_key].astype(str).values
        scores = label_transfer_scores(z_rna, labels, z_other, labels, k=15)
        summary[f"label_knn_agreement_rna_to_{kind}"] = round(float(scores["accuracy"]), 4)

    model.save(str(out / "model"), overwrite=True)
    mdata.write_h5mu(out / "embedded.h5mu")
    joint = sc.AnnData(np.asarray(mdata.obsm["X_scmamba"]), obs=mdata.obs.copy())
    sc.pp.neighbors(joint, use_rep="X", n_neighbors=15)
    sc.tl.umap(joint, random_state=seed)
    color = [c for c in (label_key, batch_key) if c is not None and c in joint.obs] or None
    fig = sc.pl.umap(joint, color=color, show=False, return_fig=True, wspace=0.6)
    fig.savefig(out / "umap.png", dpi=120, bbox_inches="tight")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    print(f"Wrote {out / 'embedded.h5mu'} (obsm X_scmamba*), {out / 'model'}/, {out / 'umap.png'}")
    return summary


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``scmamba`` command."""
    parser = argparse.ArgumentParser(prog="scmamba", description="Paired single-cell multi-omics integration.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train on a paired .h5mu and write embeddings, model and UMAP")
    train.add_argument("input", type=Path, help=".h5mu with raw counts: 'rna' and 'atac' (or 'prot') modalities")
    train.add_argument("--out", type=Path, required=True, help="output folder")
    train.add_argument("--epochs", type=int, default=50)
    train.add_argument("--batch-key", default=None, help="obs column of batches (optional)")
    train.add_argument("--label-key", default="cell_type", help="obs column of labels for the agreement report")
    train.add_argument("--model-kwargs", default="{}", help="JSON of SCMAMBA keywords, e.g. '{\"d_model\": 128}'")
    train.add_argument("--seed", type=int, default=0)
    demo = sub.add_parser("demo", help="train on the shipped SNARE-seq demo subset (2,500 cells, CPU, minutes)")
    demo.add_argument("--out", type=Path, default=Path("scmamba_demo"))
    demo.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import mudata as md

    md.set_options(pull_on_update=False)
    if args.command == "demo":
        from .datasets import snareseq_cortex_demo

        mdata = snareseq_cortex_demo()
        run_training(mdata, args.out, epochs=args.epochs, batch_key="batch", label_key="cell_type")
    else:
        if not args.input.exists():
            raise SystemExit(f"{args.input} does not exist.")
        mdata = md.read_h5mu(args.input)
        run_training(
            mdata,
            args.out,
            epochs=args.epochs,
            batch_key=args.batch_key,
            label_key=args.label_key,
            model_kwargs=json.loads(args.model_kwargs),
            seed=args.seed,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
