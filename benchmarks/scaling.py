"""Scaling benchmark: training speed and peak memory of SCMAMBA and MULTIVI on all features, 1k to 100k+ cells.

Synthetic data of realistic size and sparsity are made by resampling the real SNARE-seq counts (never dense
random matrices). For every synthetic cell a real cell is drawn at random; its RNA library size (total UMIs) and
its number of ATAC fragments (total peak counts) are kept, and that many feature indices are drawn from the
per-feature count profile of the real cell's cell type, tiled (or subsampled) to the target number of genes /
peaks. Each tiled copy of a real feature gets a random log-normal weight, so copies are not identical. The
result is a CSR count matrix with the real cells' depth distribution and cell-type structure over e.g. 36,601
genes and 150,000 peaks. Genes get genome-style ``chrom``/``start``/``end`` columns and peaks ``chr1:100-600``
names, ordered along a human-like genome, so SCMAMBA's genomic ordering applies as with real data.

Each method trains on each data size in its own subprocess (one model, ``--epochs`` passes over all cells, no
validation split; ``--max-steps N`` cuts every epoch to N minibatches, for sizes whose full epochs would take
hours) and reports: time per epoch, training cells/s (cells x epochs / training time), peak RSS of the process
(``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after training; data loading included), embedding cells/s
(``get_latent_representation`` of ``--embed-cells`` cells after training, each method at its default minibatch size:
the first call, and the median of ``--embed-repeats`` further calls, which is the rate of a long embedding run
without the first call's warm-up), GPU peak memory with ``--device cuda``, and
the input's nnz and sparse size. Peak RSS should grow with the sparse input size only, not with cells x features
(the ``dense_gb`` column shows what a dense matrix would take).

Usage::

    python -m benchmarks.scaling                                   # 1k, 10k, 100k cells; 36,601 genes, 150k peaks
    python -m benchmarks.scaling --device cuda --cells 1000 10000 100000 200000
    python -m benchmarks.scaling --quick --out /tmp/bench          # 1k and 2k cells, 2,000 genes, 5,000 peaks

Writes ``scaling.json`` / ``.csv`` / ``.png`` (``scaling_quick.*`` with ``--quick``) to ``--out`` (default
``benchmarks/results``) and prints a Markdown table last.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.helpers.common import (
    RESULTS,
    THREADS_HELP,
    default_threads,
    epoch_timer,
    machine_info,
    markdown_table,
    peak_rss_gb,
    quick_scmamba_config,
    run_child,
    set_threads,
    to_jsonable,
)
from benchmarks.helpers.methods import multivi, scmamba
from benchmarks.helpers.synthetic import DEFAULT_SOURCE, make_mudata, source_profiles, sparse_gb

METHODS = ("scmamba", "multivi")
#: Also accepted by ``--methods``: SCMAMBA with its PyTorch SSD path forced (``use_fused_kernels=False``), to
#: compare with mamba-ssm's fused kernels on CUDA (``gpu_check.py``).
EXTRA_METHODS = ("scmamba_torch",)
#: ``check_val_every_n_epoch`` that never validates (``train_size=1.0`` leaves no validation cells).
NO_VALIDATION = 10**9


# --------------------------------------------------------------------------------------------------- child
def child(args) -> dict:
    """Train one method on one synthetic file for ``--epochs`` (in this process); return the measurements."""
    import mudata as md
    import scvi
    import torch

    threads = set_threads()
    scvi.settings.seed = args.seed
    md.set_options(pull_on_update=False)
    t0 = time.perf_counter()
    mdata = md.read_h5mu(args.child_file)
    load_s = time.perf_counter() - t0
    rss_loaded = peak_rss_gb()
    accelerator = "gpu" if args.device == "cuda" else "cpu"
    timer = epoch_timer()
    t0 = time.perf_counter()
    if args.child in ("scmamba", "scmamba_torch"):
        kwargs = json.loads(args.scmamba_kwargs)
        if args.child == "scmamba_torch":
            kwargs["use_fused_kernels"] = False
        model = scmamba(mdata, "atac", "atac", **kwargs)
        train_kw = {}
    else:
        model = multivi(mdata, "atac")
        train_kw = {"early_stopping": False}
    setup_s = time.perf_counter() - t0
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model.train(
        max_epochs=args.epochs,
        train_size=1.0,
        accelerator=accelerator,
        devices=1,
        enable_progress_bar=False,
        callbacks=[timer],
        check_val_every_n_epoch=NO_VALIDATION,
        limit_train_batches=args.max_steps or 1.0,
        **train_kw,
    )
    train_s = time.perf_counter() - t0
    rss_train = peak_rss_gb()
    n_embed = min(mdata.n_obs, args.embed_cells)
    embed_s = []
    for _ in range(1 + args.embed_repeats):
        t0 = time.perf_counter()
        model.get_latent_representation(indices=np.arange(n_embed))
        embed_s.append(time.perf_counter() - t0)
    batch_size = 128  # both models' default minibatch size
    n = mdata.n_obs if not args.max_steps else min(mdata.n_obs, args.max_steps * batch_size)  # cells per epoch
    epoch_s = float(np.median(timer.times)) if timer.times else train_s / args.epochs
    return {
        "method": args.child,
        "n_cells": mdata.n_obs,
        "cells_per_epoch": n,
        "epochs": len(timer.times),
        "load_s": load_s,
        "setup_s": setup_s,
        "train_s": train_s,
        "time_per_epoch_s": epoch_s,
        "train_cells_per_s": n * len(timer.times) / sum(timer.times) if timer.times else n * args.epochs / train_s,
        "peak_rss_gb": rss_train,
        "rss_after_load_gb": rss_loaded,
        "embed_cells": n_embed,
        "embed_s": embed_s,
        "embed_first_cells_per_s": n_embed / embed_s[0],
        "embed_cells_per_s": n_embed / float(np.median(embed_s[1:])) if args.embed_repeats else n_embed / embed_s[0],
        "gpu_peak_gb": torch.cuda.max_memory_allocated() / 1024**3 if args.device == "cuda" else None,
        "n_params": int(sum(p.numel() for p in model.module.parameters())),
        "threads": threads,
        "device": args.device,
    }


# --------------------------------------------------------------------------------------------------- parent
def plot(rows: list[dict], path: Path, title: str) -> None:
    """Log-log curves of training cells/s and peak RSS (with the sparse input size) against the number of cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = sorted((r for r in rows if r["method"] == method and r.get("status") == "ok"), key=lambda r: r["n_cells"])
        if not rs:
            continue
        cells = [r["n_cells"] for r in rs]
        axes[0].plot(cells, [r["train_cells_per_s"] for r in rs], "o-", label=method)
        axes[1].plot(cells, [r["peak_rss_gb"] for r in rs], "o-", label=f"{method} peak RSS")
    sizes = sorted({(r["n_cells"], r["input_sparse_gb"]) for r in rows})
    axes[1].plot([s[0] for s in sizes], [s[1] for s in sizes], "k--", label="sparse input (CSR)")
    axes[0].set(xscale="log", yscale="log", xlabel="cells", ylabel="training cells / s", title="throughput")
    axes[1].set(xscale="log", yscale="log", xlabel="cells", ylabel="GiB", title="peak RSS")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


