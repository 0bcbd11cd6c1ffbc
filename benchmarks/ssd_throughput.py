"""Where a CPU training step goes on all features, and how close the SSD scan gets to the machine's matmul rate.

Three measurements, all with ``--threads`` torch threads, forward + backward unless stated:

1. **Machine matmul rate**: fp32 ``torch.mm`` of two 2048 x 2048 matrices (GFLOP/s), the reference.
2. **SSD scan** (:func:`scmamba.nn.ssd_chunked`) at the shapes of the default model's ATAC encoder on 150,000 peaks
   (586 tokens, 4 heads of width 32, state 32): FLOPs of its matmuls (counted from the algorithm, below) per
   second, as a fraction of (1). Several chunk sizes, and the plain sequential recurrence for contrast.
3. **One training step on all features** (36,601 genes + 150,000 peaks, default SCMAMBA, batch ``--batch``):
   each encoder part timed alone at the shapes it sees in the step (patch tokenizer on sparse input with realistic
   non-zeros, the Mamba2 layers, of which the SSD scan, the MLPs, the head), plus the whole module step.

FLOPs of the chunked SSD per call (``b`` batch, ``c`` chunks of ``T`` tokens, ``h`` heads of width ``p``, ``g``
groups, state ``n``): ``2bgcT^2n`` (C B^T) + ``2bhcT^2p`` (masked form times x) + ``2bhcTpn`` (chunk states) +
``2bhcpn`` (state passing, a scan over chunks) + ``2bhcTnp`` (entering states); backward is counted as twice the
forward. The backward pass is the hand-written one of ``scmamba.nn._ssd_function``, fed a random upstream gradient.

Usage::

    python -m benchmarks.ssd_throughput                 # 1 thread
    python -m benchmarks.ssd_throughput --threads 2 --batch 64

Writes ``ssd_throughput.json`` into ``--out`` (default ``benchmarks/results``) and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from benchmarks.helpers.common import RESULTS, default_threads, machine_info, markdown_table, to_jsonable


def _time(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    import statistics

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """fp32 GFLOP/s of a ``size`` square ``torch.mm``."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / _time(lambda: torch.mm(a, b), repeats) / 1e9


