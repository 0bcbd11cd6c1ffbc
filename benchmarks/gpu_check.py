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

Writes ``gpu_check.json`` to ``--out`` (default ``benchmarks/results``) and prints both tables. Without CUDA it
says so and exits with status 1 (nothing to check on a CPU machine).
"""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.helpers.common import RESULTS, machine_info, markdown_table, to_jsonable

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


def main(argv=None):
    """Run both checks, write ``gpu_check.json`` and print the tables."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", type=int, default=10_000, help="synthetic full-width cells for the throughput part")
    p.add_argument("--batch", type=int, default=128, help="minibatch of the kernel check (SCMAMBA's default)")
    p.add_argument("--timeout", type=float, default=240, help="seconds per method in the throughput part")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)

    import torch

    from scmamba.nn import mamba_ssm_available

    if not torch.cuda.is_available():
        print("No CUDA device: the GPU check needs one (nothing was measured).", file=sys.stderr)
        raise SystemExit(1)
    info = {**machine_info(), "gpu": torch.cuda.get_device_name(0), "mamba_ssm": mamba_ssm_available()}
    kernels = kernel_agreement(args.batch, args.seed) if info["mamba_ssm"] else []
    if not kernels:
        print("mamba-ssm does not import here: only the PyTorch path is measured.", flush=True)
    rows = throughput(args)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / "gpu_check.json"
    path.write_text(json.dumps(to_jsonable({"meta": info, "kernels": kernels, "throughput": rows}), indent=1))
    if kernels:
        cols = ["modality", "tokens", "output_rel_diff", "input_grad_rel_diff", "max_param_grad_rel_diff",
                "torch_ms", "fused_ms"]  # fmt: skip
        print("\nFused vs PyTorch Mamba2 (same weights)\n")
        print(markdown_table(kernels, cols, {c: c for c in cols}, {c: 4 for c in cols}))
    cols = ["method", "n_cells", "train_cells_per_s", "embed_cells_per_s", "gpu_peak_gb", "peak_rss_gb", "status"]
    print(f"\nFull width on {info['gpu']}\n")
    print(markdown_table(rows, cols, {c: c for c in cols}, {c: 2 for c in cols}))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
