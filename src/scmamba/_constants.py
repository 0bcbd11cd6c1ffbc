"""Names shared across the package: modalities, their registry keys and setup arguments."""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence

from scvi import REGISTRY_KEYS

#: The modalities SCMAMBA can encode, in the order they are reported.
MODALITIES: tuple[str, ...] = ("rna", "atac", "protein")

#: Registry key of each modality's count matrix (the keys MULTIVI and TOTALVI use).
MODALITY_REGISTRY_KEYS: dict[str, str] = {
    "rna": REGISTRY_KEYS.X_KEY,
    "atac": REGISTRY_KEYS.ATAC_X_KEY,
    "protein": REGISTRY_KEYS.PROTEIN_EXP_KEY,
}


def contrasted_pair(modalities: Sequence[str]) -> tuple[str, str]:
    """The two layers SCMAMBA's loss aligns: the first two registered ones, in :data:`MODALITIES` order.

    Pairing checks, the count of paired cells and the contrastive loss all read the pair from here.
    """
    first, second = list(modalities)[:2]
    return first, second


#: ``setup_mudata`` argument naming each modality's layer (also the keys of its ``modalities`` mapping).
MODALITY_LAYER_ARGS: dict[str, str] = {"rna": "rna_layer", "atac": "atac_layer", "protein": "protein_layer"}

#: MuData modality names tried when ``modalities`` is not given, most usual first ("antibody capture" is the 10x
#: feature type of protein panels). :func:`find_modality` and :func:`modality_kind` read this one table.
DEFAULT_MOD_NAMES: dict[str, tuple[str, ...]] = {
    "rna": ("rna", "RNA", "gex", "GEX", "expression"),
    "atac": ("atac", "ATAC", "peaks", "accessibility"),
    "protein": ("prot", "protein", "proteins", "adt", "ADT", "protein_expression", "antibody capture"),
}


def find_modality(mod_names: Container[str], modality: str, exclude: Iterable[str] = ()) -> str | None:
    """The first of ``DEFAULT_MOD_NAMES[modality]`` that is in ``mod_names`` (e.g. ``mdata.mod``) and not excluded."""
    skip = set(exclude)
    return next((name for name in DEFAULT_MOD_NAMES[modality] if name in mod_names and name not in skip), None)


def modality_kind(name: str) -> str | None:
    """The modality (``'rna'``, ``'atac'``, ``'protein'``) a usual modality name stands for, any case; else ``None``."""
    key = str(name).strip().lower()
    return next((kind for kind, names in DEFAULT_MOD_NAMES.items() if key in {n.lower() for n in names}), None)


#: Key under which the joint embedding is usually stored in ``obsm``.
LATENT_KEY = "X_scmamba"

#: Minibatch key of the boolean ``(cells, 1)`` tensor saying which cells are measured in a modality (mosaic data);
#: without it every cell is taken as measured.
OBSERVED_KEY = "observed_{}"