COLUMNS = [
    "method",
    "n_cells",
    "n_genes",
    "n_peaks",
    "input_nnz",
    "input_sparse_gb",
    "dense_gb",
    "epochs",
    "time_per_epoch_s",
    "train_cells_per_s",
    "embed_first_cells_per_s",
    "embed_cells_per_s",
    "peak_rss_gb",
    "gpu_peak_gb",
    "status",
]
HEADERS = {
    "n_cells": "cells",
    "n_genes": "genes",
    "n_peaks": "peaks",
    "input_nnz": "nnz",
    "input_sparse_gb": "sparse GB",
    "dense_gb": "dense GB",
    "time_per_epoch_s": "s/epoch",
    "train_cells_per_s": "train cells/s",
    "embed_first_cells_per_s": "embed cells/s (first call)",
    "embed_cells_per_s": "embed cells/s",
    "peak_rss_gb": "peak RSS GB (training)",
    "gpu_peak_gb": "GPU peak GB",
}


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1k and 2k cells, 2,000 genes, 5,000 peaks, small SCMAMBA")
    p.add_argument("--cells", type=int, nargs="+", default=None, help="default 1000 10000 100000")
    p.add_argument("--genes", type=int, default=None, help="default 36601 (2000 with --quick)")
    p.add_argument("--peaks", type=int, default=None, help="default 150000 (5000 with --quick)")
    p.add_argument(
        "--depth-scale",
        type=float,
        default=1.0,
        help="multiply the real cells' RNA library sizes and ATAC fragment counts (default 1: as measured)",
    )
    p.add_argument("--rna-depth-scale", type=float, default=None, help="RNA only (overrides --depth-scale)")
    p.add_argument("--atac-depth-scale", type=float, default=None, help="ATAC only (overrides --depth-scale)")
    p.add_argument("--embed-cells", type=int, default=2000, help="cells embedded for the embedding throughput")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS + EXTRA_METHODS)
    p.add_argument(
        "--embed-repeats", type=int, default=3, help="embedding calls timed after the first (median reported)"
    )
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="train at most this many minibatches per epoch (Lightning limit_train_batches): speed and peak "
        "memory of large sizes without full epochs",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--scmamba-kwargs", default=None, help="JSON of SCMAMBA init keywords (default config if omitted)")
    p.add_argument("--source", default=str(DEFAULT_SOURCE), help="real paired RNA+ATAC .h5mu to resample")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=default_threads(), help=THREADS_HELP)
    p.add_argument("--timeout", type=float, default=3600, help="seconds per method and size")
    p.add_argument("--workdir", default=None, help="where the synthetic .h5mu files go (default a temp folder)")
    p.add_argument("--out", default=None, help="output folder (default benchmarks/results)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-file", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.cells = args.cells or ([1000, 2000] if args.quick else [1000, 10000, 100000])
    args.genes = args.genes or (2000 if args.quick else 36601)
    args.peaks = args.peaks or (5000 if args.quick else 150000)
    if args.scmamba_kwargs is None:
        args.scmamba_kwargs = json.dumps(quick_scmamba_config() if args.quick else {})
    return args


def main(argv=None):
    """Generate each size once, train every method on it in its own subprocess, write and print the results."""
    args = parse_args(argv)
    if args.child:
        print(json.dumps(to_jsonable(child(args))))
        return
    t_start = time.perf_counter()
    out_dir = Path(args.out) if args.out else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    own_workdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="scaling_") if own_workdir else args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    prof = source_profiles(Path(args.source))
    rows = []
    try:
        for n_cells in args.cells:
            t0 = time.perf_counter()
            scale = {"rna": args.rna_depth_scale or args.depth_scale, "atac": args.atac_depth_scale or args.depth_scale}
            mdata = make_mudata(n_cells, args.genes, args.peaks, prof, args.seed, scale)
            gen_s = time.perf_counter() - t0
            path = workdir / f"synthetic_{n_cells}.h5mu"
            mdata.write(path)
            X_rna, X_atac = mdata.mod["rna"].X, mdata.mod["atac"].X
            data = {
                "n_cells": n_cells,
                "n_genes": args.genes,
                "n_peaks": args.peaks,
                "rna_nnz": int(X_rna.nnz),
                "atac_nnz": int(X_atac.nnz),
                "input_nnz": int(X_rna.nnz + X_atac.nnz),
                "rna_density": X_rna.nnz / (n_cells * args.genes),
                "atac_density": X_atac.nnz / (n_cells * args.peaks),
                "input_sparse_gb": sparse_gb(X_rna) + sparse_gb(X_atac),
                "dense_gb": n_cells * (args.genes + args.peaks) * 4 / 1024**3,
                "file_gb": path.stat().st_size / 1024**3,
                "generate_s": gen_s,
            }
            del mdata, X_rna, X_atac
            print(
                f"{n_cells} cells: nnz {data['input_nnz']:,} ({data['input_sparse_gb']:.3f} GiB sparse, "
                f"{data['dense_gb']:.1f} GiB dense), generated in {gen_s:.1f} s",
                flush=True,
            )
            for method in args.methods:
                cmd = [
                    sys.executable,
                    "-m",
                    "benchmarks.scaling",
                    "--child",
                    method,
                    "--child-file",
                    str(path),
                    "--epochs",
                    str(args.epochs),
                    "--device",
                    args.device,
                    "--seed",
                    str(args.seed),
                    "--scmamba-kwargs",
                    args.scmamba_kwargs,
                    "--embed-cells",
                    str(args.embed_cells),
                    "--embed-repeats",
                    str(args.embed_repeats),
                ]
                if args.max_steps:
                    cmd += ["--max-steps", str(args.max_steps)]
                rec = run_child(cmd, args.timeout, f"{method} {n_cells}", threads=args.threads)
                rec = {**data, **rec, "method": method, "n_cells": n_cells}
                rows.append(rec)
                if rec["status"] == "ok":
                    print(
                        f"[{method} {n_cells}] {rec['time_per_epoch_s']:.1f} s/epoch, "
                        f"{rec['train_cells_per_s']:.0f} cells/s, peak RSS {rec['peak_rss_gb']:.2f} GiB",
                        flush=True,
                    )
            path.unlink(missing_ok=True)
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    stem = "scaling_quick" if args.quick else "scaling"
    meta = {
        **machine_info(),
        "threads": args.threads,
        "device": args.device,
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "source": str(args.source),
        "genes": args.genes,
        "peaks": args.peaks,
        "depth_scale": {
            "rna": args.rna_depth_scale or args.depth_scale,
            "atac": args.atac_depth_scale or args.depth_scale,
        },
        "source_mean_rna_depth": float(prof["rna_depth"].mean()),
        "source_mean_atac_depth": float(prof["atac_depth"].mean()),
        "cells": args.cells,
        "seed": args.seed,
        "scmamba_kwargs": json.loads(args.scmamba_kwargs),
        "total_wall_s": round(time.perf_counter() - t_start, 1),
    }
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(to_jsonable({"meta": meta, "rows": rows}), indent=1))
    import pandas as pd

    pd.DataFrame(rows).to_csv(json_path.with_suffix(".csv"), index=False)
    title = f"{args.genes:,} genes + {args.peaks:,} peaks, {args.device}, {args.epochs} epoch(s)"
    plot(rows, json_path.with_suffix(".png"), title)
    print(f"wrote {json_path}, .csv, .png in {time.perf_counter() - t_start:.0f} s", flush=True)
    digits = {
        "input_sparse_gb": 3,
        "dense_gb": 1,
        "time_per_epoch_s": 1,
        "train_cells_per_s": 0,
        "peak_rss_gb": 2,
        "gpu_peak_gb": 2,
    }
    print(markdown_table(rows, COLUMNS, HEADERS, digits))


if __name__ == "__main__":
    main()
