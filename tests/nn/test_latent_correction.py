"""The donor correction kept as a function of the embedding reproduces Harmony and applies to new cells."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from harmonypy import compute_lisi, run_harmony

from scmamba.model._batch_correction import HARMONY_DEFAULTS, check_batch_correction, fit_latent_correction
from scmamba.nn import LatentCorrection


def _two_donors(n: int = 600, d: int = 16, seed: int = 0):
    """Three cell types; the second donor is shifted along a direction of its own: neighbourhoods are donor-pure."""
    rng = np.random.default_rng(seed)
    types = rng.integers(0, 3, n)
    batch = rng.integers(0, 2, n)
    centres = rng.normal(size=(3, d)) * 3
    shift = rng.normal(size=d) * 1.5
    z = centres[types] + rng.normal(size=(n, d)) * 0.5 + batch[:, None] * shift
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    return z.astype(np.float32), batch, types


def _lisi(z, labels):
    return float(np.median(compute_lisi(z, pd.DataFrame({"x": labels}), ["x"])))


def _fitted(z, batch, n_batch=2):
    correction = LatentCorrection(z.shape[1])
    correction.set(*(torch.from_numpy(a) for a in fit_latent_correction(z, batch, n_batch, HARMONY_DEFAULTS)))
    return correction


def test_identity_until_fitted():
    z, batch, _ = _two_donors()
    correction = LatentCorrection(z.shape[1])
    assert not correction.fitted
    out = correction(torch.from_numpy(z), torch.from_numpy(batch))
    np.testing.assert_array_equal(out.numpy(), z)


def test_reproduces_harmony_and_mixes_donors_keeping_types():
    z, batch, types = _two_donors()
    correction = _fitted(z, batch)
    out = correction(torch.from_numpy(z), torch.from_numpy(batch)).numpy()
    ho = run_harmony(z.astype(np.float64), pd.DataFrame({"b": pd.Categorical(batch)}), "b", verbose=False)
    reference = np.asarray(ho.Z_corr)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    assert (out * reference).sum(1).mean() > 0.99  # the same correction as harmonypy's, from the kept function
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert _lisi(out, batch) > _lisi(z, batch) + 0.3  # donors mixed
    assert _lisi(out, types) < 1.2  # types still apart


def test_new_cells_of_known_batches_are_corrected_and_unknown_ones_left_alone():
    z, batch, _ = _two_donors()
    correction = _fitted(z[:400], batch[:400])
    new = torch.from_numpy(z[400:])
    out = correction(new, torch.from_numpy(batch[400:])).numpy()
    assert _lisi(out, batch[400:]) > _lisi(z[400:], batch[400:]) + 0.3
    unknown = correction(new, torch.full((len(new),), 2)).numpy()  # a batch the correction was not fitted on
    np.testing.assert_array_equal(unknown, z[400:])
    with_nan = new.clone()
    with_nan[0] = float("nan")
    assert torch.isnan(correction(with_nan, torch.from_numpy(batch[400:]))[0]).all()


def test_state_dict_round_trip_takes_the_saved_sizes():
    z, batch, _ = _two_donors()
    correction = _fitted(z, batch)
    fresh = LatentCorrection(z.shape[1])
    fresh.load_state_dict(correction.state_dict())
    x, b = torch.from_numpy(z), torch.from_numpy(batch)
    torch.testing.assert_close(fresh(x, b), correction(x, b))


def test_settings_and_their_errors():
    assert check_batch_correction(None) is None
    assert check_batch_correction("harmony") == HARMONY_DEFAULTS
    assert check_batch_correction({"theta": 1.0})["theta"] == 1.0
    with pytest.raises(ValueError, match=r"batch_correction=\{'theta': 1.0\}") as info:
        check_batch_correction({"strength": 1.0})
    # the advice in the message works
    assert check_batch_correction(eval(str(info.value).split("batch_correction=")[-1].split(" mixes")[0]))
    with pytest.raises(ValueError, match="'harmony', None"):
        check_batch_correction("scvi")
