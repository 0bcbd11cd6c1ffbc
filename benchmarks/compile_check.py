"""``torch.compile`` on SCMAMBA's encoder blocks: does it pay on a CPU at full-width shapes?

At full multiome width the encoders see 64 tokens per modality (``max_tokens``); after the input path became cheap,
the Mamba2 + MLP blocks are about two thirds of an embedding (``profile_step.py``). Those blocks are many small
element-wise operations around narrow matrix products, which is what Inductor fuses. This script times one
encoder block at the package defaults, eager against ``torch.compile`` (default mode), on a minibatch of the
embedding (``EMBED_BATCH_SIZE`` cells, no gradient, eval mode) and of training (128 cells, forward + backward,
train mode), and checks that both give the same outputs and gradients. Compilation time is reported separately.

    python -m benchmarks.compile_check                    # 1 thread, defaults
    python -m benchmarks.compile_check --threads 2 --repeats 20

Writes ``compile_check.json`` to ``--out`` (default ``benchmarks/results``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.helpers.common import RESULTS, machine_info, markdown_table, to_jsonable


def timed(fn, repeats: int) -> float:
    """Median wall time (ms) of ``fn()`` over ``repeats`` calls (after the caller's warm-up)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tokens", type=int, default=64, help="tokens per cell (max_tokens)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    import inspect

    import torch

    from scmamba import SCMAMBA
    from scmamba.model._presets import EMBED_BATCH_SIZE, ENCODER_DROPOUT
    from scmamba.nn import MambaBlock

    torch.set_num_threads(args.threads)
    threads = args.threads
    torch.manual_seed(0)
    # the block of the package defaults (SCMAMBA's signature is the one source of them)
    defaults = {k: v.default for k, v in inspect.signature(SCMAMBA.__init__).parameters.items()}
    d_model = defaults["d_model"]
    kwargs = {k: defaults[k] for k in ("d_state", "headdim", "expand", "chunk_size")}
    # dropout=None chooses by the number of paired cells: a full-width model has more than 5,000 of them
    dropout = ENCODER_DROPOUT if defaults["dropout"] is None else defaults["dropout"]
    block = MambaBlock(d_model, defaults["mlp_hidden"] or 2 * d_model, dropout=dropout, **kwargs)
    with torch.no_grad():  # zero-initialised residual branches would make the block the identity: perturb them
        for param in block.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    compiled = torch.compile(block)
    rows = []
    for phase, n_cells in (("embed", EMBED_BATCH_SIZE), ("train step", 128)):
        x = torch.randn(n_cells, args.tokens, d_model)
        training = phase == "train step"
        block.train(training)
        if training:
            leaf = x.clone().requires_grad_(True)

            def run(fn, leaf=leaf):
                leaf.grad = None
                out = fn(leaf)
                out.square().sum().backward()
                return out.detach(), leaf.grad.clone()
        else:

            def run(fn, x=x):
                with torch.no_grad():
                    return fn(x), None

        t0 = time.perf_counter()
        run(compiled)  # compiles
        compile_s = time.perf_counter() - t0
        run(block)
        eager_ms = timed(lambda run=run: run(block), args.repeats)
        compiled_ms = timed(lambda run=run: run(compiled), args.repeats)
        # the same outputs (and input gradients), dropout off
        block.eval()
        leaf_a, leaf_b = x.clone().requires_grad_(training), x.clone().requires_grad_(training)
        with torch.set_grad_enabled(training):
            out_a, out_b = block(leaf_a), compiled(leaf_b)
        diff = float((out_a - out_b).detach().abs().max())
        if training:
            out_a.square().sum().backward()
            out_b.square().sum().backward()
            diff = max(diff, float((leaf_a.grad - leaf_b.grad).abs().max()))
        rows.append({
            "phase": phase, "cells": n_cells, "tokens": args.tokens, "eager_ms": round(eager_ms, 2),
            "compiled_ms": round(compiled_ms, 2), "speed_up": round(eager_ms / compiled_ms, 2),
            "compile_s": round(compile_s, 1), "max_abs_diff": diff,
        })  # fmt: skip
    result = {"meta": {**machine_info(), "threads": threads, "block": {"d_model": d_model, **kwargs}}, "rows": rows}
    out = Path(args.out) if args.out else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    (out / "compile_check.json").write_text(json.dumps(to_jsonable(result), indent=1))
    print(markdown_table(rows, list(rows[0])))
    return result


if __name__ == "__main__":
    main()
