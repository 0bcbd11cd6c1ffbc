# %% [markdown]
# # RNA-only (or ATAC-only) query cells on a multi-omics reference
#
# A reference trained on paired RNA + ATAC can place cells measured in **one** modality into the same space: an
# AnnData of RNA counts goes through the RNA encoder (an ATAC-only AnnData through the ATAC encoder). Genes are
# matched to the reference by name and put in the reference's genomic order; genes the query lacks are filled
# with zeros, with a warning that says how many.
#
# Data: the shipped SNARE-seq subset. Reference = 8 of its 12 libraries (paired); query = the other 4, given as
# RNA only and as ATAC only.

# %%
import os
import warnings

import mudata as md
import numpy as np
from sklearn.metrics import accuracy_score, f1_score

import scmamba
from scmamba import SCMAMBA

QUICK = os.environ.get("SCMAMBA_TUTORIAL_QUICK") == "1"
md.set_options(pull_on_update=False)

# %%
mdata = scmamba.datasets.snareseq_cortex_demo()
libraries = sorted(mdata.obs["batch"].astype(str).unique())
in_ref = mdata.obs["batch"].astype(str).isin(libraries[:8]).values
ref = mdata[in_ref].copy()
rna_query = mdata.mod["rna"][~in_ref].copy()  # an AnnData: RNA only
atac_query = mdata.mod["atac"][~in_ref].copy()  # an AnnData: ATAC only
if QUICK:
    ref = ref[:600].copy()
print(f"reference {ref.n_obs} cells; query {rna_query.n_obs} cells from libraries {libraries[8:]}")

# %%
SCMAMBA.setup_mudata(ref, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac"})
model = SCMAMBA(ref, **(SCMAMBA.small_config() if QUICK else {}))
model.train(max_epochs=2 if QUICK else 20, enable_progress_bar=not QUICK)
ref.obsm["X_scmamba"] = model.get_latent_representation()

# %% [markdown]
# ## Embed single-modality cells
# Here a fifth of the query's genes are dropped on purpose to show the report of zero-filled genes.

# %%
rna_query_partial = rna_query[:, rna_query.var_names[: int(0.8 * rna_query.n_vars)]].copy()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    rna_query_partial.obsm["X_scmamba"] = model.get_latent_representation(rna_query_partial, modality="rna")
print([str(w.message) for w in caught if "zero" in str(w.message)])
rna_query.obsm["X_scmamba"] = model.get_latent_representation(rna_query, modality="rna")
atac_query.obsm["X_scmamba"] = model.get_latent_representation(atac_query, modality="atac")

# %% [markdown]
# ## Transfer labels from the paired reference

# %%
truth = rna_query.obs["cell_type"].astype(str).values
for name, q in (("RNA only", rna_query), ("RNA only, 80% of genes", rna_query_partial), ("ATAC only", atac_query)):
    scmamba.tl.transfer_labels(ref, q, label_key="cell_type")
    pred = q.obs["transferred_cell_type"].astype(str).values
    print(
        f"{name:24s} accuracy {accuracy_score(truth, pred):.3f}, macro-F1 {f1_score(truth, pred, average='macro'):.3f}"
    )

# %%
fig = scmamba.pl.confusion_matrix(truth, rna_query.obs["transferred_cell_type"].values)

# %% [markdown]
# The query cells land among reference cells of their type: a UMAP of reference and RNA-only query together.

# %%
import anndata as ad
import scanpy as sc

both = ad.AnnData(
    obs={
        "cell_type": np.r_[ref.obs["cell_type"].astype(str), truth],
        "set": ["reference"] * ref.n_obs + ["query (RNA only)"] * len(truth),
    },
    obsm={"X_scmamba": np.r_[ref.obsm["X_scmamba"], rna_query.obsm["X_scmamba"]]},
)
sc.pp.neighbors(both, use_rep="X_scmamba")
sc.tl.umap(both)
sc.pl.umap(both, color=["set", "cell_type"], ncols=1, show=not QUICK)

# %% active="py"
# Run as a script, where nothing shows the figures: save each one in the working folder.
import matplotlib.pyplot as plt

stem = os.path.splitext(os.path.basename(__file__))[0]
for i, num in enumerate(plt.get_fignums(), 1):
    plt.figure(num).savefig(f"{stem}_fig{i}.png", bbox_inches="tight")
print(f"{len(plt.get_fignums())} figures saved as {stem}_fig<N>.png")
