"""Design runs on the shipped demo: how well one SCMAMBA configuration keeps cell identity on the cells it trained on.

The demo's own protocol (what ``scmamba demo`` does, and what a user does first): train on all 2,500 shipped
SNARE-seq cells, then Leiden on each embedding (best ARI / NMI against ``cell_type`` over resolutions 0.1-2.0)
and FOSCTTM between the RNA and ATAC embeddings. The objective, pooling, patch sizes and minibatch size of the
defaults were chosen with these runs (table in ``benchmarks/README.md``)::

    python benchmarks/design.py --name default --epochs 50
    python benchmarks/design.py --name contrastive_only --kwargs '{"lambda_rec": 0}' --epochs 50
    python benchmarks/design.py --name mean_pool --kwargs '{"pooling": "mean"}'

Appends one JSON line per run to ``--out`` (default ``benchmarks/results/design_demo.jsonl``) and prints it, with
the RNA-PCA baseline (``scmamba.metrics.rna_pca``) on the same cells.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import RESULTS, limit_threads, machine_info


def main(argv=None):
    """Train one configuration on the demo cells and print / append its clustering scores."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", required=True)
    p.add_argument("--kwargs", default="{}", help="JSON of SCMAMBA init keywords (default: the package defaults)")
    p.add_argument("--train-kwargs", default="{}", help="JSON of SCMAMBA.train keywords")
    p.add_argument("--epochs", type=int, default=None, help="default: SCMAMBA.train's own")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS / "design_demo.jsonl"))
    args = p.parse_args(argv)
    limit_threads(args.threads)

    import scvi

    import scmamba
    from scmamba import SCMAMBA
    from scmamba.metrics import ari_nmi_leiden, foscttm, rna_pca

    scvi.settings.seed = args.seed
    mdata = scmamba.datasets.snareseq_cortex_demo()
    SCMAMBA.setup_mudata(
        mdata, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac", "batch_key": "rna"}
    )
    model = SCMAMBA(mdata, **json.loads(args.kwargs))
    train_kwargs = json.loads(args.train_kwargs)
    if args.epochs is not None:
        train_kwargs["max_epochs"] = args.epochs
    t0 = time.perf_counter()
    model.train(enable_progress_bar=False, **train_kwargs)
    row = {
        "name": args.name,
        "kwargs": json.loads(args.kwargs),
        "train_kwargs": train_kwargs,
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
