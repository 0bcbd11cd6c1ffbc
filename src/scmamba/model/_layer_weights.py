"""Each layer's weight in the joint embedding: the split-half reliability of its embedding, by count thinning.

A layer with a few counts per cell (a sparse ATAC panel, a handful of open peaks) gives an embedding that is mostly
noise, and an equal-weight mean drags the joint embedding toward it. How much a layer's embedding says about a cell
is measured without labels by splitting each cell's counts in two independent halves (binomial thinning, which
for Poisson-like counts gives two independent draws of the same profile: Neufeld et al., *Biostatistics* 2023) and
asking how well the Leiden clusterings of the two halves' embeddings agree (ARI). Cluster agreement rather than
nearest-neighbour overlap: a deeply measured layer with strong cell types (a protein panel) has near-identical
cells whose nearest neighbours are a toss-up, yet clusters the same from either half. Why by hand: no library
computes a thinned split-half reliability of a trained encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from scipy import sparse

from .._counts import iter_row_blocks

#: Cells per layer the reliability is measured on (a random subset beyond): enough for a stable mean overlap,
#: and seconds of embedding at any data size.
RELIABILITY_CELLS = 2000
#: Neighbours of the graphs the two halves are clustered on (scanpy's default).
RELIABILITY_NEIGHBORS = 15


def thin(X: sparse.csr_matrix, rng: np.random.Generator) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """Two halves of each cell's counts: every count goes to one or the other with probability 1/2."""
    counts = np.rint(X.data).astype(np.int64)
    first = rng.binomial(np.maximum(counts, 0), 0.5)
    # each half gets its own index arrays: eliminate_zeros below compacts them in place
    a = sparse.csr_matrix((first.astype(np.float32), X.indices.copy(), X.indptr.copy()), shape=X.shape)
    b = sparse.csr_matrix(((counts - first).astype(np.float32), X.indices.copy(), X.indptr.copy()), shape=X.shape)
    a.eliminate_zeros()
    b.eliminate_zeros()
    return a, b


def cluster_agreement(x: np.ndarray, y: np.ndarray, k: int, seed: int = 0) -> float:
    """ARI between the Leiden clusterings (resolution 1) of the ``k``-NN graphs of ``x`` and of ``y`` (same rows)."""
    import anndata as ad
    import scanpy as sc
    from sklearn.metrics import adjusted_rand_score

    labels = []
    for z in (x, y):
        a = ad.AnnData(np.zeros((len(z), 0), dtype=np.float32))
        a.obsm["z"] = np.ascontiguousarray(z, dtype=np.float32)
        sc.pp.neighbors(a, n_neighbors=k, use_rep="z", random_state=seed)
        sc.tl.leiden(a, flavor="igraph", n_iterations=2, directed=False, random_state=seed)
        labels.append(a.obs["leiden"].to_numpy())
    return float(max(adjusted_rand_score(*labels), 0.0))


def layer_reliability(
    matrices: Mapping[str, object],
    embed: Callable[[str, sparse.csr_matrix], np.ndarray],
    *,
    n_cells: int = RELIABILITY_CELLS,
    k: int = RELIABILITY_NEIGHBORS,
    seed: int = 0,
) -> dict[str, float]:
    """Split-half reliability of each layer's embedding (0: the halves cluster at random, 1: identically).

    ``matrices`` maps each layer to its raw counts (the registered matrix: only cells measured in it);
    ``embed(layer, counts)`` embeds a CSR block of them.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for layer, X in matrices.items():
        n = X.shape[0]
        rows = np.sort(rng.choice(n, n_cells, replace=False)) if n > n_cells else np.arange(n)
        if len(rows) < 3:
            out[layer] = 0.0
            continue
        counts = sparse.vstack([block for _, block in iter_row_blocks(X, rows)]).tocsr()
        half_a, half_b = thin(counts, rng)
        out[layer] = cluster_agreement(embed(layer, half_a), embed(layer, half_b), k)
    return out


#: Exponent of the reliability odds in the layer weights (chosen on benchmarks/regime.py's table).
WEIGHT_POWER = 2.0


def reliability_weights(reliability: Mapping[str, float], power: float = WEIGHT_POWER) -> dict[str, float]:
    """Layer weights (summing to 1) proportional to ``(r / (1 - r)) ** power`` of each layer's reliability ``r``.

    The odds, a signal-to-noise ratio, rather than ``r`` itself: a layer near chance level gets almost no weight,
    and two equally reliable layers share the embedding evenly.
    """
    odds = {m: (max(r, 1e-3) / max(1.0 - r, 1e-3)) ** power for m, r in reliability.items()}
    total = sum(odds.values())
    return {m: o / total for m, o in odds.items()}


def measure_layer_weights(module, matrices: Mapping[str, object], batch_size: int) -> dict[str, float]:
    """Measure each layer's reliability with ``module``'s encoders and set ``module.layer_weights``; returns it."""
    import torch

    from .._malloc import reuse_freed_memory
    from ..nn import SparseRows

    device = next(module.parameters()).device

    def embed(modality: str, X: sparse.csr_matrix) -> np.ndarray:
        chunks = []
        for start in range(0, X.shape[0], batch_size):
            counts = SparseRows.from_scipy(X[start : start + batch_size], device=device)
            chunks.append(module.embed(modality, counts).cpu().numpy())
        return np.concatenate(chunks)

    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode(), reuse_freed_memory(), module.frozen_tokenizers():
            reliability = layer_reliability(matrices, embed)
    finally:
        module.train(was_training)
    weights = reliability_weights(reliability)
    module.layer_weights.copy_(torch.as_tensor([weights[m] for m in module.modalities]))
    return reliability
