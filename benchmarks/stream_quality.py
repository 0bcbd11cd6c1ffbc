"""Does chunked shuffling cost quality? Held-out SNARE-seq metrics, streaming vs full shuffling, a few seeds.

The held-out protocol of ``integration.py``: train on a random 80% of the cells (split seed 0), embed the
held-out 20%, report FOSCTTM
between their RNA and ATAC embeddings and the best Leiden ARI of their joint embedding against the cell types.
Each training seed trains twice on the same cells: ``data_source="memory"`` (scvi-tools' loader, every minibatch a
uniform random draw) and ``data_source="stream"`` (contiguous chunks of ``--chunk-size`` cells in a random order,
shuffled in buffers of ``--buffer-cells``). The SNARE-seq file is sorted by sample, so a chunk holds one sample's
cells, the hard case for chunked shuffling.

Usage::

    python -m benchmarks.stream_quality --seeds 0 1 2 --epochs 10          # package small configuration

Writes ``stream_quality.json`` to ``--out`` (default ``benchmarks/results``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.helpers.common import RESULTS, SHARED_DATA, holdout_split, machine_info, markdown_table, to_jsonable


def main(argv=None):
    """Train each seed in memory and streamed, on the same split; print and write held-out metrics."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(SHARED_DATA / "snareseq_mouse_cortex_chen2019.h5mu"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--chunk-size", type=int, default=None, help="default: the package's (CHUNK_SIZE)")
    p.add_argument("--buffer-cells", type=int, default=None, help="default: the package's (BUFFER_CELLS)")
    p.add_argument("--config", default="small", choices=("small", "default"))
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)

    import mudata as md
    import scvi
    import torch

    from scmamba import SCMAMBA
    from scmamba.dataloaders._stream import BUFFER_CELLS, CHUNK_SIZE
    from scmamba.metrics import foscttm
    from scmamba.metrics._bio import ari_nmi_leiden

    torch.set_num_threads(1)
    md.set_options(pull_on_update=False)
    mdata = md.read_h5mu(args.data)
    train_idx, test_idx = holdout_split(mdata.n_obs, 0)
    config = SCMAMBA.small_config() if args.config == "small" else {}
    stream_kw = {"chunk_size": args.chunk_size or CHUNK_SIZE, "buffer_cells": args.buffer_cells or BUFFER_CELLS}
    rows = []
    for seed in args.seeds:
        for source in ("memory", "stream"):
            scvi.settings.seed = seed
            ref, query = mdata[train_idx].copy(), mdata[test_idx].copy()
            SCMAMBA.setup_mudata(ref, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac"})
            model = SCMAMBA(ref, **config)
            t0 = time.perf_counter()
            model.train(
                max_epochs=args.epochs, data_source=source, enable_progress_bar=False,
                datasplitter_kwargs=stream_kw if source == "stream" else None,
            )  # fmt: skip
            train_s = time.perf_counter() - t0
            z = {m: model.get_latent_representation(query, modality=m) for m in ("rna", "atac", "joint")}
            labels = query.obs["cell_type"].astype(str).to_numpy()
            bio = ari_nmi_leiden(z["joint"], labels, seed=seed)
            row = {
                "seed": seed, "data_source": source, "foscttm_heldout": float(foscttm(z["rna"], z["atac"])),
                "leiden_ari_heldout": float(bio["ari"]), "train_s": train_s,
            }  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
            out = Path(args.out) / "stream_quality.json"
            meta = {**machine_info(), "args": vars(args), "stream": stream_kw, "n_train": len(train_idx)}
            out.write_text(json.dumps(to_jsonable({"meta": meta, "rows": rows}), indent=1))
    summary = []
    for source in ("memory", "stream"):
        rs = [r for r in rows if r["data_source"] == source]
        f, a = np.array([r["foscttm_heldout"] for r in rs]), np.array([r["leiden_ari_heldout"] for r in rs])
        summary.append({"data_source": source, "seeds": len(rs), "foscttm": f"{f.mean():.4f} ± {f.std():.4f}",
                        "leiden_ari": f"{a.mean():.3f} ± {a.std():.3f}"})  # fmt: skip
    print(markdown_table(rows, ["seed", "data_source", "foscttm_heldout", "leiden_ari_heldout", "train_s"]))
    print(markdown_table(summary, ["data_source", "seeds", "foscttm", "leiden_ari"]))


if __name__ == "__main__":
    main()
