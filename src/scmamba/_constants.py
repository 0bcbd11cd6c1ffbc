"""Names shared across the package: modalities, their registry keys and setup arguments."""

from __future__ import annotations

from scvi import REGISTRY_KEYS

#: The modalities SCMAMBA can encode, in the order they are reported.
MODALITIES: tuple[str, ...] = ("rna", "atac", "protein")

#: Registry key of each modality's count matrix (the keys MULTIVI and TOTALVI use).
MODALITY_REGISTRY_KEYS: dict[str, str] = {
    "rna": REGISTRY_KEYS.X_KEY,
    "atac": REGISTRY_KEYS.ATAC_X_KEY,
    "protein": REGISTRY_KEYS.PROTEIN_EXP_KEY,
}

#: ``setup_mudata`` argument naming each modality's layer (also the keys of its ``modalities`` mapping).
MODALITY_LAYER_ARGS: dict[str, str] = {"rna": "rna_layer", "atac": "atac_layer", "protein": "protein_layer"}

#: MuData modality names tried when ``modalities`` is not given.
DEFAULT_MOD_NAMES: dict[str, tuple[str, ...]] = {
    "rna": ("rna", "RNA", "gex", "GEX", "expression"),
    "atac": ("atac", "ATAC", "peaks", "accessibility"),
    "protein": ("prot", "protein", "proteins", "adt", "ADT", "protein_expression"),
}

#: Key under which the joint embedding is usually stored in ``obsm``.
LATENT_KEY = "X_scmamba"

#: Minibatch key of the boolean ``(cells, 1)`` tensor saying which cells are measured in a modality (mosaic data);
#: without it every cell is taken as measured.
OBSERVED_KEY = "observed_{}"
