# %% [markdown]
# # Cross-modal prediction: proteins and accessible peaks of cells measured by RNA alone
#
# {meth}`~scmamba.SCMAMBA.get_normalized_expression` predicts a layer a cell was not measured in from one it was:
# the surface proteins of an scRNA-seq experiment mapped onto a CITE-seq / Abseq reference, or the accessibility of
# cells whose chromatin was never measured. Two methods: `method="neighbors"` averages the measured profiles of the
# reference cells nearest to the cell in SCMAMBA's embedding (the default for protein), `method="decoder"` applies
# the decoder SCMAMBA trains per layer (the reconstruction term; the default for RNA and ATAC), each the better one
# on held-out cells of that kind. {meth}`~scmamba.SCMAMBA.get_predicted_anndata` writes the result into an AnnData
# (the output layer's `var`, the cells' `obs`) for scanpy and muon.
#
# 1. Abseq bone marrow: one donor held out and given as RNA only; its 97 proteins predicted and compared with the
#    measured ones.
# 2. SNARE-seq cortex (shipped subset): four libraries held out as RNA only; predicted accessibility of the peaks
#    linked to marker genes, per cell type, next to the measured accessibility.
#
# `benchmarks/prediction.py` measures the same on all held-out cells, next to TOTALVI, MULTIVI and a nearest-neighbour
# baseline.

# %%
import os

import matplotlib.pyplot as plt
import mudata as md
import numpy as np
import pandas as pd
import scanpy as sc
from scipy.stats import spearmanr

import scmamba
from scmamba import SCMAMBA

QUICK = os.environ.get("SCMAMBA_TUTORIAL_QUICK") == "1"
md.set_options(pull_on_update=False)
sc.settings.verbosity = 0

# %% [markdown]
# ## Proteins of RNA-only cells (Abseq)
# Reference: five donors, paired RNA + protein. Query: donor BM2's RNA alone (an AnnData).

# %%
abseq = scmamba.datasets.abseq_bone_marrow()
held_out = (abseq.obs["batch"] == "BM2").to_numpy()
reference = abseq[~held_out].copy()
rna_query = abseq["rna"][held_out].copy()
measured_protein = abseq["prot"][held_out].copy()
if QUICK:
    reference = reference[:800].copy()
print(f"reference {reference.n_obs} cells; RNA-only query {rna_query.n_obs} cells")

# %%
SCMAMBA.setup_mudata(reference, batch_key="batch", modalities={"rna_layer": "rna", "protein_layer": "prot"})
model = SCMAMBA(reference, **(SCMAMBA.small_config() if QUICK else {}))
model.train(max_epochs=2 if QUICK else None, enable_progress_bar=False)

# %% [markdown]
# Each query cell's RNA embedding finds its 50 nearest reference cells (by their joint embedding); the prediction
# is the mean of their measured protein, CLR-normalised (`log1p` minus the cell's mean, as muon's `prot.pp.clr`).
# `method="decoder"` gives the decoder's prediction instead: each protein's share of the cell's panel.

# %%
predicted = model.get_normalized_expression(rna_query, modality_in="rna", modality_out="protein")
from_decoder = model.get_normalized_expression(rna_query, modality_in="rna", modality_out="protein", method="decoder")
predicted.iloc[:3, :6]

# %% [markdown]
# Per protein, the Spearman correlation over the query cells between predicted and measured (CLR) protein:

# %%
counts = measured_protein.X.toarray() if hasattr(measured_protein.X, "toarray") else measured_protein.X
clr = np.log1p(counts) - np.log1p(counts).mean(axis=1, keepdims=True)


def per_protein_spearman(values: pd.DataFrame) -> pd.Series:
    return pd.Series(
        [spearmanr(values.iloc[:, j], clr[:, j]).statistic for j in range(clr.shape[1])], index=values.columns
    )


rho = per_protein_spearman(predicted)
print(
    f"median Spearman over {len(rho)} proteins: neighbours {rho.median():.3f}, "
    f"decoder {per_protein_spearman(from_decoder).median():.3f}"
)
rho.sort_values(ascending=False).head(10)

