"""Streaming scaling benchmark: loader, training and embedding from full-width multiome files on disk, up to > RAM.

Writes synthetic 10x Multiome-width files (36,601 genes + 150,000 peaks, ~2,000 + ~6,000 non-zeros per cell;
``scaling.py``'s resampling of the real SNARE-seq counts, at ``gpu_check.py``'s depth scales) in blocks, never
whole in memory: one block of ``--block`` synthetic cells is drawn, and every file is that block repeated, each
copy in a new random row order under new cell names, so that a file larger than RAM costs minutes to write, not
hours (the loader reads and the model trains on every byte of it either way). Then, per file, each step in its own
process (so that peak RSS is its own):

* ``seq``: the disk's sequential read rate on that file (64 MiB reads, after dropping the file from the page cache
  with ``posix_fadvise(DONTNEED)``, which needs no root): the physical limit of any loader;
* ``loader``: cells/s (and MB/s of counts) of the training minibatches of ``SCMAMBA.train(data_source="stream")``
  (:class:`~scmamba.dataloaders.StreamingDataModule`, the path ``train()`` uses) and of the embedding loader of
  ``get_latent_representation``, from a cold page cache, no model;
* ``train``: ``SCMAMBA.train`` from the backed file, ``--train-steps`` minibatches (0: every cell, one epoch), then
  ``get_latent_representation(out=<file>.h5ad)`` of ``--embed-cells`` cells (0: every cell) written to disk; training
  and embedding cells/s, wall time per cell, peak RSS.

Usage::

    python -m benchmarks.stream_scaling --cells 10000 100000 420000 --workdir /work/big/stream
    python -m benchmarks.stream_scaling --cells 420000 --steps train --train-steps 0 --embed-cells 0  # every cell
    python -m benchmarks.stream_scaling --quick --workdir /tmp/s    # 2,000 + 4,000 cells, 2,000 genes, 5,000 peaks

Writes ``stream_scaling.json`` (``--tag`` appended) to ``--out`` (default ``benchmarks/results``) and prints a
Markdown table. The files stay in ``--workdir`` for reruns (delete them after).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.helpers.common import (
    RESULTS,
    SHARED_DATA,
    machine_info,
    markdown_table,
    peak_rss_gb,
    quick_scmamba_config,
    to_jsonable,
)

DEPTH = {"rna": 20.0, "atac": 62.0}  # as gpu_check.py: ~2,000 RNA and ~6,000 ATAC non-zeros per cell at full width


def write_file(path: Path, n_cells: int, args) -> dict:
    """The synthetic file of ``n_cells`` cells: the ``--block``-cell block repeated, rows permuted per copy."""
    import pandas as pd
    from scaling import make_mudata, source_profiles

    from scmamba.dataloaders import write_h5mu_blocks

    t0 = time.perf_counter()
    base = make_mudata(min(args.block, n_cells), args.genes, args.peaks, source_profiles(Path(args.source)), 0, DEPTH)
    rng = np.random.default_rng(1)
    reps = -(-n_cells // base.n_obs)
    perms = [np.arange(base.n_obs)] + [rng.permutation(base.n_obs) for _ in range(reps - 1)]
    take = np.concatenate(perms)[:n_cells]
    obs = base.obs.iloc[take].copy()
    obs.index = pd.Index([f"cell{i}" for i in range(n_cells)])

    def blocks(X):
        for r, perm in enumerate(perms):
            yield X[perm[: n_cells - r * base.n_obs]]

    mods = {m: (obs.copy(), base.mod[m].var.copy(), blocks(base.mod[m].X.tocsr())) for m in ("rna", "atac")}
    write_h5mu_blocks(path, obs, mods)
    nnz = {m: int(base.mod[m].X.nnz) for m in mods}
    return {
        "write_s": time.perf_counter() - t0,
        "nnz_per_cell": {m: v / base.n_obs for m, v in nnz.items()},
        "file_gb": path.stat().st_size / 1024**3,
    }


def drop_cache(path: Path) -> None:
    """Evict ``path`` from the page cache (``posix_fadvise(DONTNEED)``: the kernel drops its clean pages)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def seq_read(path: Path, max_gb: float) -> dict:
    """Sequential read rate of the file from a cold cache (64 MiB reads, at most ``max_gb`` GiB)."""
    drop_cache(path)
    n, block = 0, 64 * 1024**2
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(block)
        while n < max_gb * 1024**3:
            got = f.readinto(buf)
            if not got:
                break
            n += got
    s = time.perf_counter() - t0
    return {"seq_read_gb": n / 1024**3, "seq_read_mb_s": n / 1e6 / s}


