"""Out-of-core data: a MuData read with ``backed="r"`` trains and embeds exactly like the same data in memory."""

from __future__ import annotations

from importlib.resources import as_file, files

import mudata as md
import numpy as np
import scvi
from conftest import TINY

from scmamba import SCMAMBA


def _train_and_embed(mdata) -> np.ndarray:
    scvi.settings.seed = 0
    SCMAMBA.setup_mudata(mdata, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac"})
    model = SCMAMBA(mdata, **TINY)
    model.train(max_epochs=1, batch_size=256, enable_progress_bar=False)
    return model.get_latent_representation(modality="atac")


def test_backed_mudata_trains_like_in_memory():
    resource = files("scmamba.datasets") / "_data" / "snareseq_cortex_demo.h5mu"
    with as_file(resource) as path:
        backed = md.read_h5mu(path, backed="r")
        assert not isinstance(backed.mod["atac"].X, np.ndarray) and backed.isbacked
        z_backed = _train_and_embed(backed)
        z_memory = _train_and_embed(md.read_h5mu(path))
    np.testing.assert_allclose(z_backed, z_memory, atol=1e-5)
