"""GPU check: mamba-ssm's fused kernels against the PyTorch SSD path, and full-width throughput on one GPU.

Run it on a CUDA machine (it installs nothing; mamba-ssm is used when it imports)::

    python -m benchmarks.gpu_check                      # ~5-8 min on one recent GPU
    python -m benchmarks.gpu_check --cells 2000         # shorter

1. **Kernel agreement.** One Mamba2 layer at SCMAMBA's default sizes, with the same weights and inputs, run through
   the fused kernels (``use_fused_kernels=True``) and the PyTorch chunked scan (``False``): relative differences of
   the outputs and of every parameter's gradient, at the token counts of full 10x Multiome width (RNA 36,601 genes
   / 128 = 286 tokens, ATAC 150,000 peaks / 1,024 = 147 tokens), and the time of a forward + backward pass.
2. **Throughput.** ``scaling.py`` on ``--cells`` synthetic cells x 36,601 genes + 150,000 peaks (~2,000 RNA and
   ~6,000 ATAC non-zeros per cell, resampled from SNARE-seq): training and embedding cells/s and peak GPU memory
   for SCMAMBA with the fused kernels, SCMAMBA with the PyTorch path, and MULTIVI, each in its own process.
3. **Streaming loader into GPU memory.** A ``--stream-cells`` full-width file written in blocks
   (``stream_scaling.py``), read backed through the training stream (``SCMAMBA.train(data_source="stream")``'s data
   module, pinned memory) and each minibatch copied to the GPU (``non_blocking``): cells/s from a cold page cache.
   ``--stream-only`` runs just this part, and on a machine without CUDA it times the same stream into CPU memory.

Writes ``gpu_check.json`` to ``--out`` (default ``benchmarks/results``) and prints the tables. Without CUDA, parts 1
and 2 have nothing to check: it says so and exits with status 1, unless ``--stream-only`` (part 3 on the CPU).
"""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.helpers.common import RESULTS, SHARED_DATA, machine_info, markdown_table, to_jsonable

#: Token counts at full 10x Multiome width with the default patch sizes (RNA 128 genes, ATAC 1,024 peaks per token).
LENGTHS = {"rna": 286, "atac": 147}
#: Depth scales of ``scaling.py`` that give ~2,000 RNA and ~6,000 ATAC non-zeros per cell at full width.
DEPTH = {"rna": 20.0, "atac": 62.0}


def kernel_agreement(batch: int, seed: int) -> list[dict]:
    """Fused vs PyTorch Mamba2 on the same weights: output and gradient differences, time per forward + backward."""
    import torch

    from scmamba import SCMAMBA
    from scmamba.nn import Mamba2

    defaults = {n: p.default for n, p in inspect.signature(SCMAMBA.__init__).parameters.items()}  # the one source
    d_model = defaults["d_model"]
    sizes = {k: defaults[k] for k in ("d_state", "expand", "headdim", "chunk_size")}
    rows = []
    for modality, length in LENGTHS.items():
        torch.manual_seed(seed)
        layer = Mamba2(d_model, **sizes).cuda()
        u = torch.randn(batch, length, d_model, device="cuda")
        results = {}
        for fused in (False, True):
            layer.use_fused_kernels = fused
            layer.zero_grad(set_to_none=True)
            x = u.clone().requires_grad_(True)
            y = layer(x)
            (y * torch.linspace(-1, 1, y.numel(), device="cuda").view_as(y)).sum().backward()
            grads = {n: p.grad.detach().clone() for n, p in layer.named_parameters()}
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(20):
                layer(u).sum().backward()
            torch.cuda.synchronize()
            results[fused] = (y.detach(), x.grad.detach(), grads, (time.perf_counter() - t0) / 20)

        def rel(a, b):
            return float((a - b).norm() / b.norm().clamp_min(1e-12))

        y_t, gx_t, g_t, s_t = results[False]
        y_f, gx_f, g_f, s_f = results[True]
        rows.append(
            {
                "modality": modality,
                "tokens": length,
                "batch": batch,
                "output_rel_diff": rel(y_f, y_t),
                "input_grad_rel_diff": rel(gx_f, gx_t),
                "max_param_grad_rel_diff": max(rel(g_f[n], g_t[n]) for n in g_t),
                "worst_param": max(g_t, key=lambda n: rel(g_f[n], g_t[n])),
                "torch_ms": s_t * 1e3,
                "fused_ms": s_f * 1e3,
            }
        )
    return rows


