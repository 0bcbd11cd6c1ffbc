# %% [markdown]
# # Trajectories on the joint embedding (bone-marrow B-cell development)
#
# Diffusion pseudotime (scanpy's DPT) on the SCMAMBA joint embedding from a root cell type, then a check that
# the RNA and the protein embeddings order the same cells the same way (per-modality pseudotime consistency and
# trajectory conservation, as in the scMamba paper). Data: the Abseq bone marrow set, B lineage
# (HSCs & MPPs → developing B cells → mature and memory B cells).

# %%
import os

import mudata as md
import numpy as np
import scanpy as sc

import scmamba
from scmamba import SCMAMBA

QUICK = os.environ.get("SCMAMBA_TUTORIAL_QUICK") == "1"
md.set_options(pull_on_update=False)
LINEAGE = ["HSCs & MPPs", "Developing B cells", "Mature and memory B cells"]

# %%
mdata = scmamba.datasets.abseq_bone_marrow()
if QUICK:
    mdata = mdata[np.sort(np.random.default_rng(0).choice(mdata.n_obs, 800, replace=False))].copy()
SCMAMBA.setup_mudata(mdata, batch_key="batch", modalities={"rna_layer": "rna", "protein_layer": "prot"})
model = SCMAMBA(mdata, **(SCMAMBA.small_config() if QUICK else {}))
model.train(max_epochs=2 if QUICK else 30, enable_progress_bar=not QUICK)

# %%
lineage = mdata[mdata.obs["cell_type"].isin(LINEAGE).values].copy()
lineage.obsm["X_scmamba"] = model.get_latent_representation(lineage)
dpt = scmamba.tl.pseudotime(lineage, root_key="cell_type", root_value="HSCs & MPPs")
lineage.obs.groupby("cell_type", observed=True)["scmamba_pseudotime"].median().loc[LINEAGE]

# %% active="py"
print(lineage.obs.groupby("cell_type", observed=True)["scmamba_pseudotime"].median().loc[LINEAGE])

# %% [markdown]
# Pseudotime should rise from stem cells through developing to mature B cells.

# %%
sc.pp.neighbors(lineage, use_rep="X_scmamba")
sc.tl.umap(lineage)
sc.pl.umap(lineage, color=["cell_type", "scmamba_pseudotime"], ncols=1, show=not QUICK)

# %% [markdown]
# ## Do both modalities tell the same story?
# DPT on the RNA embedding and on the protein embedding from the same root cell: Pearson/Spearman between the
# two pseudotimes of matched cells, and trajectory conservation `(spearman + 1) / 2`.

# %%
root = int(np.flatnonzero(lineage.obs["cell_type"].values == "HSCs & MPPs")[0])
z_rna = model.get_latent_representation(lineage, modality="rna")
z_prot = model.get_latent_representation(lineage, modality="protein")
scmamba.tl.modality_pseudotime_consistency(z_rna, z_prot, root_index=root)

# %% active="py"
print(scmamba.tl.modality_pseudotime_consistency(z_rna, z_prot, root_index=root))

# %% active="py"
# Run as a script, where nothing shows the figures: save each one in the working folder.
import matplotlib.pyplot as plt

stem = os.path.splitext(os.path.basename(__file__))[0]
for i, num in enumerate(plt.get_fignums(), 1):
    plt.figure(num).savefig(f"{stem}_fig{i}.png", bbox_inches="tight")
print(f"{len(plt.get_fignums())} figures saved as {stem}_fig<N>.png")
