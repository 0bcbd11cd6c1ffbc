"""Out-of-core data: a MuData read with ``backed="r"`` trains, and its cells get the same embeddings as in memory."""

from __future__ import annotations

import mudata as md
import numpy as np
import scvi
from conftest import TINY

from scmamba import SCMAMBA
from scmamba.metrics import foscttm


def test_backed_mudata_trains_and_embeds_like_in_memory(demo_mdata, tmp_path):
    path = tmp_path / "demo600.h5mu"
    demo_mdata[:600].copy().write_h5mu(path, compression="gzip")  # compressed, as the shipped file; 600 cells suffice
    backed = md.read_h5mu(path, backed="r")
    assert backed.isbacked and not isinstance(backed.mod["atac"].X, np.ndarray)
    scvi.settings.seed = 0
    SCMAMBA.setup_mudata(backed, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac"})
    model = SCMAMBA(backed, **TINY)
    model.train(max_epochs=6, batch_size=64, lr=2e-3, enable_progress_bar=False)
    z = {m: model.get_latent_representation(modality=m) for m in ("rna", "atac")}
    in_memory = md.read_h5mu(path)
    # minibatches read from the file are the same cells and counts as in memory
    for m in ("rna", "atac"):
        np.testing.assert_allclose(z[m], model.get_latent_representation(in_memory, modality=m), atol=1e-5)
    assert np.isfinite(model.history["train_loss"].to_numpy(dtype=float)).all()
    assert foscttm(z["rna"], z["atac"]) < 0.3  # it learned from the file-backed minibatches (random: 0.5)
