"""`scmamba train` saves model and embeddings before any report; its reports handle mosaic data (issue 34, 7)."""

import json

import mudata as md
import numpy as np
import pytest
from conftest import TINY

import scmamba.metrics._summary
from scmamba.cli import main


@pytest.fixture(scope="module")
def mosaic_h5mu(demo_mdata, tmp_path_factory):
    """300 demo cells: 200 paired, 50 RNA only, 50 ATAC only."""
    m = demo_mdata[:300].copy()
    names = m.obs_names
    mosaic = md.MuData({"rna": m["rna"][names[:250]].copy(), "atac": m["atac"][np.r_[0:200, 250:300]].copy()})
    mosaic.obs["cell_type"] = m.obs["cell_type"].reindex(mosaic.obs_names).to_numpy()
    path = tmp_path_factory.mktemp("mosaic") / "mosaic.h5mu"
    mosaic.write_h5mu(path)
    return path


def _train(path, out):
    return main(["train", str(path), "--out", str(out), "--epochs", "2", "--model-kwargs", json.dumps(TINY)])


def test_mosaic_trains_saves_and_reports(mosaic_h5mu, tmp_path):
    out = tmp_path / "out"
    assert _train(mosaic_h5mu, out) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layers"] == {"rna+atac": 200, "rna": 50, "atac": 50}
    assert 0 <= summary["foscttm_rna_vs_atac"] <= 1  # on the 200 paired cells
    assert 0 <= summary["label_knn_agreement_rna_to_atac"] <= 1
    assert 0 <= summary["leiden_ari_joint"] <= 1  # on the 250 cells measured in RNA
    assert (out / "umap.png").stat().st_size > 1000
    assert (out / "model" / "model.pt").exists()
    embedded = md.read_h5mu(out / "embedded.h5mu")
    assert np.isfinite(embedded.obsm["X_scmamba"]).all()
    assert np.isnan(embedded.obsm["X_scmamba_rna"]).all(1).sum() == 50  # the ATAC-only cells
    assert embedded.obs["scmamba_layers"].value_counts().to_dict() == {"rna+atac": 200, "rna": 50, "atac": 50}


def test_a_failing_report_loses_no_work(mosaic_h5mu, tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ValueError("`x` contains NaN or infinite values.")

    monkeypatch.setattr(scmamba.metrics._summary, "foscttm", broken)
    monkeypatch.setattr(scmamba.metrics._summary, "ari_nmi_leiden", broken)
    out = tmp_path / "out"
    assert _train(mosaic_h5mu, out) == 0
    err = capsys.readouterr().err
    assert "note: the cross-modal alignment report skipped: `x` contains NaN" in err
    assert "note: the clustering report skipped" in err
    assert (out / "model" / "model.pt").exists() and (out / "embedded.h5mu").exists()
    assert md.read_h5mu(out / "embedded.h5mu").obsm["X_scmamba"].shape == (300, 16)
    assert "foscttm_rna_vs_atac" not in json.loads((out / "summary.json").read_text())


def test_a_bug_is_not_a_user_error(mosaic_h5mu, tmp_path, monkeypatch):
    """Only errors the user can fix exit with code 2; a TypeError from inside the package shows its traceback."""

    def bug(*args, **kwargs):
        raise TypeError("unsupported operand type(s)")

    monkeypatch.setattr(scmamba.metrics._summary, "summarize_embeddings", bug)
    monkeypatch.setattr(scmamba.metrics, "summarize_embeddings", bug)
    with pytest.raises(TypeError, match="unsupported operand"):
        _train(mosaic_h5mu, tmp_path / "out")
    assert (tmp_path / "out" / "model" / "model.pt").exists()  # the work was saved before
