"""Held-out learning curves of SCMAMBA configurations: how the defaults were chosen.

Trains one configuration on the 80% reference split (``helpers.common.holdout_split``, seed 0) and, every
``--every`` epochs, embeds the 20% held-out cells and reports FOSCTTM between their RNA and ATAC/protein embeddings
(``foscttm_train``: the same on as many reference cells, for the generalisation gap) and the accuracy / macro-F1 of
a 15-NN classifier fitted on the reference cells' RNA embedding predicting the held-out cells' ``cell_type`` from
their other modality (``acc``, ``f1``) or from their RNA embedding (``acc_rna``).

Usage::

    python -m benchmarks.ablation --name default --data ../shared/data/snareseq_mouse_cortex_chen2019.h5mu
    python -m benchmarks.ablation --name paper_arch --kwargs '{"projection": "shared", "pooling": "last", \
"feature_dropout": 0}'

Appends one JSON line per evaluation to ``--out`` (default ``benchmarks/results/ablation_<data>.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.helpers.common import RESULTS, SHARED_DATA, default_threads, holdout_split, other_modality, peak_rss_gb
from benchmarks.helpers.methods import scmamba


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(SHARED_DATA / "snareseq_mouse_cortex_chen2019.h5mu"))
    parser.add_argument("--name", required=True)
    parser.add_argument("--kwargs", default="{}", help="JSON of SCMAMBA init keywords")
    parser.add_argument("--train-kwargs", default="{}", help="JSON of SCMAMBA.train keywords")
    parser.add_argument("--epochs", type=int, default=21)
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--out", default=None)
    parser.add_argument("--save", default=None, help="save the trained model to this folder")
    args = parser.parse_args(argv)

    import mudata as md
    import scvi
    import torch
    from lightning.pytorch.callbacks import Callback

    from scmamba.metrics import foscttm, label_transfer_scores

    torch.set_num_threads(args.threads)
    md.set_options(pull_on_update=False)
    scvi.settings.seed = args.seed
    mdata = md.read_h5mu(args.data)
    other, kind = other_modality(mdata)
    train_idx, test_idx = holdout_split(mdata.n_obs, args.seed)
    ref, query = mdata[train_idx].copy(), mdata[test_idx].copy()
    y_ref, y_query = ref.obs["cell_type"].astype(str).values, query.obs["cell_type"].astype(str).values
    kwargs = json.loads(args.kwargs)
    model = scmamba(ref, other, kind, **kwargs)
    out = Path(args.out) if args.out else RESULTS / f"ablation_{Path(args.data).stem}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    # a fixed sample of reference cells, as many as held out, for the training-cell FOSCTTM (the generalisation gap)
    seen = np.random.default_rng(args.seed).choice(ref.n_obs, size=min(query.n_obs, ref.n_obs), replace=False)
    t0 = time.perf_counter()
    eval_s = [0.0]  # time spent in the evaluations, so that train_s is the training alone

    class Evaluate(Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            epoch = trainer.current_epoch + 1
            if epoch % args.every and epoch != args.epochs:
                return
            training = model.module.training
            t_eval = time.perf_counter()
            z_rna = model.get_latent_representation(query, modality="rna")
            z_other = model.get_latent_representation(query, modality=kind)
            z_ref = model.get_latent_representation(ref, modality="rna")
            z_seen = model.get_latent_representation(ref, modality=kind, indices=seen)
            model.module.train(training)
            cross = label_transfer_scores(z_ref, y_ref, z_other, y_query, k=15)
            same = label_transfer_scores(z_ref, y_ref, z_rna, y_query, k=15)
            row = {
                "name": args.name, "data": Path(args.data).stem, "kwargs": kwargs,
                "train_kwargs": json.loads(args.train_kwargs), "epoch": epoch,
                "foscttm": round(float(foscttm(z_rna, z_other)), 4),
                "foscttm_train": round(float(foscttm(z_ref[seen], z_seen)), 4),
                "acc": round(float(cross["accuracy"]), 4),
                "f1": round(float(cross["macro_f1"]), 4), "acc_rna": round(float(same["accuracy"]), 4),
                "wall_s": round(time.perf_counter() - t0, 1), "threads": args.threads,
                "train_s": round(t_eval - t0 - eval_s[0], 1), "peak_rss_gb": round(peak_rss_gb(), 2),
            }  # fmt: skip
            print(json.dumps(row), flush=True)
            with out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            eval_s[0] += time.perf_counter() - t_eval

    model.train(max_epochs=args.epochs, enable_progress_bar=False, callbacks=[Evaluate()], early_stopping=False,
                **json.loads(args.train_kwargs))  # fmt: skip
    if args.save:
        model.save(args.save, overwrite=True, save_anndata=False)


if __name__ == "__main__":
    main()