# %%
markers = [p for p in ("CD34", "CD3", "CD19", "CD14", "CD56", "CD38") if p in predicted.columns]
fig, axes = plt.subplots(1, len(markers), figsize=(3 * len(markers), 3))
for ax, protein in zip(np.atleast_1d(axes), markers, strict=False):
    j = list(predicted.columns).index(protein)
    ax.scatter(clr[:, j], predicted[protein], s=3, alpha=0.4)
    ax.set_title(f"{protein}  rho {rho[protein]:.2f}")
    ax.set_xlabel("measured (CLR)")
axes[0].set_ylabel("predicted (CLR)")
fig.tight_layout()

# %% [markdown]
# For scanpy: the predictions as a layer of an AnnData whose `var` is the protein layer's; here plotted on the
# query cells' UMAP of their RNA embedding.

# %%
pred_adata = model.get_predicted_anndata(rna_query, modality_in="rna", modality_out="protein")
pred_adata.obsm["X_scmamba"] = model.get_latent_representation(rna_query, modality="rna")
sc.pp.neighbors(pred_adata, use_rep="X_scmamba")
sc.tl.umap(pred_adata)
sc.pl.umap(pred_adata, color=["cell_type", *markers[:3]], layer="scmamba_rna_to_protein", ncols=4, wspace=0.4)

# %% [markdown]
# ## Accessibility of RNA-only cells (SNARE-seq)
# Peaks come back as probabilities of being accessible, from the decoder (most peaks are closed in all of a cell's
# neighbours, so `method="neighbors"` leaves them tied at 0), its shares weighted by each peak's detection rate in the
# reference cells (`peak_prior=1.0`; `peak_prior=0`: the decoder alone). For ~150,000 peaks, `top_k` or `threshold`
# return a sparse matrix instead of a dense one (the docstring states the memory each takes).

# %%
snare = scmamba.datasets.snareseq_cortex_demo()
libraries = sorted(snare.obs["batch"].astype(str).unique())
in_ref = snare.obs["batch"].astype(str).isin(libraries[:8]).to_numpy()
ref = snare[in_ref].copy()
rna_only = snare["rna"][~in_ref].copy()
measured_atac = snare["atac"][~in_ref].copy()
if QUICK:
    ref = ref[:600].copy()
SCMAMBA.setup_mudata(ref, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac"})
atac_model = SCMAMBA(ref, **(SCMAMBA.small_config() if QUICK else {}))
atac_model.train(max_epochs=2 if QUICK else 20, enable_progress_bar=False)

# %%
accessibility = atac_model.get_normalized_expression(rna_only, modality_in="rna", modality_out="atac")
top = atac_model.get_normalized_expression(rna_only, modality_in="rna", modality_out="atac", top_k=2000)
print(accessibility.shape, "dense;", top.sparse.density, "of the top-2,000 matrix stored")

# %% [markdown]
# Peaks linked to marker genes, mean per cell type: predicted (from RNA alone) next to measured.

# %%
marker_genes = ["Slc17a7", "Gad2", "Pvalb", "Sst", "Aqp4", "Mbp", "Pdgfra"]
linked = measured_atac.var["linked_gene"].astype(str)
genes = [g for g in marker_genes if (linked == g).any()]
cell_type = rna_only.obs["cell_type_coarse"].astype(str)
keep = cell_type.map(cell_type.value_counts()) >= 10


def per_type(values: np.ndarray) -> pd.DataFrame:
    """Mean over each marker gene's peaks, then over the cells of each type."""
    frame = pd.DataFrame({g: values[:, (linked == g).to_numpy()].mean(axis=1) for g in genes}, index=cell_type.index)
    return frame[keep.to_numpy()].groupby(cell_type[keep]).mean()


measured_open = (measured_atac.X > 0).toarray().astype(float)
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, (title, values) in zip(
    axes, (("predicted (RNA only)", accessibility.to_numpy()), ("measured", measured_open)), strict=True
):
    table = per_type(values)
    image = ax.imshow((table / table.max()).to_numpy(), aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(genes)), genes, rotation=45)
    ax.set_yticks(range(len(table)), table.index)
    ax.set_title(title)
fig.colorbar(image, ax=axes, label="relative to the highest type")
