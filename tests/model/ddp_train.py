"""Run by tests/test_ddp.py as a script: Lightning's DDP launcher re-executes it once per process (gloo, CPU)."""

import json
import os
import sys

import mudata as md
import numpy as np
import scvi
import torch

md.set_options(pull_on_update=False)
torch.set_num_threads(1)
out = sys.argv[1]

from scmamba import SCMAMBA  # noqa: E402
from scmamba.datasets import snareseq_cortex_demo  # noqa: E402

scvi.settings.seed = 0
mdata = snareseq_cortex_demo()[:512].copy()
SCMAMBA.setup_mudata(mdata, modalities={"rna_layer": "rna", "atac_layer": "atac"})
model = SCMAMBA(mdata, n_latent=16, d_model=32, n_layers=1, d_state=16, headdim=16, chunk_size=16, dropout=0.0,
                patch_size={"rna": 64, "atac": 512})  # fmt: skip
model.train(
    max_epochs=4,
    batch_size=64,
    lr=3e-3,
    accelerator="cpu",
    devices=2,
    strategy="ddp_find_unused_parameters_true",
    datasplitter_kwargs={"drop_dataset_tail": True},
    enable_progress_bar=False,
)
rank = model.trainer.global_rank if hasattr(model, "trainer") else int(os.environ.get("RANK", 0))
if rank == 0:
    z = model.get_latent_representation()
    np.save(os.path.join(out, f"embedding_rank{rank}.npy"), z)
    hist = model.history
    json.dump(
        {
            "world_size": model.trainer.world_size,
            "train_loss": hist["train_loss"].values.ravel().tolist(),
            "n_contrast": hist["n_contrast_train"].values.ravel().tolist(),
        },
        open(os.path.join(out, "history.json"), "w"),
    )
    model.save(os.path.join(out, "model"), overwrite=True)
