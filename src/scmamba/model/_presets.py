"""Named configurations of :class:`~scmamba.SCMAMBA`, as keyword arguments (the defaults live on the class)."""

from __future__ import annotations

from collections.abc import Sequence

#: Per-modality values used when the corresponding ``SCMAMBA`` argument is ``None``.
#: Patch sizes: genes and peaks in genomic windows (a few hundred tokens at full multiome width, before
#: ``SCMAMBA(max_tokens=64)`` enlarges the patches), proteins a few at a time. Feature dropout: none for protein
#: panels of tens of antibodies, where dropping a marker costs rare cell types. Bins: ATAC peaks share part of
#: their projection with their genome-ordered neighbours (most peaks are rarely open).
#: Encoders: RNA is embedded by its classic reduction (``linear_view``, PCA) through a trained projection, the anchor
#: of the alignment; ATAC peaks and proteins by a Mamba2 encoder over genome-ordered patch tokens (plus their own
#: reduction) that learns to meet it. A Mamba2 encoder on top of RNA's PCA fitted the training cells at the cost of
#: cell-type structure on every set and size measured (500 cells to 9,663); with both layers linear, RNA and
#: protein aligned three times worse (FOSCTTM) (``benchmarks/README.md``, regime table, tag ``rna_anchor``).
#: Beside a protein panel of many cells RNA gets its encoder too (``default_encoders``).
PER_MODALITY_DEFAULTS: dict[str, dict[str, object]] = {
    "encoder": {"rna": "linear", "atac": "mamba", "protein": "mamba"},
    "patch_size": {"rna": 128, "atac": 1024, "protein": 8},
    "feature_dropout": {"rna": 0.3, "atac": 0.5, "protein": 0.0},
    "bin_size": {"rna": None, "atac": 8, "protein": None},
}

#: Encoder dropout when ``SCMAMBA(dropout=None)``: the cross-modal alignment is learned from the cells measured in
#: both layers, and with few of them the encoders fit those pairs rather than what generalises to new cells, so models
#: with fewer than ``FEW_PAIRED_CELLS`` paired cells get the higher rate (measurements: ``benchmarks/README.md``).
ENCODER_DROPOUT = 0.1
ENCODER_DROPOUT_FEW_PAIRS = 0.2
FEW_PAIRED_CELLS = 5000


#: Paired cells from which an RNA layer paired with a protein panel gets a Mamba2 encoder too. A panel of tens to a
#: few hundred antibodies cannot tell a cell's RNA partner from thousands of others against a linear RNA embedding:
#: RNA-protein FOSCTTM on Abseq grew with the cells, 0.015 (1,000) -> 0.027 (2,000) -> 0.047 (3,000) -> 0.16
#: (9,663), against 0.002 with RNA's Mamba2 encoder, which costs cell-type structure on a few hundred cells
#: (``benchmarks/README.md``).
#: A peak layer has the width to pair cells at any size (FOSCTTM < 0.001 on 10,309 SNARE-seq cells, RNA linear).
RNA_ENCODER_WITH_PROTEIN_CELLS = 2000


def default_encoders(modalities: Sequence[str], n_paired: int) -> dict[str, str]:
    """``SCMAMBA(encoder=None)``: ``'linear'`` or ``'mamba'`` per modality for ``n_paired`` cells measured in both."""
    chosen = {m: str(PER_MODALITY_DEFAULTS["encoder"][m]) for m in modalities}
    if "rna" in chosen and "protein" in chosen and n_paired >= RNA_ENCODER_WITH_PROTEIN_CELLS:
        chosen["rna"] = "mamba"
    return chosen


def encoder_dropout(n_paired: int) -> float:
    """Default encoder dropout for a model trained with ``n_paired`` cells measured in both layers."""
    return ENCODER_DROPOUT_FEW_PAIRS if n_paired < FEW_PAIRED_CELLS else ENCODER_DROPOUT


#: Cells per training minibatch that ``SCMAMBA.train(batch_size=None)`` evens out over the training cells: enough
#: negatives for the contrastive task, and a CPU-sized step.
DEFAULT_BATCH_SIZE = 128

