"""Which MuData modality holds each registered layer, and where its counts are: set-up arguments checked.

The mapping of modality kinds (``'rna'``, ``'atac'``, ``'protein'``) to MuData modality names and to their count
layers is read from ``setup_mudata``'s arguments here, and only here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from anndata import AnnData
from mudata import MuData

from .._constants import MODALITY_LAYER_ARGS, find_modality

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


def registered_modalities(modalities: Mapping[str, str | None]) -> dict[str, str]:
    """Modality kind -> MuData modality name, e.g. ``{'rna': 'rna', 'atac': 'atac'}``, from setup's ``modalities``."""
    return {m: modalities[arg] for m, arg in MODALITY_LAYER_ARGS.items() if modalities.get(arg) is not None}


def registered_layers(setup_args: Mapping) -> dict[str, str | None]:
    """Set-up argument -> counts layer (``None``: ``.X``), e.g. ``{'rna_layer': 'counts', 'atac_layer': None, ...}``."""
    return {arg: setup_args.get(arg) for arg in MODALITY_LAYER_ARGS.values()}


def check_two_layers(kinds: Sequence[str], example: Mapping[str, str] | None = None) -> None:
    """SCMAMBA aligns two layers: more is refused here, for ``setup_mudata``, the CLI and ``paper_config`` alike.

    ``kinds``: the modality kinds asked for (``'rna'``, ``'atac'``, ``'protein'``); ``example``: a modality kind ->
    MuData modality name mapping whose first two entries the message suggests registering.
    """
    kinds = list(kinds)
    if len(kinds) <= 2:
        return
    example = dict(example or {m: m for m in kinds})
    pair = {MODALITY_LAYER_ARGS[m]: example[m] for m in kinds[:2]}
    raise ValueError(
        f"SCMAMBA aligns two layers, got {len(kinds)} ({', '.join(kinds)}). Its loss, pairing check and defaults "
        "are built for one pair, so a third layer would be averaged into the joint embedding without ever being "
        f"aligned. Register two: SCMAMBA.setup_mudata(mdata, modalities={pair!r}); on the command line, "
        f"--{kinds[0]}-mod with --{kinds[1]}-mod; SCMAMBA.paper_config({tuple(kinds[:2])!r}). For a third layer, "
        "train a second model on another pair."
    )


def resolve_modalities(mdata: MuData, modalities: Mapping[str, str] | None, layers: Mapping[str, str | None]) -> dict:
    """Map setup arguments to MuData modality names, inferring them from common names when not given."""
    if not isinstance(mdata, MuData):
        raise TypeError(
            f"SCMAMBA.setup_mudata expects a mudata.MuData with paired modalities, got {type(mdata).__name__}. "
            "Build one with mudata.MuData({'rna': adata_rna, 'atac': adata_atac})."
        )
    available = list(mdata.mod.keys())
    if modalities is None:
        modalities = {}
        for modality, arg in MODALITY_LAYER_ARGS.items():
            found = find_modality(mdata.mod, modality)
            if found is not None:
                modalities[arg] = found
        logger.info("Inferred modalities %s from the MuData modality names %s.", modalities, available)
    else:
        modalities = dict(modalities)
    data_args = [arg for arg in MODALITY_LAYER_ARGS.values() if arg in modalities]
    if len(data_args) < 2:
        raise ValueError(
            f"SCMAMBA needs two paired modalities, got {data_args or 'none'} from modalities={modalities!r}. "
            f"The MuData has modalities {available}; pass e.g. "
            "modalities={'rna_layer': 'rna', 'atac_layer': 'atac'} or {'rna_layer': 'rna', 'protein_layer': 'prot'}."
        )
    kinds = [m for m, arg in MODALITY_LAYER_ARGS.items() if arg in data_args]
    check_two_layers(kinds, {m: modalities[MODALITY_LAYER_ARGS[m]] for m in kinds})
    for arg, mod in modalities.items():
        if mod is not None and mod not in mdata.mod:
            raise ValueError(
                f"modalities[{arg!r}] = {mod!r}, but the MuData has no modality {mod!r}; it has {available}."
            )
    seen: dict[str, str] = {}
    for arg in data_args:
        mod = modalities[arg]
        if mod in seen:
            raise ValueError(
                f"Modality {mod!r} is registered as both {seen[mod]} and {arg}; each of SCMAMBA's encoders needs its "
                f"own modality (the MuData has {available})."
            )
        seen[mod] = arg
    check_modalities_and_layers(mdata, registered_modalities(modalities), layers)
    return modalities


def check_modalities_and_layers(mdata: MuData, registered: Mapping[str, str], layers: Mapping[str, str | None]):
    """Every registered modality is in the MuData and has its counts layer."""
    for modality, mod in registered.items():
        if mod not in mdata.mod:
            present = [(m, name) for m, name in registered.items() if name in mdata.mod]
            m, name = present[0] if present else (modality, mod)
            example = f"mdata[{name!r}]" if present else "adata"
            raise ValueError(
                f"The MuData has no modality {mod!r} ({modality}); it has {list(mdata.mod)}. For cells measured in "
                f"one modality only, pass that AnnData: get_latent_representation({example}, modality={m!r})."
            )
        layer_matrix(mdata.mod[mod], layers.get(MODALITY_LAYER_ARGS[modality]), what=f"modality {mod!r}")


def layer_matrix(adata: AnnData, layer: str | None, *, what: str = "the AnnData"):
    """The count matrix of a layer (``None``: ``.X``), with an error that lists the layers when it is missing."""
    if layer is not None and layer not in adata.layers:
        raise ValueError(
            f"{layer!r} is not a layer of {what}; its layers are {list(adata.layers.keys())} "
            "(None uses .X). Pass the layer that holds the raw counts."
        )
    X = adata.X if layer is None else adata.layers[layer]
    if X is None:
        raise ValueError(f"{what} has no data matrix (.X is None); pass the layer holding counts.")
    return X