def throughput(args) -> list[dict]:
    """``scaling.py`` on CUDA at full width: SCMAMBA fused, SCMAMBA PyTorch path, MULTIVI."""
    out = Path(args.out) / "gpu_scaling"
    cmd = [
        sys.executable, "-m", "benchmarks.scaling", "--device", "cuda", "--cells", str(args.cells),
        "--rna-depth-scale", str(DEPTH["rna"]), "--atac-depth-scale", str(DEPTH["atac"]), "--epochs", "1",
        "--embed-cells", str(args.cells), "--methods", "scmamba", "scmamba_torch", "multivi", "--out", str(out),
        "--timeout", str(args.timeout),
    ]  # fmt: skip
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return json.loads((out / "scaling.json").read_text())["rows"]


def stream_to_device(args, device: str) -> dict:
    """Cells/s of the training stream from a cold backed full-width file into ``device`` memory (pinned on CUDA)."""
    import mudata as md
    import torch
    from stream_scaling import drop_cache, parse_args, seq_read, write_file

    from scmamba import SCMAMBA
    from scmamba.dataloaders import StreamingDataModule

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"multiome_{args.stream_cells}_36601x150000.h5mu"
    if not path.exists():
        write_file(path, args.stream_cells, parse_args(["--source", args.source]))
    seq = seq_read(path, 1e9)
    md.set_options(pull_on_update=False)
    mdata = md.read_h5mu(path, backed="r")
    SCMAMBA.setup_mudata(mdata, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac"})
    manager = SCMAMBA._get_most_recent_anndata_manager(mdata, required=True)
    cuda = device == "cuda"
    loader = StreamingDataModule(manager, batch_size=128, pin_memory=cuda).train_dataloader()
    drop_cache(path)
    n = 0
    t0 = time.perf_counter()
    for batch in loader:
        moved = {k: v.to(device, non_blocking=cuda) for k, v in batch.items()}
        n += len(moved["batch"])
    if cuda:
        torch.cuda.synchronize()
    s = time.perf_counter() - t0
    return {"device": device, "cells": n, "stream_cells_per_s": n / s, **seq, "file_gb": path.stat().st_size / 1e9}


def main(argv=None):
    """Run both checks, write ``gpu_check.json`` and print the tables."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", type=int, default=10_000, help="synthetic full-width cells for the throughput part")
    p.add_argument("--batch", type=int, default=128, help="minibatch of the kernel check (SCMAMBA's default)")
    p.add_argument("--timeout", type=float, default=240, help="seconds per method in the throughput part")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--stream-cells", type=int, default=20_000, help="cells of the file the streaming part reads")
    p.add_argument("--stream-only", action="store_true", help="only the streaming part (runs on the CPU too)")
    p.add_argument("--workdir", default="/tmp/gpu_check_stream", help="where the streaming part writes its file")
    p.add_argument("--source", default=str(SHARED_DATA / "snareseq_mouse_cortex_chen2019.h5mu"))
    args = p.parse_args(argv)

    import torch

    from scmamba.nn import mamba_ssm_available

    cuda = torch.cuda.is_available()
    if args.stream_only:
        stream = stream_to_device(args, "cuda" if cuda else "cpu")
        path = Path(args.out) / f"gpu_check_stream_{stream['device']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(to_jsonable({"meta": machine_info(), "stream": stream}), indent=1))
        print(markdown_table([stream], list(stream), {}, {}))
        print(f"\nwrote {path}")
        return
    if not cuda:
        print("No CUDA device: the GPU check needs one (nothing was measured; --stream-only runs on the CPU).",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(1)
    info = {**machine_info(), "gpu": torch.cuda.get_device_name(0), "mamba_ssm": mamba_ssm_available()}
    kernels = kernel_agreement(args.batch, args.seed) if info["mamba_ssm"] else []
    if not kernels:
        print("mamba-ssm does not import here: only the PyTorch path is measured.", flush=True)
    rows = throughput(args)
    stream = stream_to_device(args, "cuda")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / "gpu_check.json"
    path.write_text(
        json.dumps(to_jsonable({"meta": info, "kernels": kernels, "throughput": rows, "stream": stream}), indent=1)
    )
    if kernels:
        cols = ["modality", "tokens", "output_rel_diff", "input_grad_rel_diff", "max_param_grad_rel_diff",
                "torch_ms", "fused_ms"]  # fmt: skip
        print("\nFused vs PyTorch Mamba2 (same weights)\n")
        print(markdown_table(kernels, cols, {c: c for c in cols}, {c: 4 for c in cols}))
    cols = ["method", "n_cells", "train_cells_per_s", "embed_cells_per_s", "gpu_peak_gb", "peak_rss_gb", "status"]
    print(f"\nFull width on {info['gpu']}\n")
    print(markdown_table(rows, cols, {c: c for c in cols}, {c: 2 for c in cols}))
    print("\nStreaming loader into GPU memory (cold page cache)\n")
    print(markdown_table([stream], list(stream), {}, {}))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
