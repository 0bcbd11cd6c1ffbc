"""Shared fixtures: small real subsets of the shipped demo data and of ../shared, and one trained model."""

from __future__ import annotations

import os
from pathlib import Path

import mudata as md
import numpy as np
import pytest
import scvi
import torch

from scmamba import SCMAMBA

md.set_options(pull_on_update=False)
torch.set_num_threads(2)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

#: The package's small configuration without dropout (the defaults are for real runs).
TINY = {**SCMAMBA.small_config(), "dropout": 0.0}


def dropout_rates(model) -> dict[str, list[float]]:
    """The dropout rates in each modality's encoder of ``model``."""
    return {
        m: sorted({mod.p for mod in enc.modules() if isinstance(mod, torch.nn.Dropout)})
        for m, enc in model.module.encoders.items()
    }


def pytest_collection_modifyitems(items):
    """The benchmark scripts' smoke runs (``test_benchmarks.py::test_*_quick``) are slow tests (``-m slow``)."""
    for item in items:
        if item.path.name == "test_benchmarks.py" and getattr(item, "originalname", "").endswith("_quick"):
            item.add_marker(pytest.mark.slow)


def shared_file(name: str) -> Path:
    """``../shared/data/<name>``; a test that needs it skips where it is missing, and fails in CI (``CI=true``)."""
    path = SHARED / name
    if not path.exists():
        reason = f"{path} is not available (the shared data folder sits beside the checkout)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{reason}; CI must run the real-data tests", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def demo_mdata():
    """The shipped SNARE-seq subset (2,500 cells, all genes and peaks); tests take copies."""
    from scmamba.datasets import snareseq_cortex_demo

    return snareseq_cortex_demo()


@pytest.fixture(scope="session")
def split(demo_mdata):
    rng = np.random.default_rng(0)
    perm = rng.permutation(demo_mdata.n_obs)
    return np.sort(perm[500:]), np.sort(perm[:500])


@pytest.fixture(scope="session")
def trained(demo_mdata, split):
    """SCMAMBA trained on 2,000 reference cells of the demo data; 500 held-out query cells."""
    scvi.settings.seed = 0
    ref_idx, query_idx = split
    ref, query = demo_mdata[ref_idx].copy(), demo_mdata[query_idx].copy()
    SCMAMBA.setup_mudata(ref, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac"})
    model = SCMAMBA(ref, **TINY)
    model.train(max_epochs=12, batch_size=128, lr=2e-3, train_size=0.9, enable_progress_bar=False)
    return model, ref, query
