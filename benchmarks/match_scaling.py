"""Time and peak memory of ``scmamba.tl.match_cells`` on N x N cells of 32-d embeddings (N up to 100,000).

A dense N x N float32 similarity matrix of 100,000 cells is 40 GB; the blocked search holds one tile
(``block_size`` query rows x a slice of the reference, 128 MiB) at a time. For each N the script measures the
wall time and the peak RSS of the search alone (the kernel's peak mark is reset before it, so the inputs already in
memory are included and nothing earlier), and checks 200 query cells against a brute-force search.

    python -m benchmarks.match_scaling               # N = 10,000 and 100,000
    python -m benchmarks.match_scaling --quick       # N = 2,000 (seconds)

Writes ``match_scaling.json`` (``match_scaling_quick.json`` with ``--quick``) to ``--out`` (default
``benchmarks/results``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.helpers.common import (
    RESULTS,
    default_threads,
    limit_threads,
    machine_info,
    markdown_table,
    peak_rss_gb,
    reset_peak_rss,
    to_jsonable,
    window_peak_rss_gb,
)


def clustered(n: int, d: int, rng: np.random.Generator, n_clusters: int = 50) -> np.ndarray:
    """Unit vectors around ``n_clusters`` centres, like cell types in an embedding (float32)."""
    centers = rng.normal(size=(n_clusters, d)).astype(np.float32)
    x = centers[rng.integers(0, n_clusters, n)] + 0.5 * rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def run(n: int, d: int, k: int, block_size: int, seed: int) -> dict:
    from scmamba import tl

    rng = np.random.default_rng(seed)
    query, reference = clustered(n, d, rng), clustered(n, d, rng)
    inputs_gb = (query.nbytes + reference.nbytes) / 1024**3
    reset_ok = reset_peak_rss()
    before = peak_rss_gb() if not reset_ok else window_peak_rss_gb(reset_ok)
    t0 = time.perf_counter()
    m = tl.match_cells(query, reference, k=k, block_size=block_size)
    wall = time.perf_counter() - t0
    peak = window_peak_rss_gb(reset_ok)
    # exactness on a sample of query cells
    rows = rng.choice(n, min(200, n), replace=False)
    sim = query[rows].astype(np.float64) @ reference.T.astype(np.float64)
    best = np.sort(sim, axis=1)[:, ::-1][:, :k]
    return {
        "n_query": n,
        "n_reference": n,
        "dim": d,
        "k": k,
        "block_size": block_size,
        "wall_s": wall,
        "pairs_per_s": n * n / wall,
        "peak_rss_gb": peak,
        "rss_before_gb": before,
        "peak_is_window": reset_ok,
        "inputs_gb": inputs_gb,
        "dense_matrix_gb": n * n * 4 / 1024**3,
        "max_score_error": float(np.abs(m.scores[rows] - best).max()),
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="N values (default 10000 100000)")
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--block-size", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=default_threads())
    p.add_argument("--quick", action="store_true", help="N = 2,000 only")
    p.add_argument("--out", default=None, help="output folder (default benchmarks/results)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    limit_threads(args.threads)
    sizes = args.sizes or ([2000] if args.quick else [10_000, 100_000])
    rows = []
    for n in sizes:
        rec = run(n, args.dim, args.k, args.block_size, args.seed)
        rows.append(rec)
        print(
            f"N={n:,}: {rec['wall_s']:.1f} s, peak RSS {rec['peak_rss_gb']:.2f} GiB "
            f"(dense matrix {rec['dense_matrix_gb']:.1f} GiB), max score error {rec['max_score_error']:.1e}",
            flush=True,
        )
    print(
        markdown_table(
            rows,
            ["n_query", "dim", "k", "wall_s", "peak_rss_gb", "dense_matrix_gb", "max_score_error"],
            headers={
                "n_query": "N (query = reference)",
                "peak_rss_gb": "peak RSS (GiB)",
                "dense_matrix_gb": "dense N x N (GiB)",
                "wall_s": "time (s)",
            },
            digits={"wall_s": 1, "peak_rss_gb": 2, "dense_matrix_gb": 1},
        )
    )
    out_dir = Path(args.out) if args.out else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ("match_scaling_quick.json" if args.quick else "match_scaling.json")
    meta = {**machine_info(), "threads": args.threads, "device": "cpu"}
    path.write_text(json.dumps(to_jsonable({"meta": meta, "rows": rows}), indent=1))
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
