"""The command line: `scmamba train` writes embeddings, model, UMAP and a summary."""

import json

import mudata as md
from conftest import TINY

from scmamba.cli import main


def test_scmamba_train_writes_outputs(demo_mdata, tmp_path):
    path = tmp_path / "in.h5mu"
    demo_mdata[:300].copy().write_h5mu(path)
    out = tmp_path / "out"
    kwargs = json.dumps(TINY)
    assert main(["train", str(path), "--out", str(out), "--epochs", "2", "--batch-key", "batch",
                 "--model-kwargs", kwargs]) == 0  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cells"] == 300 and summary["features"] == {"rna": 1677, "atac": 24744}
    assert 0 <= summary["foscttm_rna_vs_atac"] <= 1
    assert 0 <= summary["label_knn_agreement_rna_to_atac"] <= 1
    assert (out / "umap.png").stat().st_size > 1000
    assert (out / "model" / "model.pt").exists()
    embedded = md.read_h5mu(out / "embedded.h5mu")
    assert embedded.obsm["X_scmamba"].shape == (300, 16)
    assert {"X_scmamba_rna", "X_scmamba_atac"} <= set(embedded.obsm)
    # the input file is untouched
    assert "X_scmamba" not in md.read_h5mu(path).obsm
