"""The tutorials run end to end (quick mode: few cells, 1-2 epochs, the small model); stored notebooks match them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from conftest import shared_file

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"
SCRIPTS = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
#: Tutorials on the Abseq data set, which scmamba.datasets downloads and converts (here from a file:// mirror).
NEEDS_ABSEQ = {"02_rna_protein_donors.py", "03_label_transfer.py", "05_trajectory.py", "07_cross_modal_prediction.py"}


@pytest.fixture(scope="module")
def data_env(tmp_path_factory):
    """The loaders' mirror (``../shared/data/upstream`` as ``file://``) and one cache folder for all tutorials."""
    return {
        "SCMAMBA_DATA_URL": shared_file("upstream").as_uri(),
        "SCMAMBA_DATA_DIR": str(tmp_path_factory.mktemp("scmamba_data")),
    }


def test_stored_notebooks_have_the_code_of_their_scripts():
    """A notebook the docs render must come from the script as it is now (rerun tutorials/execute.py otherwise)."""
    stored = [s for s in SCRIPTS if s.with_suffix(".ipynb").exists()]
    if not stored:
        pytest.skip("no executed notebook is stored in tutorials/ yet")
    for script in stored:
        code = [c.source for c in jupytext.read(script).cells if c.cell_type == "code"]
        notebook = nbformat.read(script.with_suffix(".ipynb"), as_version=4)
        assert [c.source for c in notebook.cells if c.cell_type == "code"] == code, script.name
        assert any(c.outputs for c in notebook.cells if c.cell_type == "code"), f"{script.name} has no outputs"


# 01 is executed by tests/docs/test_docs.py through tutorials/execute.py, whose notebook the docs then render.
@pytest.mark.slow
@pytest.mark.parametrize("script", [s for s in SCRIPTS if not s.name.startswith("01_")], ids=lambda p: p.stem)
def test_tutorial_runs(script, tmp_path, data_env):
    env = {**os.environ, "SCMAMBA_TUTORIAL_QUICK": "1", "MPLBACKEND": "Agg"}
    if script.name in NEEDS_ABSEQ:  # the first one downloads and converts the data set, the others read the cache
        env.update(data_env)
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
