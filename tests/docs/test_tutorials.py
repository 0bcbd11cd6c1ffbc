"""The tutorials in docs/tutorials run end to end (quick mode: few cells, 1-2 epochs, the small model)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED

TUTORIALS = sorted((Path(__file__).resolve().parents[2] / "docs" / "tutorials").glob("[0-9]*.py"))
NEEDS_SHARED = {"02_rna_protein_donors.py", "03_label_transfer.py", "05_trajectory.py"}


def test_there_are_five_tutorials():
    assert len(TUTORIALS) == 5


@pytest.mark.parametrize("script", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs(script, tmp_path):
    if script.name in NEEDS_SHARED and not (SHARED / "abseq_bonemarrow_triana2021.h5mu").exists():
        pytest.skip("needs ../shared/data/abseq_bonemarrow_triana2021.h5mu")
    env = {**os.environ, "SCMAMBA_TUTORIAL_QUICK": "1", "SCMAMBA_DATA": str(SHARED), "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
