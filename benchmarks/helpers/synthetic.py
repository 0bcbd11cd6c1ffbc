"""Synthetic paired RNA + ATAC data resampled from a real data set, at any cell count and feature width.

Used by ``scaling.py``, ``profile_step.py`` and ``ssd_throughput.py``: per-cell depths and per-cell-type feature
profiles are read from the real data (:func:`source_profiles`), widened to the requested number of genes / peaks
(:func:`widen`) and sampled as sparse counts, with features placed along a human-like genome (:func:`genome_var`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.helpers.common import SHARED_DATA

#: The real data the profiles come from by default.
DEFAULT_SOURCE = SHARED_DATA / "snareseq_mouse_cortex_chen2019.h5mu"
#: Approximate GRCh38 chromosome lengths (Mb), used to place synthetic features along a genome.
_AUTOSOMES_MB = [248, 242, 198, 190, 181, 171, 159, 145, 138, 134, 135, 133, 114, 107, 102, 90, 83, 80, 59, 64, 47, 51]
CHROM_MB = {**{f"chr{i}": mb for i, mb in enumerate(_AUTOSOMES_MB, 1)}, "chrX": 156, "chrY": 57}
CHUNK_CELLS = 5000


def source_profiles(path: Path, label_key: str = "cell_type") -> dict:
    """Per-cell depths and per-cell-type feature profiles of the real data (RNA and ATAC)."""
    import mudata as md

    md.set_options(pull_on_update=False)
    mdata = md.read_h5mu(path)
    labels = mdata.obs[label_key].astype(str).to_numpy()
    types, type_of_cell = np.unique(labels, return_inverse=True)
    out = {"type_of_cell": type_of_cell, "batch": mdata.obs["batch"].astype(str).to_numpy(), "types": types}
    for mod in ("rna", "atac"):
        X = mdata.mod[mod].X.tocsr().astype(np.float64)
        out[f"{mod}_depth"] = np.asarray(X.sum(axis=1)).ravel().astype(np.int64)
        prof = np.zeros((len(types), X.shape[1]))
        for t in range(len(types)):
            prof[t] = np.asarray(X[type_of_cell == t].sum(axis=0)).ravel()
        prof += 0.01 * prof.sum(axis=0, keepdims=True) / len(types)  # every type can hit every feature, rarely
        out[f"{mod}_profile"] = prof
    return out


def widen(profile: np.ndarray, width: int, rng: np.random.Generator) -> np.ndarray:
    """Tile (or subsample) per-type feature profiles ``(types, n_real)`` to ``width`` features; rows sum to 1.

    Wider: whole copies of the real features, every copy after the first weighted by a log-normal factor
    (sigma 0.5) shared across types. Narrower: a random subset of the real features.
    """
    n_real = profile.shape[1]
    if width <= n_real:
        idx, jitter = np.sort(rng.choice(n_real, width, replace=False)), np.ones(width)
    else:
        idx = np.tile(np.arange(n_real), -(-width // n_real))[:width]
        jitter = np.where(np.arange(width) < n_real, 1.0, rng.lognormal(0.0, 0.5, width))
    wide = profile[:, idx] * jitter
    return wide / wide.sum(axis=1, keepdims=True)


def sample_counts(depth: np.ndarray, types: np.ndarray, cdfs: np.ndarray, rng: np.random.Generator):
    """CSR counts: cell ``i`` gets ``depth[i]`` draws from the feature distribution of its type (``cdfs[type]``)."""
    from scipy import sparse

    n, width = len(depth), cdfs.shape[1]
    blocks = []
    for start in range(0, n, CHUNK_CELLS):
        stop = min(start + CHUNK_CELLS, n)
        d, t = depth[start:stop], types[start:stop]
        rows = np.repeat(np.arange(stop - start), d)
        cols = np.empty(rows.size, dtype=np.int64)
        draw_type = t[rows]
        for ty in np.unique(t):
            hit = draw_type == ty
            cols[hit] = np.searchsorted(cdfs[ty], rng.random(int(hit.sum())), side="right")
        np.minimum(cols, width - 1, out=cols)
        block = sparse.csr_matrix(
            (np.ones(rows.size, dtype=np.float32), (rows, cols)), shape=(stop - start, width), dtype=np.float32
        )
        block.sum_duplicates()
        blocks.append(block)
    return sparse.vstack(blocks, format="csr", dtype=np.float32)


def genome_var(n: int, kind: str, rng: np.random.Generator):
    """``var`` of ``n`` synthetic genes or peaks spread over a human-like genome, in genomic order."""
    import pandas as pd

    chroms = list(CHROM_MB)
    share = np.array([CHROM_MB[c] for c in chroms], dtype=float)
    counts = rng.multinomial(n, share / share.sum())
    chrom, start = [], []
    for c, k in zip(chroms, counts, strict=True):
        chrom += [c] * k
        start.append(np.sort(rng.choice(CHROM_MB[c] * 1_000_000 - 10_000, k, replace=False)))
    start = np.concatenate(start).astype(np.int64)
    width = 500 if kind == "peak" else 20_000
    end = start + width
    if kind == "peak":
        names = [f"{c}:{s}-{e}" for c, s, e in zip(chrom, start, end, strict=True)]
    else:
        names = [f"GENE{i:05d}" for i in range(n)]
    return pd.DataFrame({"chrom": chrom, "start": start, "end": end}, index=pd.Index(names))


def make_mudata(
    n_cells: int, n_genes: int, n_peaks: int, prof: dict, seed: int, depth_scale: float | dict[str, float] = 1.0
):
    """A synthetic paired RNA+ATAC MuData of ``n_cells`` cells resampled from the real profiles.

    ``depth_scale`` multiplies every drawn cell's RNA library size and ATAC fragment count (1: as measured); a
    dict ``{"rna": ..., "atac": ...}`` scales each modality on its own.
    """
    import anndata as ad
    import mudata as md
    import pandas as pd

    rng = np.random.default_rng(seed)
    real = rng.integers(0, len(prof["type_of_cell"]), n_cells)
    types = prof["type_of_cell"][real]
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical(prof["types"][types]), "batch": pd.Categorical(prof["batch"][real])},
        index=pd.Index([f"cell{i}" for i in range(n_cells)]),
    )
    mods = {}
    for mod, width, kind in (("rna", n_genes, "gene"), ("atac", n_peaks, "peak")):
        cdfs = np.cumsum(widen(prof[f"{mod}_profile"], width, rng), axis=1)
        scale = depth_scale[mod] if isinstance(depth_scale, dict) else depth_scale
        depth = np.round(prof[f"{mod}_depth"][real] * scale).astype(np.int64)
        X = sample_counts(depth, types, cdfs, rng)
        mods[mod] = ad.AnnData(X=X, obs=obs.copy(), var=genome_var(width, kind, rng))
    mdata = md.MuData(mods)
    mdata.obs = obs.copy()
    return mdata


def sparse_gb(X) -> float:
    """Size of a CSR matrix (data + indices + indptr) in GiB."""
    return (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 1024**3
