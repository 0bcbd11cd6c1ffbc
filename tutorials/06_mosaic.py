# %% [markdown]
# # Mosaic data: paired, RNA-only and ATAC-only cells in one space
#
# Most studies have some multiome cells and more single-modality cells: an scRNA-seq and an scATAC-seq experiment
# of the same tissue next to a multiome sample. SCMAMBA trains on such a **mosaic** MuData as it is: a cell absent
# from a modality's `obs` was not measured in it (the MuData convention). The paired cells align the two encoders
# (contrastive terms); every cell also trains the encoder of the layer it has (reconstruction of its own profile).
# Afterwards every cell has an embedding in the shared space, and `scmamba.tl.match_cells` finds, for each
# ATAC-only cell, the RNA-only cells most like it and transfers their labels.
#
# Data: SNARE-seq adult mouse cortex (Chen et al. 2019), every cell measured in both layers. To know the answer we
# build a mosaic from it: the cells are split at random into thirds, and the ATAC layer of one third and the RNA
# layer of another are dropped. (`benchmarks/mosaic.py` runs the same comparison with MULTIVI, and the Abseq RNA +
# protein data set; a protein mosaic is set up the same way with `protein_layer`.)

# %%
import os

import mudata as md
import numpy as np
from sklearn.metrics import accuracy_score, f1_score

import scmamba
from scmamba import SCMAMBA

QUICK = os.environ.get("SCMAMBA_TUTORIAL_QUICK") == "1"
md.set_options(pull_on_update=False)

# %%
# quick mode: the shipped subset, no download
paired = scmamba.datasets.snareseq_cortex_demo()[:600].copy() if QUICK else scmamba.datasets.snareseq_mouse_cortex()
third = np.random.default_rng(0).permutation(np.arange(paired.n_obs) % 3)  # 0 paired, 1 RNA only, 2 ATAC only
truth = np.array(["rna+atac", "rna", "atac"])[third]

mdata = md.MuData({"rna": paired["rna"][third != 2].copy(), "atac": paired["atac"][third != 1].copy()})
mdata = mdata[paired.obs_names].copy()  # keep the original cell order
mdata.obs = paired.obs[["cell_type", "batch"]].copy()  # cell-level columns for every cell, measured in either
mdata

# %% active="py"
print(mdata)

# %% [markdown]
# ## Set up and train on the mosaic
# `setup_mudata` reports the mosaic (at INFO level and in the model's summary). The batch column must cover every
# cell, so it is read from `mdata.obs`, not from one modality.

# %%
SCMAMBA.setup_mudata(mdata, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac"})
model = SCMAMBA(mdata, **(SCMAMBA.small_config() if QUICK else {}))
print(model)
model.train(max_epochs=2 if QUICK else 50, enable_progress_bar=not QUICK)

# %% [markdown]
# ## One embedding per cell
# The joint embedding of a paired cell is the weighted mean of its two layers' embeddings; a single-layer cell's
# is its layer's embedding, in the same space. `get_latent_layers` says which layers each row used; a single
# modality's embedding (`modality="rna"`) is NaN for the cells not measured in it.

# %%
mdata.obsm["X_scmamba"] = model.get_latent_representation()
mdata.obs["scmamba_layers"] = model.get_latent_layers()
mdata.obs["scmamba_layers"].value_counts()

# %% active="py"
print(mdata.obs["scmamba_layers"].value_counts())

# %% [markdown]
# ## Match ATAC-only cells to RNA-only cells
# For every ATAC-only cell, its 15 most similar RNA-only cells (cosine similarity, computed block by block: a
# 100,000 x 100,000 search needs about a gigabyte, not the 40 GB of a dense matrix) and the RNA-only cells'
# `cell_type` voted through them, with the winning vote share as the confidence.

# %%
rna_only, atac_only = (mdata.obs["scmamba_layers"] == "rna").values, (mdata.obs["scmamba_layers"] == "atac").values
matches = scmamba.tl.match_cells(mdata[atac_only], mdata[rna_only], k=15, ref_labels="cell_type")
matches.to_frame().head()

# %% active="py"
print(matches.to_frame().head())

# %%
true_type = mdata.obs["cell_type"][atac_only].astype(str).values
pred = matches.labels["label"].astype(str).values
print(f"accuracy {accuracy_score(true_type, pred):.3f}, macro-F1 {f1_score(true_type, pred, average='macro'):.3f}")
confident = (matches.labels["confidence"] >= 0.5).values
if confident.any():
    print(f"{confident.mean():.0%} of the cells have a confidence >= 0.5; their accuracy "
          f"{accuracy_score(true_type[confident], pred[confident]):.3f}")  # fmt: skip

# %%
fig = scmamba.pl.confusion_matrix(true_type, pred)

# %% [markdown]
# ## How close is each cell to its hidden other half?
# Every RNA-only cell was measured in ATAC too; the mosaic hid it. Embedding the hidden profiles with the trained
# encoders tells how well the single-layer cells were placed: FOSCTTM is the fraction of cells closer to a cell than
# its own other half (0 is perfect, random 0.5).

# %%
z_rna = model.get_latent_representation(paired, modality="rna")
z_atac = model.get_latent_representation(paired, modality="atac")
unpaired = truth != "rna+atac"
print(f"FOSCTTM of the unpaired cells: {scmamba.metrics.foscttm(z_rna[unpaired], z_atac[unpaired]):.3f}")

# %% [markdown]
# A UMAP of every cell, coloured by type and by the layers it was measured in: single-layer cells mix with the
# paired cells of their type.

# %%
import anndata as ad
import scanpy as sc

cells = ad.AnnData(obs=mdata.obs[["cell_type", "scmamba_layers"]].copy(), obsm={"X_scmamba": mdata.obsm["X_scmamba"]})
sc.pp.neighbors(cells, use_rep="X_scmamba")
sc.tl.umap(cells)
sc.pl.umap(cells, color=["cell_type", "scmamba_layers"], ncols=1, show=not QUICK)

# %% active="py"
# Run as a script, where nothing shows the figures: save each one in the working folder.
import matplotlib.pyplot as plt

stem = os.path.splitext(os.path.basename(__file__))[0]
for i, num in enumerate(plt.get_fignums(), 1):
    plt.figure(num).savefig(f"{stem}_fig{i}.png", bbox_inches="tight")
print(f"{len(plt.get_fignums())} figures saved as {stem}_fig<N>.png")
