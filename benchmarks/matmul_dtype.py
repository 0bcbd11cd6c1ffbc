"""bf16 vs float32 matmul rates at the shapes of SCMAMBA's encoder projections, on the CPU and torch build it runs on.

The encoders' dense work is ``nn.Linear`` on ``(tokens, d_model)`` activations: Mamba2's input projection
(``d_model -> 2 * expand * d_model + 2 * d_state + heads``), its output projection and the MLP. Whether bf16 autocast
could speed up training or embedding on a CPU depends on whether torch's bf16 GEMM on it is faster than float32,
which depends on the build (oneDNN/MKL kernels, the ATen CPU capability) as much as on the CPU's instructions
(``lscpu``: ``amx_bf16``, ``avx512_bf16``). For each shape: median seconds and GFLOP/s of ``F.linear`` in both
dtypes. Output: ``matmul_dtype.json`` and a Markdown table.

Usage::

    python -m benchmarks.matmul_dtype              # 1 thread, 65,536 tokens (a 512-cell minibatch of ATAC tokens)
    python -m benchmarks.matmul_dtype --threads 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.helpers.common import RESULTS, machine_info, markdown_table, set_threads, to_jsonable

# (name, in features, out features) with the defaults: d_model 64, expand 2, d_state 32, headdim 32 (4 heads),
# MLP hidden 2 * d_model (SwiGLU: fc1 gives value and gate)
SHAPES = [
    ("mamba2 in_proj", 64, 2 * 128 + 2 * 32 + 4),
    ("mamba2 out_proj", 128, 64),
    ("mlp fc1", 64, 2 * 128),
    ("mlp fc2", 128, 64),
]


def rate(tokens: int, n_in: int, n_out: int, dtype, repeats: int) -> tuple[float, float]:
    """Median seconds of one ``F.linear`` and its GFLOP/s."""
    import torch
    import torch.nn.functional as F

    x = torch.randn(tokens, n_in).to(dtype)
    w = torch.randn(n_out, n_in).to(dtype)
    b = torch.randn(n_out).to(dtype)
    F.linear(x, w, b)  # warm-up (kernel selection, first allocation)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        F.linear(x, w, b)
        times.append(time.perf_counter() - t0)
    seconds = sorted(times)[len(times) // 2]
    return seconds, 2 * tokens * n_in * n_out / seconds / 1e9


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=65536)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default $BENCH_THREADS or 1)")
    p.add_argument("--out", default=None, help="output folder (default benchmarks/results)")
    args = p.parse_args(argv)
    import os

    if args.threads:
        os.environ["BENCH_THREADS"] = str(args.threads)
    threads = set_threads()
    import torch

    rows = []
    for name, n_in, n_out in SHAPES:
        row = {"layer": name, "shape": f"({args.tokens}, {n_in}) x ({n_in}, {n_out})"}
        for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            s, gflops = rate(args.tokens, n_in, n_out, dtype, args.repeats)
            row[f"{label}_ms"], row[f"{label}_gflops"] = s * 1000, gflops
        row["bf16_speedup"] = row["fp32_ms"] / row["bf16_ms"]
        rows.append(row)
        print(json.dumps(to_jsonable(row)), flush=True)
    meta = {
        **machine_info(),
        "threads": threads,
        "tokens": args.tokens,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn_available": torch.backends.mkldnn.is_available(),
    }
    out = Path(args.out) if args.out else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    (out / "matmul_dtype.json").write_text(json.dumps(to_jsonable({"meta": meta, "rows": rows}), indent=1))
    cols = ["layer", "shape", "fp32_ms", "bf16_ms", "fp32_gflops", "bf16_gflops", "bf16_speedup"]
    print(markdown_table(rows, cols))
    print(f"torch CPU capability {meta['torch_cpu_capability']}; threads {threads}; wrote {out / 'matmul_dtype.json'}")


if __name__ == "__main__":
    main()
