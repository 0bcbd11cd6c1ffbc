"""Out-of-core data: a MuData read with ``backed="r"`` trains, and its cells get the same embeddings as in memory."""

from __future__ import annotations

from importlib.resources import as_file, files

import mudata as md
import numpy as np
import scvi
from conftest import TINY

from scmamba import SCMAMBA
from scmamba.metrics import foscttm


def test_backed_mudata_trains_and_embeds_like_in_memory():
    resource = files("scmamba.datasets") / "_data" / "snareseq_cortex_demo.h5mu"
    with as_file(resource) as path:
        backed = md.read_h5mu(path, backed="r")
        assert backed.isbacked and not isinstance(backed.mod["atac"].X, np.ndarray)
        scvi.settings.seed = 0
        SCMAMBA.setup_mudata(backed, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac"})
        model = SCMAMBA(backed, **TINY)
        model.train(max_epochs=4, batch_size=128, lr=2e-3, enable_progress_bar=False)
        z = {m: model.get_latent_representation(modality=m) for m in ("rna", "atac")}
        in_memory = md.read_h5mu(path)
    # minibatches read from the file are the same cells and counts as in memory
    for m in ("rna", "atac"):
        np.testing.assert_allclose(z[m], model.get_latent_representation(in_memory, modality=m), atol=1e-5)
    assert np.isfinite(model.history["train_loss"].to_numpy(dtype=float)).all()
    assert foscttm(z["rna"], z["atac"]) < 0.4  # it learned something from the file-backed minibatches
