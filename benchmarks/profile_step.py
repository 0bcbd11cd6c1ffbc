"""Profile of one SCMAMBA training step and one embedding step at full multiome width, part by part.

Synthetic paired RNA+ATAC data of 10x Multiome width (36,601 genes, 150,000 peaks by default) are resampled from the
real SNARE-seq counts (``helpers.synthetic.make_mudata``), with per-modality depth scales chosen so that cells have
about 2,000 RNA and 6,000 ATAC non-zeros. One minibatch of the model's own training loader is taken, and each part
of the step is run on it, forward and backward, ``--repeats`` times:

``load``            the data loader producing the (sparse) minibatch
``input/<mod>``     non-zeros, feature dropout, genomic order and value encoding (no gradient)
``tokens/<mod>``    patch tokens from the non-zeros (per-region projections)
``block<i>/<mod>``  each Mamba2 + MLP block
``head/<mod>``      final norm, pooling and MLP head
``decode/<src>-><mod>``  each multinomial decoder term
``contrastive``     InfoNCE + cosine on the batch
``step``            the whole training step as Lightning runs it (module forward, loss, backward, AdamW step)
``embed``           ``get_latent_representation`` per cell (no gradient, ``--embed-batch`` cells per minibatch)
``embed <part>/<mod>``  its parts on one minibatch: non-zeros of the loader's CSR tensor, encoder input, tokens,
                    the blocks together, norm + head (per 1,000 cells)

For every part: wall time (median over repeats) and the bytes of the tensors autograd saves for the backward
(``saved_MB``, the activation memory the part holds during a step). The table is printed and written as JSON.

Usage::

    python -m benchmarks.profile_step                      # full width, batch 256, package defaults
    python -m benchmarks.profile_step --kwargs '{"n_layers": 2}' --bf16
    python -m benchmarks.profile_step --quick              # 2,000 genes, 5,000 peaks (smoke test)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.helpers.common import RESULTS, machine_info, markdown_table, peak_rss_gb, set_threads, to_jsonable
from benchmarks.helpers.methods import scmamba
from benchmarks.helpers.synthetic import DEFAULT_SOURCE, make_mudata, source_profiles


class SavedBytes:
    """Context manager summing the bytes of the distinct tensors autograd saves for backward."""

    def __init__(self):
        self.bytes = 0
        self._seen = set()

    def _pack(self, t):
        import torch

        if t.layout == torch.sparse_csr:  # the tokenizer's patch matrix: its index and value arrays
            parts = (t.crow_indices(), t.col_indices(), t.values())
            key = ("csr", *(p.data_ptr() for p in parts))
            size = sum(p.numel() * p.element_size() for p in parts)
        else:
            key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
            size = t.numel() * t.element_size()
        if key not in self._seen:
            self._seen.add(key)
            self.bytes += size
        return t

    def __enter__(self):
        import torch

        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)


def timed(fn, repeats: int):
    """Median wall time (s) of ``fn()`` over ``repeats`` runs after one warm-up, and its last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=1024)
    parser.add_argument("--genes", type=int, default=36601)
    parser.add_argument("--peaks", type=int, default=150000)
    parser.add_argument("--rna-depth-scale", type=float, default=20.0)
    parser.add_argument("--atac-depth-scale", type=float, default=62.0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--embed-batch", type=int, default=None, help="default: the package's (EMBED_BATCH_SIZE)")
    parser.add_argument("--kwargs", default="{}", help="JSON of SCMAMBA keywords")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (as train(precision='bf16'))")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--source", default=str(DEFAULT_SOURCE))
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.cells, args.genes, args.peaks, args.repeats = 300, 2000, 5000, 1
        args.rna_depth_scale, args.atac_depth_scale = 2.0, 2.0

    import mudata as md
    import scvi
    import torch
    import torch.nn.functional as F

    from scmamba._malloc import reuse_freed_memory
    from scmamba.model._presets import EMBED_BATCH_SIZE
    from scmamba.module import contrastive_loss
    from scmamba.nn import SparseRows

    md.set_options(pull_on_update=False)
    args.embed_batch = args.embed_batch or EMBED_BATCH_SIZE
    # the parts run outside train(): give them the malloc settings train() and get_latent_representation() use
    malloc_tuning = contextlib.ExitStack()  # held until main() returns
    malloc_tuning.enter_context(reuse_freed_memory())
    threads = set_threads()
    scvi.settings.seed = 0
    prof = source_profiles(Path(args.source))
    depth = {"rna": args.rna_depth_scale, "atac": args.atac_depth_scale}
    mdata = make_mudata(args.cells, args.genes, args.peaks, prof, seed=0, depth_scale=depth)
    nnz = {m: mdata.mod[m].X.nnz / mdata.n_obs for m in ("rna", "atac")}
    kwargs = {"encoder": "mamba", **json.loads(args.kwargs)}  # every layer's Mamba2 encoder is profiled
    model = scmamba(mdata, "atac", "atac", **kwargs)
    module = model.module
    module.train()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16)

    loader = model._make_data_loader(
        adata=mdata, batch_size=args.batch_size, shuffle=True, load_sparse_tensor=True, drop_last=True
    )
    rows = []

    def record(part, seconds, saved=None):
        rows.append({"part": part, "ms": round(seconds * 1000, 2), "saved_MB": None if saved is None else
                     round(saved / 1024**2, 1)})  # fmt: skip

    t_load, tensors = timed(lambda: next(iter(loader)), args.repeats)
    record("load", t_load)
    inputs = module._get_inference_input(tensors)
    batch = tensors["batch"].view(-1).long()
    features, counts = {}, {}
    for key, x in inputs.items():
        m = key[2:]
        counts[m] = SparseRows.from_tensor(x)
        with torch.no_grad():
            t, enc_in = timed(lambda m=m: module.encoder_input(m, counts[m]), args.repeats)
        record(f"input/{m}", t)
        encoder = module.encoders[m]

        def run(fn, part, *xs):
            def once():
                leaves = [x.detach().requires_grad_(True) if torch.is_tensor(x) else x for x in xs]
                with SavedBytes() as saved, autocast:
                    out = fn(*leaves)
                out.float().sum().backward()
                return out.detach(), saved.bytes

            t, (out, saved) = timed(once, args.repeats)
            record(part, t, saved)
            return out

        h = run(encoder.tokenizer, f"tokens/{m}", enc_in)
        for i, block in enumerate(encoder.blocks):
            h = run(block, f"block{i}/{m}", h)
        features[m] = run(lambda h, e=encoder: e.pool_and_head(e.norm_f(h)), f"head/{m}", h)
    z = {m: F.normalize(module.encoders[m].out(f).float(), dim=-1).detach() for m, f in features.items()}
    decoders = getattr(module, "decoders", None) or {}
    for m, decoder in decoders.items():
        target = counts[m].with_values(torch.ones_like(counts[m].values)) if m == "atac" else counts[m]
        for src, zs in z.items():

            def once_dec(zs=zs, decoder=decoder, target=target):
                leaf = zs.detach().requires_grad_(True)
                with SavedBytes() as saved, autocast:
                    loss = decoder.nll(leaf, target, batch)
                loss.backward()
                return loss.detach(), saved.bytes

            t, (_, saved) = timed(once_dec, args.repeats)
            record(f"decode/{src}->{m}", t, saved)
    mods = list(features)

    def once_con():
        a, b = (z[m].detach().requires_grad_(True) for m in mods[:2])
        with SavedBytes() as saved:
            loss = contrastive_loss(a, b, module.logit_scale.detach())["loss"]
        loss.backward()
        return loss.detach(), saved.bytes

    t, (_, saved) = timed(once_con, args.repeats)
    record("contrastive", t, saved)
    parts_ms = sum(r["ms"] for r in rows if r["part"] != "load")

    plan = model._training_plan_cls(module)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)

    def once_step():
        optimizer.zero_grad(set_to_none=True)
        with SavedBytes() as saved, autocast:
            _, _, loss_output = module(tensors)
        loss_output.loss.backward()
        optimizer.step()
        return saved.bytes

    del plan
    t_step, saved = timed(once_step, args.repeats)
    record("step", t_step, saved)
    module.eval()
    n_embed = min(args.cells, 4 * args.embed_batch)

    def once_embed():
        with autocast:
            return model.get_latent_representation(indices=np.arange(n_embed), batch_size=args.embed_batch)

    t_embed, _ = timed(once_embed, max(1, args.repeats - 1))
    record("embed (per 1,000 cells)", t_embed / n_embed * 1000)
    # the embedding's parts on one of its minibatches, as get_latent_representation runs them (no gradient,
    # projections built once), per 1,000 cells
    embed_loader = model._make_data_loader(
        adata=mdata, indices=np.arange(min(args.cells, args.embed_batch)), batch_size=args.embed_batch,
        load_sparse_tensor=True,
    )  # fmt: skip
    embed_tensors = next(iter(embed_loader))
    n_batch_cells = embed_tensors["batch"].shape[0]
    with torch.no_grad(), module.frozen_tokenizers(), autocast:
        for key, x in module._get_inference_input(embed_tensors).items():
            if not key.startswith("x_"):
                continue
            m, encoder = key[2:], module.encoders[key[2:]]
            t, raw = timed(lambda x=x: SparseRows.from_tensor(x), args.repeats)
            t_in, enc_in = timed(lambda m=m, raw=raw: module.encoder_input(m, raw), args.repeats)
            t_tok, h = timed(lambda e=encoder, enc_in=enc_in: e.tokenizer(enc_in), args.repeats)

            def blocks(h=h, e=encoder):
                for block in e.blocks:
                    h = block(h)
                return h

            t_blocks, h = timed(blocks, args.repeats)
            t_head, _ = timed(lambda h=h, e=encoder: e.out(e.pool_and_head(e.norm_f(h))), args.repeats)
            for part, seconds in [("non-zeros", t), ("input", t_in), ("tokens", t_tok), ("blocks", t_blocks),
                                  ("head", t_head)]:  # fmt: skip
                record(f"embed {part}/{m} (per 1,000 cells)", seconds / n_batch_cells * 1000)
    result = {
        "meta": {**machine_info(), "threads": threads, "cells": args.cells, "genes": args.genes,
                 "peaks": args.peaks, "nnz_per_cell": nnz, "batch_size": args.batch_size, "bf16": args.bf16,
                 "kwargs": kwargs, "n_params": sum(p.numel() for p in module.parameters()),
                 "tokens": {m: e.tokenizer.n_patches for m, e in module.encoders.items()}},
        "rows": rows,
        "sum_of_parts_ms": round(parts_ms, 1),
        "train_cells_per_s": round(args.batch_size / t_step, 1),
        "embed_cells_per_s": round(n_embed / t_embed, 1),
        "peak_rss_gb": round(peak_rss_gb(), 2),
    }  # fmt: skip
    for r in rows:
        in_step = r["part"] not in ("step", "load") and not r["part"].startswith("embed")
        r["share_of_step"] = round(r["ms"] / (t_step * 1000), 3) if in_step else None
    out = Path(args.out) if args.out else RESULTS / ("profile_step_quick.json" if args.quick else "profile_step.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(to_jsonable(result), indent=1))
    print(json.dumps(result["meta"]))
    print(f"train {result['train_cells_per_s']} cells/s, embed {result['embed_cells_per_s']} cells/s, "
          f"peak RSS {result['peak_rss_gb']} GiB, sum of parts {parts_ms:.0f} ms")  # fmt: skip
    print(markdown_table(rows, ["part", "ms", "share_of_step", "saved_MB"]))
    return result


if __name__ == "__main__":
    main()
