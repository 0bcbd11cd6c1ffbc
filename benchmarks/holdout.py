"""Held-out evaluation of SCMAMBA next to scvi-tools peers on the same cells and machine.

Trains each method on a random 80% of the cells (seed 0) and reports, on the held-out 20%:

* FOSCTTM between the two modality embeddings of the held-out cells (lower is better, random 0.5);
* accuracy / macro-F1 of a 15-NN classifier fitted on the reference cells' RNA embedding predicting the held-out
  cells' label from their ATAC (or protein) embedding (cross-modal label transfer);
* training wall time, training cells/s (cells x epochs / s), embedding cells/s, peak RSS of the process.

Each method runs in its own subprocess so that peak RSS is its own. MULTIVI gives per-modality latents
(``modality='expression'/'accessibility'``); TOTALVI has only a joint latent, so FOSCTTM is not defined for it and
its label transfer uses the joint latent of both modalities.

Usage::

    python benchmarks/holdout.py --data ../shared/data/snareseq_mouse_cortex_chen2019.h5mu --methods scmamba multivi
    python benchmarks/holdout.py --data ../shared/data/abseq_bonemarrow_triana2021.h5mu --methods scmamba totalvi

Writes ``benchmarks/results/holdout_<data>.json`` and ``.csv`` and prints a Markdown table last.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fit_multivi, fit_totalvi, holdout_split, other_modality, peak_rss_gb

RESULTS = Path(__file__).resolve().parent / "results"


def run_one(method: str, data: str, epochs: int, label_key: str, seed: int, extra: dict) -> dict:
    """Train one method on the reference split and evaluate on the held-out split (in this process)."""
    import mudata as md
    import scvi
    import torch

    from scmamba.metrics import foscttm, label_transfer_scores

    md.set_options(pull_on_update=False)
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1)))
    scvi.settings.seed = seed
    mdata = md.read_h5mu(data)
    other, kind = other_modality(mdata)
    train_idx, test_idx = holdout_split(mdata.n_obs, seed)
    ref, query = mdata[train_idx].copy(), mdata[test_idx].copy()
    labels_ref = ref.obs[label_key].astype(str).values
    labels_query = query.obs[label_key].astype(str).values
    result = {
        "method": method,
        "data": Path(data).stem,
        "n_ref": ref.n_obs,
        "n_query": query.n_obs,
        "epochs": epochs,
    }

    t0 = time.perf_counter()
    if method == "scmamba":
        from scmamba import SCMAMBA

        layer_arg = f"{kind}_layer"
        SCMAMBA.setup_mudata(ref, batch_key="batch", modalities={"rna_layer": "rna", layer_arg: other})
        model = SCMAMBA(ref, **extra)
        model.train(max_epochs=epochs, enable_progress_bar=False)
        train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        z_rna_q = model.get_latent_representation(query, modality="rna")
        z_oth_q = model.get_latent_representation(query, modality=kind)
        embed_s = time.perf_counter() - t1
        z_rna_ref = model.get_latent_representation(modality="rna")
        result["n_params"] = int(sum(p.numel() for p in model.module.parameters()))
    elif method == "multivi":
        model = fit_multivi(ref, other, epochs)
        train_s = time.perf_counter() - t0
        query.obs["_indices"] = np.arange(query.n_obs)  # MULTIVI registers this column; its query transfer needs it
        t1 = time.perf_counter()
        z_rna_q = model.get_latent_representation(query, modality="expression")
        z_oth_q = model.get_latent_representation(query, modality="accessibility")
        embed_s = time.perf_counter() - t1
        z_rna_ref = model.get_latent_representation(modality="expression")
    elif method == "totalvi":
        model = fit_totalvi(ref, other, epochs, query)
        train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        z_oth_q = model.get_latent_representation(query)
        embed_s = time.perf_counter() - t1
        z_rna_q = None
        z_rna_ref = model.get_latent_representation()
    else:
        raise ValueError(method)

    result.update(
        train_s=round(train_s, 1),
        train_cells_per_s=round(ref.n_obs * epochs / train_s, 1),
        embed_cells_per_s=round(query.n_obs * (1 if z_rna_q is None else 2) / embed_s, 1),
        peak_rss_gb=round(peak_rss_gb(), 2),
    )
    result["foscttm_heldout"] = None if z_rna_q is None else round(float(foscttm(z_rna_q, z_oth_q)), 4)
    scores = label_transfer_scores(z_rna_ref, labels_ref, z_oth_q, labels_query, k=15)
    result["label_acc_rna_to_other"] = round(float(scores["accuracy"]), 4)
    result["label_f1_rna_to_other"] = round(float(scores["macro_f1"]), 4)
    if z_rna_q is not None:
        scores = label_transfer_scores(z_rna_ref, labels_ref, z_rna_q, labels_query, k=15)
        result["label_acc_rna_to_rna"] = round(float(scores["accuracy"]), 4)
    return result


def markdown(rows: list[dict]) -> str:
    cols = [
        "method", "data", "epochs", "foscttm_heldout", "label_acc_rna_to_other", "label_f1_rna_to_other",
        "train_s", "train_cells_per_s", "embed_cells_per_s", "peak_rss_gb",
    ]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join("n/a" if r.get(c) is None else str(r.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--methods", nargs="+", default=["scmamba"])
    parser.add_argument("--epochs", type=int, default=None, help="default: scmamba 40, multivi 30, totalvi 100")
    parser.add_argument("--label-key", default="cell_type")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scmamba-kwargs", default="{}", help="JSON of SCMAMBA init keywords")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    default_epochs = {"scmamba": 40, "multivi": 30, "totalvi": 100}

    if args.single:  # child process: one method, result as JSON on the last line of stdout
        method = args.methods[0]
        res = run_one(method, args.data, args.epochs or default_epochs[method], args.label_key, args.seed,
                      json.loads(args.scmamba_kwargs))  # fmt: skip
        print(json.dumps(res))
        return

    rows = []
    for method in args.methods:
        cmd = [sys.executable, __file__, "--single", "--data", args.data, "--methods", method, "--label-key",
               args.label_key, "--seed", str(args.seed), "--scmamba-kwargs", args.scmamba_kwargs]  # fmt: skip
        if args.epochs:
            cmd += ["--epochs", str(args.epochs)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{method} failed")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = Path(args.out) if args.out else RESULTS / f"holdout_{Path(args.data).stem}.json"
    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "python": platform.python_version()}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    import pandas as pd

    pd.DataFrame(rows).to_csv(out.with_suffix(".csv"), index=False)
    print(markdown(rows))


if __name__ == "__main__":
    main()