#: Training passes when ``SCMAMBA.train(max_epochs=None)``: one per ``CELLS_PER_EPOCH`` training cells, between
#: ``MIN_EPOCHS`` and ``MAX_EPOCHS``. Small data sets get few passes: the encoders start from each layer's classic
#: reduction and, on a few hundred cells, fit the cells they see at the cost of cell-type structure the longer they
#: train (measurements: ``benchmarks/README.md``, regime table).
CELLS_PER_EPOCH = 50
MIN_EPOCHS = 10
MAX_EPOCHS = 50


def default_max_epochs(n_train: int) -> int:
    """Training passes for ``n_train`` training cells (see ``CELLS_PER_EPOCH``)."""
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, round(n_train / CELLS_PER_EPOCH))))


#: Cells per minibatch of ``get_latent_representation``. The largest activation (tokens x the Mamba2 input
#: projection's width, float32) of 256 cells stays below glibc's 32 MiB mmap threshold, so its memory is reused
#: from one minibatch to the next even where the run's malloc settings (``scmamba._malloc``) do not apply; with them,
#: 256 and 512 cells embed at the same rate at full multiome width (``benchmarks/README.md``).
EMBED_BATCH_SIZE = 256


def paper_config(modalities: Sequence[str] | None = None) -> dict:
    """Sizes and choices of the scMamba paper and its official configurations.

    RNA+ATAC: ``d_model`` 512, 10 RNA / 12 ATAC layers, patch 256, ``d_state`` 128, ``headdim`` 128, embedding 64.
    RNA+protein: 8 RNA / 4 protein layers, protein patch 128. One patch projection shared by all regions, the last
    token as the cell summary, the contrastive objective alone (no reconstruction, no batch classifier), no
    feature dropout.

    ``modalities``: the two modality kinds (e.g. ``('rna', 'protein')``). ``None``: values for every kind, so the
    dict fits any pair (RNA takes the RNA+ATAC size, 10 layers; name the pair for RNA+protein's 8). More than two
    kinds is refused, as in ``setup_mudata``.
    """
    from ._modalities import check_two_layers

    if modalities is None:
        n_layers, patch_size = {"rna": 10, "atac": 12, "protein": 4}, {"rna": 256, "atac": 256, "protein": 128}
    else:
        kinds = list(modalities)
        unknown = sorted(set(kinds) - {"rna", "atac", "protein"})
        if unknown:
            raise ValueError(f"paper_config: unknown modalities {unknown}; use 'rna', 'atac' or 'protein'.")
        check_two_layers(kinds)
        protein = "protein" in kinds
        n_layers = {"rna": 8, "protein": 4} if protein else {"rna": 10, "atac": 12}
        patch_size = {"rna": 256, "protein": 128} if protein else {"rna": 256, "atac": 256}
        if protein and "atac" in kinds:
            n_layers, patch_size = {"atac": 12, "protein": 4}, {"atac": 256, "protein": 128}
        n_layers = {m: n_layers[m] for m in kinds}
        patch_size = {m: patch_size[m] for m in kinds}
    return {
        "n_latent": 64,
        "d_model": 512,
        "n_layers": n_layers,
        "patch_size": patch_size,
        "max_tokens": None,
        "d_state": 128,
        "headdim": 128,
        "expand": 2,
        "chunk_size": 256,
        "mlp_hidden": 1024,
        "head_hidden": 512,
        "pooling": "last",
        "projection": "shared",
        "feature_dropout": 0.0,
        "lambda_con": 1.0,
        "lambda_sim": 1.0,
        "lambda_rec": 0.0,
        "lambda_adv": 0.0,
        "encoder": "mamba",
    }


def small_config() -> dict:
    """A tiny architecture for smoke tests and CI-sized runs."""
    return {
        "n_latent": 16,
        "d_model": 32,
        "n_layers": 1,
        "d_state": 16,
        "headdim": 16,
        "chunk_size": 16,
        "head_hidden": 64,
    }
