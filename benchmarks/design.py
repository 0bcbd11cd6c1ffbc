"""Design runs on the shipped demo: how well one SCMAMBA configuration keeps cell identity on the cells it trained on.

The demo's own protocol (what ``scmamba demo`` does, and what a user does first): train on all 2,500 shipped
SNARE-seq cells, then Leiden on each embedding (best ARI / NMI against ``cell_type`` over resolutions 0.1-2.0)
and FOSCTTM between the RNA and ATAC embeddings. The objective, pooling, patch sizes and minibatch size of the
defaults were chosen with these runs (table in ``benchmarks/README.md``)::

    python -m benchmarks.design --name default --epochs 50
    python -m benchmarks.design --name contrastive_only --kwargs '{"lambda_rec": 0}' --epochs 50
    python -m benchmarks.design --name mean_pool --kwargs '{"pooling": "mean"}'
    python -m benchmarks.design --name swa075 --swa-start 0.75

Appends one JSON line per run to ``--out`` (default ``benchmarks/results/design_demo.jsonl``) and prints it, with
the RNA-PCA baseline (``scmamba.metrics.rna_pca``) on the same cells.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.helpers.common import RESULTS, limit_threads, machine_info
from benchmarks.helpers.methods import scmamba as scmamba_model


def weight_averaging(ema: float | None, swa_start: float | None) -> list:
    """Lightning weight-averaging callbacks for a design run (tried on the demo; not used by the package).

    ``ema``: exponential moving average of the weights with this decay per step. ``swa_start``: equal-weight average
    of the weights after every step from this fraction of all steps on. Only parameters are averaged
    (``use_buffers=False``): the integer buffers (feature orders, BatchNorm step counts) cannot be averaged, and the
    BatchNorm statistics are kept in step with the trained model's.
    """
    from lightning.pytorch.callbacks import EMAWeightAveraging, WeightAveraging

    if ema is not None:
        return [EMAWeightAveraging(decay=ema, use_buffers=False)]
    if swa_start is None:
        return []

    class LateAveraging(WeightAveraging):
        def setup(self, trainer, pl_module, stage):
            self.first_step = swa_start * trainer.estimated_stepping_batches
            super().setup(trainer, pl_module, stage)

        def should_update(self, step_idx=None, epoch_idx=None):
            return step_idx is not None and step_idx >= self.first_step

    return [LateAveraging(use_buffers=False)]


def main(argv=None):
    """Train one configuration on the demo cells and print / append its clustering scores."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", required=True)
    p.add_argument("--kwargs", default="{}", help="JSON of SCMAMBA init keywords (default: the package defaults)")
    p.add_argument("--train-kwargs", default="{}", help="JSON of SCMAMBA.train keywords")
    p.add_argument("--epochs", type=int, default=None, help="default: SCMAMBA.train's own")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ema", type=float, default=None, help="average the weights: EMA with this decay per step")
    p.add_argument("--swa-start", type=float, default=None, help="average the weights from this fraction of steps on")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS / "design_demo.jsonl"))
    args = p.parse_args(argv)
    limit_threads(args.threads)

    import scvi

    import scmamba
    from scmamba.metrics import ari_nmi_leiden, foscttm, rna_pca

    scvi.settings.seed = args.seed
    mdata = scmamba.datasets.snareseq_cortex_demo()
    model = scmamba_model(mdata, "atac", "atac", batch_from_rna=True, **json.loads(args.kwargs))
    train_kwargs = json.loads(args.train_kwargs)
    if args.epochs is not None:
        train_kwargs["max_epochs"] = args.epochs
    callbacks = weight_averaging(args.ema, args.swa_start)
    t0 = time.perf_counter()
    model.train(enable_progress_bar=False, callbacks=callbacks, **train_kwargs)
    row = {
        "name": args.name,
        "kwargs": json.loads(args.kwargs),
        "train_kwargs": train_kwargs,
        "weight_averaging": {"ema": args.ema, "swa_start": args.swa_start} if callbacks else None,
        "seed": args.seed,
        "threads": args.threads,
        "train_s": round(time.perf_counter() - t0, 1),
    }
    labels = mdata.obs["cell_type"].astype(str).values
    z = {m: model.get_latent_representation(modality=m) for m in ("joint", "rna", "atac")}
    for name, emb in {**z, "rna_pca": rna_pca(mdata.mod["rna"], seed=args.seed)}.items():
        scores = ari_nmi_leiden(emb, labels)
        row[f"ari_{name}"], row[f"nmi_{name}"] = round(scores["ari"], 3), round(scores["nmi"], 3)
    row["foscttm"] = round(float(foscttm(z["rna"], z["atac"])), 4)
    row["machine"] = machine_info()["machine"]
    print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as fh:
        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
