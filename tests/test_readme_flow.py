"""The README's notebook flow on a real data set above 10k cells, with scanpy's neighbours, UMAP and Leiden.

scanpy switches from exact to approximate neighbours (pynndescent) above 8,192 cells, so only a test this size
sees whether the installed scanpy / pynndescent / scipy work together (pyproject.toml constrains them).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mudata as md
import numpy as np
import pytest
import scanpy as sc
import scvi
from conftest import TINY, shared_file
from packaging.requirements import Requirement

from scmamba import SCMAMBA

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_installed_packages_satisfy_pyproject():
    """What pip installs for ``.[test]`` is what the constraints say (a stale environment fails here first)."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]
    wrong = []
    for req in requirements:
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            wrong.append(f"{req.name} is not installed")
            continue
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            wrong.append(f"{req.name} {installed} does not satisfy {req.specifier}")
    assert not wrong, "; ".join(wrong) + ' — reinstall with pip install -e ".[test]"'


@pytest.mark.slow  # 10k cells: neighbours, UMAP and Leiden take minutes on 2 cores
def test_readme_flow_on_10k_cells(tmp_path):
    mdata = md.read_h5mu(shared_file("snareseq_mouse_cortex_chen2019.h5mu"))
    assert mdata.n_obs >= 10_000
    scvi.settings.seed = 0
    SCMAMBA.setup_mudata(
        mdata, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac", "batch_key": "rna"}
    )
    model = SCMAMBA(mdata, **TINY)
    model.train(max_epochs=1, batch_size=512, enable_progress_bar=False)
    mdata.obsm["X_scmamba"] = model.get_latent_representation()
    assert mdata.obsm["X_scmamba"].shape == (mdata.n_obs, 16)
    model.save(str(tmp_path / "scmamba_model"))
    model = SCMAMBA.load(str(tmp_path / "scmamba_model"), mdata)
    sc.pp.neighbors(mdata, use_rep="X_scmamba")  # approximate neighbours (pynndescent) at this size
    sc.tl.umap(mdata)
    sc.tl.leiden(mdata, flavor="igraph", n_iterations=2)
    assert mdata.obsp["connectivities"].shape == (mdata.n_obs, mdata.n_obs)
    assert np.isfinite(mdata.obsm["X_umap"]).all()
    assert mdata.obs["leiden"].nunique() > 1
