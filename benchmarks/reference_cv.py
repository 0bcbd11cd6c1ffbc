"""Choose SCMAMBA's training length on the reference only: leave-one-reference-batch-out label transfer.

``transfer.py`` maps query donors onto a reference. Choosing a setting (here the number of epochs) by the query's
scores would be a selection made on the query, so this script makes the choice with the reference alone: each
reference batch (Abseq: donor BM1, BM2, BM3; SNARE-seq: library) in turn is the query, SCMAMBA is trained on the
other reference batches with each candidate ``max_epochs`` and the held-out batch is mapped with
``load_query_data``; a 15-NN classifier on the joint embedding predicts ``cell_type``.

Usage::

    python -m benchmarks.reference_cv --data ../shared/data/abseq_bonemarrow_triana2021.h5mu --epochs 20 50
    python -m benchmarks.reference_cv --data ... --quick --epochs 1 2 --out /tmp/cv    # smoke run

Prints a table (one row per held-out batch and epoch count, then the means) and writes
``reference_cv_<data>.json`` / ``.csv`` to ``--out`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.helpers.common import RESULTS, default_threads, machine_info, other_modality, split_reference_query
from benchmarks.helpers.methods import scmamba


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a few hundred cells, the small configuration")
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import mudata as md
    import pandas as pd
    import scvi
    import torch

    from scmamba import SCMAMBA
    from scmamba.metrics import label_transfer_scores

    torch.set_num_threads(args.threads)
    md.set_options(pull_on_update=False)
    mdata = md.read_h5mu(args.data)
    other, kind = other_modality(mdata)
    ref, _, protocol = split_reference_query(mdata, quick=args.quick, seed=args.seed)
    batches = sorted(ref.obs["batch"].astype(str).unique())
    rows = []
    for epochs in args.epochs:
        for held_out in batches:
            scvi.settings.seed = args.seed
            is_query = (ref.obs["batch"].astype(str) == held_out).values
            train, query = ref[~is_query].copy(), ref[is_query].copy()
            model = scmamba(train, other, kind, **(SCMAMBA.small_config() if args.quick else {}))
            t0 = time.perf_counter()
            model.train(max_epochs=epochs, enable_progress_bar=False)
            train_s = time.perf_counter() - t0
            qmodel = SCMAMBA.load_query_data(query, model)
            scores = label_transfer_scores(
                model.get_latent_representation(),
                train.obs["cell_type"].astype(str).values,
                qmodel.get_latent_representation(),
                query.obs["cell_type"].astype(str).values,
                k=15,
            )
            row = {
                "epochs": epochs, "held_out_batch": held_out, "n_train": train.n_obs, "n_query": query.n_obs,
                "accuracy": round(float(scores["accuracy"]), 4), "macro_f1": round(float(scores["macro_f1"]), 4),
                "train_s": round(train_s, 1),
            }  # fmt: skip
            print(json.dumps(row), flush=True)
            rows.append(row)
    table = pd.DataFrame(rows)
    means = table.groupby("epochs")[["accuracy", "macro_f1"]].mean().round(4).reset_index()
    out = Path(args.out) if args.out else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    stem = f"reference_cv_{Path(args.data).stem}" + ("_quick" if args.quick else "")
    meta = {**machine_info(), "protocol": f"leave one reference batch out ({protocol})", "threads": args.threads,
            "seed": args.seed, "quick": args.quick}  # fmt: skip
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows, "means": means.to_dict("records")}))
    table.to_csv(out / f"{stem}.csv", index=False)
    print(table.to_markdown(index=False))
    print()
    print(means.to_markdown(index=False))


if __name__ == "__main__":
    main()
