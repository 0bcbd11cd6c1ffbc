"""The command line: `scmamba train` writes embeddings, model, UMAP and a summary."""

import json

import mudata as md
from conftest import TINY

from scmamba.cli import main


def test_scmamba_train_writes_outputs(demo_mdata, tmp_path, capsys):
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
    # the results behind the printed numbers are kept beside the embeddings
    assert embedded.obsm["X_umap"].shape == (300, 2)
    assert embedded.obs["scmamba_leiden"].nunique() > 1
    assert embedded.uns["scmamba_summary"]["leiden_ari_joint"] == summary["leiden_ari_joint"]
    # the progress bar is on stderr; stdout holds the results (the summary ends it)
    captured = capsys.readouterr()
    assert "Epoch" not in captured.out and "Epoch" in captured.err
    assert json.loads(captured.out[captured.out.index('{\n "cells"') : captured.out.rindex("}") + 1]) == summary
    # the input file is untouched
    assert "X_scmamba" not in md.read_h5mu(path).obsm
