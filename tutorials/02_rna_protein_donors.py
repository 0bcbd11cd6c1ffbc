# %% [markdown]
# # RNA + protein integration across donors (Abseq bone marrow)
#
# Paired RNA (a 422-gene targeted panel) and 97 surface proteins of 9,663 human bone-marrow cells from six
# donors (Triana et al. 2021). SCMAMBA bins RNA and protein values into relative levels per cell, so no
# normalisation across donors is needed before training.
#
# {func}`scmamba.datasets.abseq_bone_marrow` downloads the public file once (2.3 MB, from GitHub), checks its SHA-256
# and converts it into a MuData in a cache folder; its docstring says where the data come from, how they are
# converted and under which licence.

# %%
import os

import mudata as md
import numpy as np
import scanpy as sc

import scmamba
from scmamba import SCMAMBA

QUICK = os.environ.get("SCMAMBA_TUTORIAL_QUICK") == "1"
md.set_options(pull_on_update=False)

# %%
mdata = scmamba.datasets.abseq_bone_marrow()
if QUICK:
    mdata = mdata[np.sort(np.random.default_rng(0).choice(mdata.n_obs, 800, replace=False))].copy()
mdata.obs.groupby("batch", observed=True).size()

# %% active="py"
print(mdata.obs.groupby("batch", observed=True).size())

# %% [markdown]
# Proteins have no genomic position; they keep their order and are read 8 per token.

# %%
SCMAMBA.setup_mudata(mdata, batch_key="batch", modalities={"rna_layer": "rna", "protein_layer": "prot"})
model = SCMAMBA(mdata, **(SCMAMBA.small_config() if QUICK else {}))
model.train(max_epochs=2 if QUICK else 30, enable_progress_bar=not QUICK)

# %%
mdata.obsm["X_scmamba"] = model.get_latent_representation()
z_rna = model.get_latent_representation(modality="rna")
z_prot = model.get_latent_representation(modality="protein")
print("FOSCTTM RNA vs protein:", round(scmamba.metrics.foscttm(z_rna, z_prot), 3))

# %% [markdown]
# Donors should mix within cell types, and cell types should stay apart.

# %%
sc.pp.neighbors(mdata, use_rep="X_scmamba")
sc.tl.umap(mdata)
sc.pl.umap(mdata, color=["cell_type", "batch", "age_group"], ncols=1, show=not QUICK)

# %%
fig = scmamba.pl.umap_modalities(z_rna, z_prot, mdata.obs["cell_type"].values, modality_names=("RNA", "protein"))

# %%
report = scmamba.metrics.integration_report(
    z_rna, z_prot, mdata.obs["cell_type"].values, bio_embedding=mdata.obsm["X_scmamba"], quick=QUICK
)
{k: round(v, 3) if isinstance(v, float) else v for k, v in report.items()}

# %% active="py"
print("\n".join(f"{k}: {round(v, 3) if isinstance(v, float) else v}" for k, v in report.items()))

# %% active="py"
# Run as a script, where nothing shows the figures: save each one in the working folder.
import matplotlib.pyplot as plt

stem = os.path.splitext(os.path.basename(__file__))[0]
for i, num in enumerate(plt.get_fignums(), 1):
    plt.figure(num).savefig(f"{stem}_fig{i}.png", bbox_inches="tight")
print(f"{len(plt.get_fignums())} figures saved as {stem}_fig<N>.png")
