"""Run by test_ddp_stream.py: Lightning's DDP launcher re-executes it once per process (gloo, CPU), training from
the stream; each process saves the cells of its share of the first epoch."""

import os
import sys

import mudata as md
import numpy as np
import scvi
import torch
from lightning.pytorch.callbacks import Callback

md.set_options(pull_on_update=False)
torch.set_num_threads(1)
out = sys.argv[1]

from scmamba import SCMAMBA  # noqa: E402
from scmamba.datasets import snareseq_cortex_demo  # noqa: E402


class SaveShare(Callback):
    """Each process writes the cells its training stream reads in epoch 0 and the steps it ran."""

    def on_train_end(self, trainer, pl_module):
        ds = trainer.train_dataloader.dataset
        cells = np.concatenate([b for buf in ds.plan(0) for b in buf])
        np.save(os.path.join(out, f"share_rank{trainer.global_rank}.npy"), cells)
        np.save(os.path.join(out, f"steps_rank{trainer.global_rank}.npy"), np.array([trainer.global_step]))


scvi.settings.seed = 0
path = os.path.join(out, "demo.h5mu")
if not os.path.exists(path) and os.environ.get("LOCAL_RANK", "0") == "0":
    snareseq_cortex_demo()[:384].copy().write_h5mu(path)
mdata = md.read_h5mu(path, backed="r")
SCMAMBA.setup_mudata(mdata, modalities={"rna_layer": "rna", "atac_layer": "atac"})
model = SCMAMBA(mdata, n_latent=16, d_model=32, n_layers=1, d_state=16, headdim=16, chunk_size=16, dropout=0.0,
                patch_size={"rna": 64, "atac": 512})  # fmt: skip
model.train(
    max_epochs=2, batch_size=32, lr=3e-3, accelerator="cpu", devices=2, strategy="ddp_find_unused_parameters_true",
    datasplitter_kwargs={"chunk_size": 16, "buffer_cells": 64}, enable_progress_bar=False, callbacks=[SaveShare()],
)  # fmt: skip