def _setup(path: Path, args):
    import mudata as md

    from scmamba import SCMAMBA

    if args.skip_count_check:  # set-up's check of every count value: a full pass over the file, not the loader
        import scmamba.model._validation as validation

        validation.check_counts = lambda *a, **k: None
    md.set_options(pull_on_update=False)
    mdata = md.read_h5mu(path, backed="r")
    SCMAMBA.setup_mudata(mdata, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac"})
    return mdata


def loader_rates(path: Path, args) -> dict:
    """Cells/s of the training stream (the data module ``train()`` builds) and of the embedding stream, cold."""
    import torch

    from scmamba import SCMAMBA
    from scmamba.dataloaders import StreamingDataModule, stream_loader

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    mdata = _setup(path, args)
    setup_s = time.perf_counter() - t0
    manager = SCMAMBA._get_most_recent_anndata_manager(mdata, required=True)
    # the disk's sequential rate on this file, just before the loader reads it (shared disks vary over minutes)
    out = {"setup_s": setup_s, **{f"loader_{k}": v for k, v in seq_read(path, args.seq_gb).items()}}
    n_max = min(mdata.n_obs, args.loader_cells)
    for what in ("train", "embed"):
        drop_cache(path)
        if what == "train":
            loader = StreamingDataModule(manager, batch_size=128).train_dataloader()
        else:  # what get_latent_representation's embedding_loader returns for a backed MuData
            loader = stream_loader(manager, batch_size=256, shuffle=False)
        n, nbytes = 0, 0
        t0 = time.perf_counter()
        for batch in loader:
            for key in ("X", "atac"):
                v = batch[key]
                nbytes += v.values().nbytes + v.col_indices().nbytes
            n += len(batch["batch"])
            if n >= n_max:
                break
        s = time.perf_counter() - t0
        out[f"loader_{what}_cells_s"] = n / s
        out[f"loader_{what}_mb_s"] = nbytes / 1e6 / s
        out[f"loader_{what}_cells"] = n
    out["loader_peak_rss_gb"] = peak_rss_gb()
    return out


def train_rates(path: Path, args) -> dict:
    """Train from the backed file through the stream, then embed to an ``.h5ad`` on disk."""
    import anndata as ad
    import scvi
    import torch

    from scmamba import SCMAMBA

    torch.set_num_threads(1)
    scvi.settings.seed = 0
    t0 = time.perf_counter()
    mdata = _setup(path, args)
    model = SCMAMBA(mdata, **json.loads(args.scmamba_kwargs))
    setup_s = time.perf_counter() - t0
    steps = args.train_steps or None
    batch_size = 128
    t0 = time.perf_counter()
    model.train(
        max_epochs=1, batch_size=batch_size, data_source="stream", enable_progress_bar=False,
        limit_train_batches=steps or 1.0,
    )  # fmt: skip
    train_s = time.perf_counter() - t0
    n_train = steps * batch_size if steps else mdata.n_obs // batch_size * batch_size
    rss_train = peak_rss_gb()
    n_embed = args.embed_cells or mdata.n_obs
    out_file = path.with_name(path.stem + "_latent.h5ad")
    t0 = time.perf_counter()
    model.get_latent_representation(indices=np.arange(min(n_embed, mdata.n_obs)), out=out_file)
    embed_s = time.perf_counter() - t0
    check = ad.read_h5ad(out_file)
    n_embed = check.n_obs
    assert check.obsm["X_scmamba"].shape[0] == n_embed and np.isfinite(check.obsm["X_scmamba"]).all()
    return {
        "setup_s": setup_s, "train_cells": n_train, "train_s": train_s, "train_cells_s": n_train / train_s,
        "embed_cells": n_embed, "embed_s": embed_s, "embed_cells_s": n_embed / embed_s,
        "s_per_cell": (train_s + embed_s) / (n_train + n_embed), "peak_rss_train_gb": rss_train,
        "peak_rss_gb": peak_rss_gb(), "latent_file": str(out_file),
    }  # fmt: skip


STEPS = {"seq": lambda path, args: seq_read(path, args.seq_gb), "loader": loader_rates, "train": train_rates}


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", type=int, nargs="+", default=[10000, 100000, 420000])
    p.add_argument("--steps", nargs="+", default=["seq", "loader", "train"], choices=list(STEPS))
    p.add_argument("--quick", action="store_true", help="2,000 and 4,000 cells, 2,000 genes, 5,000 peaks")
    p.add_argument("--genes", type=int, default=36601)
    p.add_argument("--peaks", type=int, default=150000)
    p.add_argument("--block", type=int, default=10000, help="synthetic cells drawn; files repeat them")
    p.add_argument("--loader-cells", type=int, default=200000, help="cells read per loader measurement (at most)")
    p.add_argument("--seq-gb", type=float, default=1e9, help="GiB read for the sequential rate (default the file)")
    p.add_argument("--train-steps", type=int, default=40, help="training minibatches (0: one epoch of every cell)")
    p.add_argument("--embed-cells", type=int, default=5000, help="cells embedded to disk (0: every cell)")
    p.add_argument("--scmamba-kwargs", default="{}", help="JSON of SCMAMBA init keywords (default: package defaults)")
    p.add_argument("--source", default=str(SHARED_DATA / "snareseq_mouse_cortex_chen2019.h5mu"))
    p.add_argument("--workdir", default="/tmp/stream_scaling")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--tag", default="")
    p.add_argument(
        "--skip-count-check",
        action="store_true",
        help="skip setup_mudata's check of every count value (a full pass over the file before any step)",
    )
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-file", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.cells, args.genes, args.peaks, args.block = [2000, 4000], 2000, 5000, 1000
        args.train_steps, args.embed_cells = min(args.train_steps, 4), min(args.embed_cells, 1000)
        args.scmamba_kwargs = json.dumps(quick_scmamba_config())
    return args


def main(argv=None):
    """Write each file (unless there), run every step on it in its own process, write and print the results."""
    args = parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(to_jsonable(STEPS[args.child](Path(args.child_file), args))), flush=True)
        return
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n_cells in args.cells:
        path = workdir / f"multiome_{n_cells}_{args.genes}x{args.peaks}.h5mu"
        row = {"n_cells": n_cells}
        if not path.exists():
            row.update(write_file(path, n_cells, args))
        row["file_gb"] = path.stat().st_size / 1024**3
        for step in args.steps:
            cmd = [sys.executable, "-m", "benchmarks.stream_scaling", *(argv if argv is not None else sys.argv[1:])]
            cmd += ["--child", step, "--child-file", str(path)]
            env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            found = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not found:
                row[f"{step}_error"] = proc.stderr[-2000:]
                print(f"[{n_cells} {step}] failed:\n{proc.stderr[-2000:]}", flush=True)
                continue
            row.update(json.loads(found[-1][7:]))
            row[f"{step}_wall_s"] = time.perf_counter() - t0
            print(f"[{n_cells} {step}] {json.dumps(to_jsonable(row))}", flush=True)
        rows.append(row)
        out = Path(args.out) / f"stream_scaling{('_' + args.tag) if args.tag else ''}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        meta = {**machine_info(), "args": {k: v for k, v in vars(args).items() if not k.startswith("child")}}
        out.write_text(json.dumps(to_jsonable({"meta": meta, "rows": rows}), indent=1))
    cols = ["n_cells", "file_gb", "seq_read_mb_s", "loader_train_cells_s", "loader_train_mb_s", "loader_embed_cells_s",
            "train_cells_s", "embed_cells_s", "s_per_cell", "peak_rss_gb"]  # fmt: skip
    print(f"wrote {out}")
    print(markdown_table(rows, cols, {}, {"file_gb": 1, "seq_read_mb_s": 0, "peak_rss_gb": 2}))


if __name__ == "__main__":
    main()