def ssd_flops(b: int, length: int, h: int, p: int, g: int, n: int, T: int) -> float:
    """Matmul FLOPs of one forward :func:`scmamba.nn.ssd_chunked` call (see the module docstring)."""
    c = -(-length // T)
    return 2 * b * c * (g * T * T * n + h * T * T * p + h * T * p * n + h * T * n * p) + 2 * b * h * c * p * n


def ssd_rows(b: int, length: int, h: int, p: int, n: int, chunks: list[int], repeats: int, matmul: float) -> list:
    """Forward and forward+backward GFLOP/s of the chunked SSD, and tokens/s of the sequential recurrence."""
    import torch

    from scmamba.nn import ssd_chunked, ssd_sequential

    g = 1
    torch.manual_seed(0)
    x = torch.randn(b, length, h, p, requires_grad=True)
    # step sizes and decay rates drawn as Mamba2 initialises them: dt log-uniform in [0.001, 0.1], A in [-16, -1]
    dt = torch.exp(torch.empty(b, length, h).uniform_(math.log(1e-3), math.log(1e-1)))
    A = -torch.empty(h).uniform_(1, 16)
    B = torch.randn(b, length, g, n, requires_grad=True)
    C = torch.randn(b, length, g, n, requires_grad=True)
    grad_out = torch.randn(b, length, h, p)
    rows = []
    for T in chunks:
        flops = ssd_flops(b, length, h, p, g, n, T)

        def fwd(T=T):
            with torch.no_grad():
                ssd_chunked(x, dt, A, B, C, chunk_size=T)

        def fwd_bwd(T=T):
            ssd_chunked(x, dt, A, B, C, chunk_size=T).backward(grad_out)

        t_f, t_fb = _time(fwd, repeats), _time(fwd_bwd, repeats)
        rows.append({
            "kernel": f"ssd_chunked T={T}",
            "fwd_ms": 1e3 * t_f,
            "fwd_gflops": flops / t_f / 1e9,
            "fwd_fraction_of_matmul": flops / t_f / 1e9 / matmul,
            "fwd_bwd_ms": 1e3 * t_fb,
            "fwd_bwd_gflops": 3 * flops / t_fb / 1e9,
            "fwd_bwd_fraction_of_matmul": 3 * flops / t_fb / 1e9 / matmul,
            "tokens_per_s_fwd_bwd": b * length / t_fb,
        })  # fmt: skip

    def seq():
        with torch.no_grad():
            ssd_sequential(x, dt, A, B, C)

    t_s = _time(seq, 1, warmup=0)
    rows.append({"kernel": "ssd_sequential (reference)", "fwd_ms": 1e3 * t_s, "tokens_per_s_fwd_bwd": None})
    return rows


def step_rows(batch: int, n_genes: int, n_peaks: int, repeats: int) -> list:
    """Forward+backward time of each encoder part, at the shapes of one training step on all features."""
    import numpy as np
    import torch

    from benchmarks.helpers.methods import scmamba
    from benchmarks.helpers.synthetic import DEFAULT_SOURCE, make_mudata, source_profiles
    from scmamba.nn import SparseRows, encode_values

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    # a real SCMAMBA at the package defaults, with a Mamba2 encoder on both layers (each is timed), built on a few
    # synthetic cells of the requested width
    mdata = make_mudata(16, n_genes, n_peaks, source_profiles(Path(DEFAULT_SOURCE)), 0)
    module = scmamba(mdata, "atac", "atac", batch_key=None, encoder="mamba").module
    module.train()

    def counts(n_features: int, nnz: int) -> torch.Tensor:
        nnz = min(nnz, n_features // 4)
        x = torch.zeros(batch, n_features)
        for i in range(batch):
            x[i, rng.choice(n_features, nnz, replace=False)] = torch.from_numpy(rng.poisson(1.0, nnz) + 1.0).float()
        return x

    # non-zeros per cell of a typical 10x Multiome cell: ~2,000 genes and ~5,000 peaks
    dense = {"rna": counts(n_genes, 2000), "atac": counts(n_peaks, 5000)}
    inputs = {m: SparseRows.from_tensor(x) for m, x in dense.items()}  # the module's minibatches are non-zeros
    rows = []
    for modality, x in inputs.items():
        enc = module.encoders[modality]

        def tok(x=x, enc=enc, modality=modality):  # value encoding is part of the tokenizer row
            return enc.tokenizer(encode_values(x, modality, module.n_bins))

        tokens = tok().detach()
        parts = {"tokenizer (sparse patch projection)": lambda tok=tok: tok().sum().backward()}
        for i, block in enumerate(enc.blocks):
            t_in = tokens.clone().requires_grad_(True)
            parts[f"block {i} Mamba2 layer"] = lambda b=block, t=t_in: b.mixer(b.norm_mixer(t)).sum().backward()
            parts[f"block {i} MLP"] = lambda b=block, t=t_in: b.mlp(b.norm_mlp(t)).sum().backward()
        normed = tokens.clone().requires_grad_(True)
        parts["pooling + head"] = lambda enc=enc, t=normed: enc.out(enc.pool_and_head(t)).sum().backward()
        for name, fn in parts.items():
            rows.append({"encoder": modality, "part": name, "ms": 1e3 * _time(fn, repeats), "tokens": tokens.shape[1]})
    tensors = {"X": dense["rna"].to_sparse_csr(), "atac": dense["atac"].to_sparse_csr()}  # as the loader gives them

    def step():
        _, _, loss = module(tensors, loss_kwargs={})
        loss.loss.backward()

    rows.append({"encoder": "both", "part": "whole module step (fwd+bwd, loss)", "ms": 1e3 * _time(step, repeats)})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--batch", type=int, default=32, help="cells per step in part 3 (and SSD batch in part 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunks", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--quick", action="store_true", help="small shapes (smoke test)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    length = 64 if args.quick else 586  # ceil(150,000 peaks / 256 per patch)
    genes, peaks = (500, 2000) if args.quick else (36_601, 150_000)
    mm = matmul_gflops(512 if args.quick else 2048)
    print(f"fp32 matmul: {mm:.1f} GFLOP/s with {args.threads} thread(s)", flush=True)
    ssd = ssd_rows(args.batch, length, 4, 32, 32, [16, 32] if args.quick else args.chunks, args.repeats, mm)
    step_batch = 8 if args.quick else args.batch
    steps = step_rows(step_batch, genes, peaks, 1 if args.quick else args.repeats)
    out_dir = Path(args.out) if args.out else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "ssd_throughput_quick" if args.quick else "ssd_throughput"
    meta = {**machine_info(), "threads": args.threads, "batch": args.batch, "ssd_length": length,
            "genes": genes, "peaks": peaks, "matmul_gflops": mm}  # fmt: skip
    (out_dir / f"{stem}.json").write_text(json.dumps(to_jsonable({"meta": meta, "ssd": ssd, "step": steps}), indent=1))
    print(f"\nSSD scan, batch {args.batch} x {length} tokens, 4 heads x 32, state 32; matmul {mm:.1f} GFLOP/s\n")
    cols = ["kernel", "fwd_ms", "fwd_gflops", "fwd_fraction_of_matmul", "fwd_bwd_ms", "fwd_bwd_gflops",
            "fwd_bwd_fraction_of_matmul", "tokens_per_s_fwd_bwd"]  # fmt: skip
    print(markdown_table(ssd, cols, digits={"fwd_ms": 1, "fwd_bwd_ms": 1}))
    total = sum(r["ms"] for r in steps if r["encoder"] != "both")
    for r in steps:
        r["share_of_parts"] = r["ms"] / total if r["encoder"] != "both" else None
    print(f"\nOne training step, {genes:,} genes + {peaks:,} peaks, batch {step_batch} (fwd+bwd per part)\n")
    print(markdown_table(steps, ["encoder", "part", "tokens", "ms", "share_of_parts"], digits={"ms": 1}))


if __name__ == "__main__":
    main()
