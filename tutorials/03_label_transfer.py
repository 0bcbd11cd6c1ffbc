# %% [markdown]
# # Label transfer to new donors (reference → query)
#
# A reference model is trained on the three young bone-marrow donors (BM1–BM3) of the Abseq data; the three
# aged donors (Aged1–Aged3) are the query. The query is mapped into the reference's embedding space with
# {meth}`scmamba.SCMAMBA.load_query_data` (scArches-style: the reference weights, optionally a few parameters
# fine-tuned on the query), and cell types are transferred with {func}`scmamba.tl.transfer_labels`.
#
# `benchmarks/transfer.py` runs the same protocol next to scvi-tools TOTALVI and records the numbers.

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
mdata = scmamba.datasets.abseq_bone_marrow()
young = mdata.obs["batch"].astype(str).str.startswith("BM").values
ref, query = mdata[young].copy(), mdata[~young].copy()
if QUICK:
    rng = np.random.default_rng(0)
    ref = ref[np.sort(rng.choice(ref.n_obs, 600, replace=False))].copy()
    query = query[np.sort(rng.choice(query.n_obs, 300, replace=False))].copy()
print(f"reference {ref.n_obs} cells, query {query.n_obs} cells")

# %% [markdown]
# ## Reference model

# %%
SCMAMBA.setup_mudata(ref, batch_key="batch", modalities={"rna_layer": "rna", "protein_layer": "prot"})
model = SCMAMBA(ref, **(SCMAMBA.small_config() if QUICK else {}))
model.train(max_epochs=2 if QUICK else 30, enable_progress_bar=not QUICK)
ref.obsm["X_scmamba"] = model.get_latent_representation()

# %% [markdown]
# ## Map the query
# The query model starts from the reference weights, so it embeds cells exactly as the reference does. Its new
# donors are added to the batch categories. Fine-tuning is optional: `trainable="norms"` adapts only the
# encoders' normalisation layers (scales and biases, a few thousand parameters) to the query's own RNA–protein
# pairs, and keeps everything else that computes the embedding at the reference values (the decoders' per-batch
# offsets also train: they enter the training loss, never the embedding). On the full data the plain mapping
# transferred labels better than 5 epochs of norm fine-tuning (`benchmarks/transfer.py`; the figures are in
# `benchmarks/README.md`): fine-tuning on the query's own pairs moves it away from the reference embeddings the
# classifier is fitted on. Compare both on your data.

# %%
qmodel = SCMAMBA.load_query_data(query, model, trainable="norms")
query.obsm["X_scmamba"] = qmodel.get_latent_representation()  # pure mapping
qmodel.train(max_epochs=1 if QUICK else 5, enable_progress_bar=not QUICK)
query.obsm["X_scmamba_finetuned"] = qmodel.get_latent_representation()

# %% [markdown]
# ## Transfer the labels
# A 15-NN classifier (or an MLP, `method="mlp"`) fitted on the reference embedding; `obs` gets the prediction,
# its confidence, and a filtered label that is `"Unknown"` below `min_confidence`.

# %%
truth = query.obs["cell_type"].astype(str).values
for rep in ("X_scmamba", "X_scmamba_finetuned"):
    for method in ("knn", "mlp"):
        key = f"{method}_{rep}"
        scmamba.tl.transfer_labels(
            ref, query, label_key="cell_type", query_rep=rep, method=method, key_added=key, min_confidence=0.5
        )
        pred = query.obs[f"{key}_cell_type"].astype(str).values
        print(
            f"{rep:22s} {method}: accuracy {accuracy_score(truth, pred):.3f}, "
            f"macro-F1 {f1_score(truth, pred, average='macro'):.3f}"
        )

# %%
fig = scmamba.pl.confusion_matrix(truth, query.obs["knn_X_scmamba_cell_type"].values)

# %% [markdown]
# Low-confidence cells are flagged rather than forced into a class:

# %%
query.obs["knn_X_scmamba_cell_type_filtered"].value_counts()

# %% active="py"
print(query.obs["knn_X_scmamba_cell_type_filtered"].value_counts())

# %% active="py"
# Run as a script, where nothing shows the figures: save each one in the working folder.
import matplotlib.pyplot as plt

stem = os.path.splitext(os.path.basename(__file__))[0]
for i, num in enumerate(plt.get_fignums(), 1):
    plt.figure(num).savefig(f"{stem}_fig{i}.png", bbox_inches="tight")
print(f"{len(plt.get_fignums())} figures saved as {stem}_fig<N>.png")
