"""Reference -> query label transfer: SCMAMBA next to its scvi-tools peer, on a split by donor or library.

Two protocols (the data set decides which):

* **Abseq bone marrow** (RNA + protein): reference = the young donors BM1, BM2, BM3; query = the aged donors
  Aged1, Aged2, Aged3. Query given paired (RNA + protein) and given as RNA only (protein dropped).
* **SNARE-seq cortex** (RNA + ATAC): reference = 8 of the 12 libraries, query = the other 4 (the last four in
  sorted order). Query given paired, RNA only and ATAC only.

Every method is trained on the reference cells only. Query cells are embedded with the trained model without seeing
their labels (every model: its ``load_query_data``, which adds the query's batches, without fine-tuning; SCMAMBA
embeds single-modality query cells with that modality's encoder), and a 15-NN classifier fitted on the reference's
joint embedding predicts ``cell_type`` (and an MLP classifier, the paper's choice); accuracy and macro-F1 against
the true labels are reported. SCMAMBA also reports the paired query after fine-tuning its query model's
normalisation parameters for 5 epochs (``load_query_data(..., trainable="norms")``, the reference weights otherwise
frozen). For single- modality queries the classifier is also fitted on the reference's embedding of the same
modality (``ref_rep = modality``).

SCMAMBA trains for its default 50 epochs (``SCMAMBA.train``'s ``max_epochs``; ``reference_cv.py`` compares 20 and
50 on the reference donors alone). Peers: scvi-tools TOTALVI (Abseq; 100 epochs; joint latent; it needs proteins,
so no RNA-only row) and MULTIVI (SNARE-seq; 30 epochs; ``modality='expression'`` / ``'accessibility'`` latents for
single-modality queries).

Usage::

    python -m benchmarks.transfer --data ../shared/data/abseq_bonemarrow_triana2021.h5mu
    python -m benchmarks.transfer --data ../shared/data/snareseq_mouse_cortex_chen2019.h5mu
    python -m benchmarks.transfer --data ... --quick --out /tmp/transfer    # smoke run (small, few epochs)

Writes ``transfer_<data>.json`` / ``.csv`` into ``--out`` (default ``benchmarks/results/``) and prints a Markdown
table last.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.helpers.common import (
    RESULTS,
    default_threads,
    machine_info,
    markdown_table,
    other_modality,
    peak_rss_gb,
    run_child,
    set_threads,
    split_reference_query,
    to_jsonable,
)
from benchmarks.helpers.methods import fit_multivi, fit_totalvi, scmamba

# SCMAMBA: the model's own default ``max_epochs`` (50); ``reference_cv.py`` checks it on the reference alone
DEFAULT_EPOCHS = {"scmamba": 50, "totalvi": 100, "multivi": 30}
QUICK_EPOCHS = {"scmamba": 2, "totalvi": 5, "multivi": 2}


def _scores(ref_z, ref_labels, query_z, query_labels) -> list[dict]:
    """Accuracy and macro-F1 of a 15-NN classifier and of scmamba.tl's MLP classifier (the paper's choice)."""
    from sklearn.metrics import accuracy_score, f1_score

    from scmamba.tl import transfer_labels_from_embeddings

    out = []
    for name, method in (("15-NN", "knn"), ("MLP", "mlp")):
        pred = transfer_labels_from_embeddings(ref_z, ref_labels, query_z, method=method)["label"].astype(str)
        out.append({
            "classifier": name,
            "accuracy": float(accuracy_score(query_labels, pred)),
            "macro_f1": float(f1_score(query_labels, pred, average="macro", zero_division=0)),
        })  # fmt: skip
    return out


def run_method(method: str, data: str, epochs: int, quick: bool, seed: int, scmamba_kwargs: dict) -> dict:
    """Train ``method`` on the reference and score every query form (runs in a child process)."""
    import mudata as md
    import scvi

    md.set_options(pull_on_update=False)
    threads = set_threads()
    scvi.settings.seed = seed
    mdata = md.read_h5mu(data)
    other, kind = other_modality(mdata)
    ref, query, protocol = split_reference_query(mdata, quick, seed)
    y_ref = ref.obs["cell_type"].astype(str).values
    y_query = query.obs["cell_type"].astype(str).values
    rows = []

    t0 = time.perf_counter()
    if method == "scmamba":
        from scmamba import SCMAMBA

        kwargs = {**(SCMAMBA.small_config() if quick else {}), **scmamba_kwargs}
        model = scmamba(ref, other, kind, **kwargs)
        model.train(max_epochs=epochs, enable_progress_bar=False)
        train_s = time.perf_counter() - t0
        z_ref = {m: model.get_latent_representation(modality=m) for m in ("joint", "rna", kind)}
        t1 = time.perf_counter()
        qmodel = SCMAMBA.load_query_data(query, model)  # the reference weights, no fine-tuning
        z_q = {"paired": qmodel.get_latent_representation()}
        embed_s = time.perf_counter() - t1
        # scArches-style fine-tuning of the query model's normalisation parameters on the query's own pairs
        qmodel.train(max_epochs=1 if quick else 5, enable_progress_bar=False)
        z_q["paired, fine-tuned norms"] = qmodel.get_latent_representation()
        t1 = time.perf_counter() - embed_s
        for m in ("rna", kind):  # single-modality query cells: an AnnData of that modality only
            z_q[m] = model.get_latent_representation(query.mod[m if m == "rna" else other], modality=m)
        embed_s = time.perf_counter() - t1
    elif method == "totalvi":
        model = fit_totalvi(ref, other, epochs, query)
        train_s = time.perf_counter() - t0
        z_ref = {"joint": model.get_latent_representation()}
        t1 = time.perf_counter()
        qmodel = scvi.model.TOTALVI.load_query_data(query, model)  # adds the new donors; not fine-tuned
        qmodel.is_trained_ = True  # scvi refuses to embed with an untrained query model; this is the mapping as is
        z_q = {"paired": qmodel.get_latent_representation()}
        embed_s = time.perf_counter() - t1
    elif method == "multivi":
        model = fit_multivi(ref, other, epochs)
        train_s = time.perf_counter() - t0
        z_ref = {
            "joint": model.get_latent_representation(),
            "rna": model.get_latent_representation(modality="expression"),
            "atac": model.get_latent_representation(modality="accessibility"),
        }
        t1 = time.perf_counter()
        qmodel = scvi.model.MULTIVI.load_query_data(query, model)  # adds the new libraries; not fine-tuned
        qmodel.is_trained_ = True  # scvi refuses to embed with an untrained query model; this is the mapping as is
        z_q = {
            "paired": qmodel.get_latent_representation(),
            "rna": qmodel.get_latent_representation(modality="expression"),
            "atac": qmodel.get_latent_representation(modality="accessibility"),
        }
        embed_s = time.perf_counter() - t1
    else:
        raise ValueError(f"unknown method {method!r}")

    for query_kind, zq in z_q.items():
        paired = query_kind.startswith("paired")
        reps = ["joint"] if paired else ["joint", query_kind]
        for rep in reps:
            for score in _scores(z_ref[rep], y_ref, zq, y_query):
                rows.append({
                    "method": method,
                    "query": query_kind if paired else f"{query_kind} only",
                    "ref_rep": rep if rep == "joint" else "same modality",
                    **score,
                })  # fmt: skip
    return {
        "method": method,
        "protocol": protocol,
        "n_ref": ref.n_obs,
        "n_query": query.n_obs,
        "epochs": epochs,
        "threads": threads,
        "train_s": round(train_s, 1),
        "train_cells_per_s": round(ref.n_obs * epochs / train_s, 1),
        "embed_s": round(embed_s, 2),
        "peak_rss_gb": round(peak_rss_gb(), 2),
        "rows": rows,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--methods", nargs="+", default=None, help="default: scmamba and the data set's peer")
    parser.add_argument("--epochs", type=json.loads, default={}, help="JSON, e.g. '{\"scmamba\": 20}'")
    parser.add_argument("--scmamba-kwargs", type=json.loads, default={})
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--out", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    epochs = {**(QUICK_EPOCHS if args.quick else DEFAULT_EPOCHS), **args.epochs}

    if args.child:
        res = run_method(args.child, args.data, epochs[args.child], args.quick, args.seed, args.scmamba_kwargs)
        print(json.dumps(to_jsonable(res)))
        return

    import mudata as md

    md.set_options(pull_on_update=False)
    _, kind = other_modality(md.read_h5mu(args.data))
    methods = args.methods or ["scmamba", "totalvi" if kind == "protein" else "multivi"]
    records, rows = [], []
    for method in methods:
        cmd = [sys.executable, "-m", "benchmarks.transfer", "--data", args.data, "--child", method,
               "--seed", str(args.seed), "--epochs", json.dumps(epochs),
               "--scmamba-kwargs", json.dumps(args.scmamba_kwargs)]  # fmt: skip
        if args.quick:
            cmd.append("--quick")
        rec = run_child(cmd, args.timeout, method, threads=args.threads)
        records.append(rec)
        for r in rec.get("rows", []):
            rows.append({**r, **{k: rec[k] for k in ("n_ref", "n_query", "epochs", "train_s", "peak_rss_gb")}})
        print(json.dumps({k: v for k, v in rec.items() if k != "rows"}), flush=True)

    out_dir = Path(args.out) if args.out else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"transfer_{Path(args.data).stem}" + ("_quick" if args.quick else "")
    meta = {**machine_info(), "data": Path(args.data).name, "quick": args.quick, "threads": args.threads,
            "seed": args.seed, "epochs": epochs, "scmamba_kwargs": args.scmamba_kwargs}  # fmt: skip
    (out_dir / f"{stem}.json").write_text(json.dumps(to_jsonable({"meta": meta, "rows": rows, "children": records})))
    import pandas as pd

    pd.DataFrame(rows).to_csv(out_dir / f"{stem}.csv", index=False)
    protocol = next((r["protocol"] for r in records if "protocol" in r), "")
    print(f"\n{Path(args.data).stem}: {protocol}\n")
    cols = ["method", "query", "ref_rep", "classifier", "accuracy", "macro_f1", "n_ref", "n_query", "epochs", "train_s",
            "peak_rss_gb"]  # fmt: skip
    print(markdown_table(rows, cols))


if __name__ == "__main__":
    main()
