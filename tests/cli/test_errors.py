"""The command line: every user error is one line on stderr with exit code 2; options for real-world files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import anndata as ad
import mudata as md
import numpy as np
import pytest
from conftest import TINY

from scmamba import SCMAMBA
from scmamba.cli import main


def _code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse exits; main returns
        return e.code


@pytest.fixture(scope="module")
def small_h5mu(demo_mdata, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "small.h5mu"
    demo_mdata[:120].copy().write_h5mu(path)
    return path


def _bad_inputs(tmp_path, demo_mdata, small_h5mu):
    text = tmp_path / "notes.txt"
    text.write_text("cell,gene\n")
    h5ad = tmp_path / "rna.h5ad"
    demo_mdata["rna"][:20].copy().write_h5ad(h5ad)
    out = ["--out", str(tmp_path / "out")]
    return {
        "text file": ([str(text), *out], "notes.txt is not an HDF5 file"),
        "h5ad": ([str(h5ad), *out], r"rna.h5ad is an AnnData \(.h5ad\) file"),
        "missing file": ([str(tmp_path / "nope.h5mu"), *out], "nope.h5mu does not exist"),
        "bad json": ([str(small_h5mu), *out, "--model-kwargs", "{d_model: 8}"],
                     "argument --model-kwargs: is not valid JSON"),
        "json list": ([str(small_h5mu), *out, "--model-kwargs", "[1]"],
                      "argument --model-kwargs: must be a JSON object"),
        "unknown keyword": ([str(small_h5mu), *out, "--model-kwargs", '{"d_modell": 8}'],
                            r"unknown SCMAMBA keyword\(s\) \['d_modell'\].*d_model"),
        "bad value": ([str(small_h5mu), *out, "--model-kwargs", '{"feature_dropout": 2}'], "feature_dropout"),
        "batch key": ([str(small_h5mu), *out, "--batch-key", "library"],
                      r"--batch-key 'library' is not a column of mdata.obs .* nor of mdata.mod\['rna'\].obs"),
        "modality": ([str(small_h5mu), *out, "--atac-mod", "peaks"], r"no modality 'peaks'.*\['rna', 'atac'\]"),
        "layer": ([str(small_h5mu), *out, "--rna-layer", "counts"], r"'counts' is not a layer of modality 'rna'"),
        "epochs": ([str(small_h5mu), *out, "--epochs", "0"], "argument --epochs: must be a positive integer"),
    }  # fmt: skip


CASES = [
    "text file", "h5ad", "missing file", "bad json", "json list", "unknown keyword", "bad value", "batch key",
    "modality", "layer", "epochs",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_user_errors_are_one_line_with_exit_code_2(case, tmp_path, demo_mdata, small_h5mu, capsys):
    argv, message = _bad_inputs(tmp_path, demo_mdata, small_h5mu)[case]
    assert _code(["train", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("scmamba train: error: ")
    import re

    assert re.search(message, err), err


def test_error_in_a_real_process_has_no_traceback(tmp_path):
    (tmp_path / "notes.txt").write_text("not a MuData\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-m", "scmamba.cli", "train", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    # warnings that other packages print at import (e.g. torch about pynvml) depend on the machine; ours is one line
    ours = [line for line in proc.stderr.strip().splitlines() if line.startswith("scmamba")]
    assert ours == [f"scmamba train: error: {tmp_path / 'notes.txt'} is not an HDF5 file (a .h5mu MuData is expected)."]
    assert "Traceback" not in proc.stderr


def test_help_shows_defaults_and_the_data_options(capsys):
    assert _code(["train", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for option in ("--rna-layer", "--atac-layer", "--protein-layer", "--rna-mod", "--atac-mod", "--protein-mod"):
        assert option in out
    assert "one per 50 cells, 10-50" in out and "(default: cell_type)" in out


def test_modality_obs_columns_names_and_layers(demo_mdata, tmp_path, capsys):
    """10x-style file: batch only in the modality obs, custom modality names, counts in a layer, no labels."""
    src = demo_mdata[:160]
    rna = src["rna"].copy()
    rna.layers["counts"] = rna.X.copy()
    rna.X = rna.X.astype(np.float32) / 3.0  # not counts: must not be used
    rna.obs = rna.obs[["batch"]]
    atac = src["atac"].copy()
    atac.obs = atac.obs[[]]
    rng = np.random.default_rng(0)
    mdata = md.MuData({"GeneExpr": rna, "Chromatin": atac[rng.permutation(atac.n_obs)].copy()})
    mdata.obs = mdata.obs[[]]
    path = tmp_path / "tenx.h5mu"
    mdata.write_h5mu(path)
    out = tmp_path / "out"
    argv = ["train", str(path), "--out", str(out), "--epochs", "1", "--batch-key", "batch", "--rna-mod", "GeneExpr",
            "--atac-mod", "Chromatin", "--rna-layer", "counts", "--model-kwargs", json.dumps(TINY)]  # fmt: skip
    assert _code(argv) == 0
    captured = capsys.readouterr()
    assert "label column 'cell_type' is not in mdata.obs nor in a modality's obs" in captured.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cells"] == 160 and not any(k.startswith("label_") for k in summary)
    setup = SCMAMBA.load_registry(out / "model")["setup_args"]  # the folder loads without unpickling
    assert setup["rna_layer"] == "counts" and setup["batch_key"] == "batch"
    assert setup["modalities"] == {"rna_layer": "GeneExpr", "atac_layer": "Chromatin", "batch_key": "GeneExpr"}
    embedded = md.read_h5mu(out / "embedded.h5mu")
    assert list(embedded.obs_names) == list(mdata.obs_names)
    assert not isinstance(embedded, ad.AnnData)
