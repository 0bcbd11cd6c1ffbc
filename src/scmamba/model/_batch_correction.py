"""Fitting the donor correction of the joint embedding (``SCMAMBA(batch_correction='harmony')``) with harmonypy.

The model's own batch handling (batch-conditioned decoders, the batch adversary) moves donor structure globally, but
neighbourhoods stay donor-pure; Harmony's soft-cluster regression mixes them locally while keeping cell types apart,
and on the model's embedding it keeps identity (``benchmarks/README.md``, regime table). harmonypy fits it; the
per-cluster ridge coefficients are recomputed here from harmonypy's final memberships (harmonypy does not return
them), so that :class:`scmamba.nn.LatentCorrection` can apply the same correction to any cell of a known batch.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

#: harmonypy's defaults, named here because the correction is rebuilt from them: ``theta`` (the diversity penalty,
#: the strength of the mixing: 0 clusters without regard to batch, larger values push each cluster toward the batch
#: mix of the data), ``sigma`` (soft-clustering bandwidth) and ``alpha`` (the ridge penalty per cluster and batch is
#: ``alpha`` times the batch's expected number of cells in the cluster, harmony2's estimate).
HARMONY_DEFAULTS = {"theta": 2.0, "sigma": 0.1, "alpha": 0.2}
#: Cells the correction is fitted on (a random subset beyond): Harmony's clusters and offsets are stable well below
#: this, and fitting stays seconds to a minute at atlas scale.
CORRECTION_CELLS = 50_000


def check_batch_correction(batch_correction) -> dict | None:
    """Harmony's settings from ``SCMAMBA(batch_correction=...)``; ``None`` when off. Errors say what to pass."""
    if batch_correction is None or batch_correction is False:
        return None
    if batch_correction == "harmony":
        return dict(HARMONY_DEFAULTS)
    if isinstance(batch_correction, Mapping):
        unknown = set(batch_correction) - set(HARMONY_DEFAULTS) - {"nclust", "max_iter_harmony"}
        if unknown:
            raise ValueError(
                f"batch_correction as a dict takes Harmony's settings {sorted(HARMONY_DEFAULTS)} (and 'nclust', "
                f"'max_iter_harmony'); got {sorted(unknown)}. For example batch_correction={{'theta': 1.0}} mixes "
                "donors less than the default (theta 2)."
            )
        return {**HARMONY_DEFAULTS, **batch_correction}
    raise ValueError(
        f"batch_correction must be 'harmony', None (no correction) or a dict of Harmony settings such as "
        f"{{'theta': 1.0}}, got {batch_correction!r}."
    )


def fit_latent_correction(
    z: np.ndarray, batch: np.ndarray, n_batch: int, settings: Mapping, seed: int = 0, n_threads: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Harmony's correction of embeddings ``z`` ``(cells, latent)`` of cells in batches ``batch`` (codes < ``n_batch``).

    Returns ``centroids`` ``(clusters, latent)``, ``sigma`` ``(clusters,)`` and ``offsets`` ``(clusters, n_batch,
    latent)`` for :meth:`scmamba.nn.LatentCorrection.set`; batches without cells in ``z`` get zero offsets.
    """
    import harmonypy

    settings = dict(settings)
    alpha = float(settings.pop("alpha"))
    rng = np.random.default_rng(seed)
    keep = np.isfinite(z).all(1)
    rows = np.flatnonzero(keep)
    if len(rows) > CORRECTION_CELLS:
        rows = np.sort(rng.choice(rows, CORRECTION_CELLS, replace=False))
    z, batch = np.asarray(z[rows], dtype=np.float64), np.asarray(batch[rows]).astype(np.int64)
    present = np.unique(batch)
    meta = pd.DataFrame({"batch": pd.Categorical(batch, categories=present)})
    ho = harmonypy.run_harmony(
        z, meta, "batch", alpha=alpha, random_state=seed, verbose=False, ncores=n_threads, **settings
    )
    R = np.asarray(ho.R)  # (cells, clusters)
    Y = np.asarray(ho.Y).T  # (clusters, latent), unit norm
    # the per-cluster ridge regression of harmony's correction step, on its final memberships
    onehot = (batch[:, None] == present[None, :]).astype(np.float64)
    phi = np.hstack([np.ones((len(z), 1)), onehot])  # intercept + batches
    prior = onehot.mean(0)
    offsets = np.zeros((Y.shape[0], n_batch, z.shape[1]))
    for k in range(Y.shape[0]):
        weighted = phi * R[:, k : k + 1]
        penalty = np.diag(np.concatenate([[0.0], alpha * R[:, k].sum() * prior]))
        coef = np.linalg.solve(phi.T @ weighted + penalty + 1e-8 * np.eye(phi.shape[1]), weighted.T @ z)
        offsets[k, present] = coef[1:]
    sigma = np.broadcast_to(np.asarray(settings.get("sigma", HARMONY_DEFAULTS["sigma"]), float), (Y.shape[0],))
    return Y.astype(np.float32), np.ascontiguousarray(sigma, dtype=np.float32), offsets.astype(np.float32)
