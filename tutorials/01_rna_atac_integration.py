# %% [markdown]
# # RNA + ATAC integration (SNARE-seq mouse cortex)
#
# This tutorial integrates paired gene expression and chromatin accessibility of the same nuclei with
# {class}`scmamba.SCMAMBA`, on **all** genes and peaks (no highly-variable-feature selection), using the real
# SNARE-seq subset that ships with the package (2,500 adult mouse cortex nuclei, 1,677 genes, 24,744 peaks).
#
# Steps: register the MuData, train, store the joint embedding in `obsm`, then the usual scanpy workflow
# (neighbours, UMAP, Leiden) and a check of how well the two modalities line up.
#
# Runs on a laptop CPU in a few minutes. The test suite runs it with `SCMAMBA_TUTORIAL_QUICK=1` (fewer cells
# and epochs, a smaller model).

# %%
import os

import mudata as md
import scanpy as sc

import scmamba
from scmamba import SCMAMBA

QUICK = os.environ.get("SCMAMBA_TUTORIAL_QUICK") == "1"
md.set_options(pull_on_update=False)

# %% [markdown]
# ## Data
# Raw counts in `.X` of each modality; `obs` has the published cell types and the 12 sequencing libraries.

# %%
mdata = scmamba.datasets.snareseq_cortex_demo()
if QUICK:
    mdata = mdata[:600].copy()
mdata

# %% active="py"
print(mdata)

# %% [markdown]
# ## Set up and train
# `setup_mudata` checks the data (paired cells, raw counts, coordinates) and puts genes and peaks in genomic
# order; the model cuts each cell's profile into patches (genomic regions) that the Mamba2 encoders read as
# tokens.

# %%
SCMAMBA.setup_mudata(mdata, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac"})
model = SCMAMBA(mdata, **(SCMAMBA.small_config() if QUICK else {}))
model

# %% active="py"
print(model)

# %%
model.train(max_epochs=2 if QUICK else 20, enable_progress_bar=not QUICK)
fig = scmamba.pl.training_curves(model)

# %% [markdown]
# ## Embeddings
# The joint embedding (the weighted mean of the two encoders' outputs, `model.layer_weights_`) goes to `obsm` for scanpy; each
# encoder's own embedding shows how well the modalities are aligned. The model trained on every one of these
# cells, so their FOSCTTM is close to 0 (the encoders fit the pairs they see); tutorial 04 embeds cells the
# model never saw.

# %%
mdata.obsm["X_scmamba"] = model.get_latent_representation()
z_rna = model.get_latent_representation(modality="rna")
z_atac = model.get_latent_representation(modality="atac")
print("FOSCTTM (0 = every cell's ATAC profile is closest to its own RNA profile, 0.5 = random):")
print(round(scmamba.metrics.foscttm(z_rna, z_atac), 3))

# %%
sc.pp.neighbors(mdata, use_rep="X_scmamba")
sc.tl.umap(mdata)
sc.tl.leiden(mdata, resolution=1.0, flavor="igraph", n_iterations=2, directed=False)
sc.pl.umap(mdata, color=["cell_type", "leiden", "batch"], ncols=1, show=not QUICK)

# %% active="py"
print(f"{mdata.obs['leiden'].nunique()} Leiden clusters of {mdata.n_obs} cells")

# %% [markdown]
# Both layers in one UMAP: RNA and ATAC profiles of the same cell type should overlap.

# %%
fig = scmamba.pl.umap_modalities(z_rna, z_atac, mdata.obs["cell_type"].values, modality_names=("RNA", "ATAC"))

# %% [markdown]
# ## Metrics of the paper
# {func}`scmamba.metrics.integration_report` computes biology conservation (ARI, NMI, MAP, cASW), omics
# alignment (OEMS, SAS, graph connectivity, oASW) and single-cell alignment (FOSCTTM, matching score).

# %%
report = scmamba.metrics.integration_report(z_rna, z_atac, mdata.obs["cell_type"].values, quick=QUICK)
{k: round(v, 3) if isinstance(v, float) else v for k, v in report.items()}

# %% active="py"
print("\n".join(f"{k}: {round(v, 3) if isinstance(v, float) else v}" for k, v in report.items()))

# %% [markdown]
# ## Save and reload
# The saved model keeps the genomic order of the features, so it reorders new data identically.

# %%
model.save("scmamba_snareseq_model", overwrite=True)
model = SCMAMBA.load("scmamba_snareseq_model", mdata)

# %% active="py"
# Run as a script, where nothing shows the figures: save each one in the working folder.
import matplotlib.pyplot as plt

stem = os.path.splitext(os.path.basename(__file__))[0]
for i, num in enumerate(plt.get_fignums(), 1):
    plt.figure(num).savefig(f"{stem}_fig{i}.png", bbox_inches="tight")
print(f"{len(plt.get_fignums())} figures saved as {stem}_fig<N>.png")
