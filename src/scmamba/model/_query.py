"""Query mapping: query data aligned to a reference model, checked against a saved registry, and the freezing policy.

:func:`prepare_query_mudata` and :func:`check_saved_features` serve ``SCMAMBA.prepare_query_mudata``, ``load`` and
``load_query_data``, which stay thin methods on the model. Which parameters a query model trains: scvi-tools'
``ArchesMixin`` freezes by the naming rules of its ``FCLayers`` (batch-covariate columns stay
trainable). SCMAMBA has no ``FCLayers`` (its batch covariate is the decoders' per-batch offset, which always
trains), so those rules would freeze every parameter; the encoders are instead split into named parameter groups
that a query may adapt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData
from scipy import sparse
from torch import nn

from .._constants import MODALITY_LAYER_ARGS, MODALITY_REGISTRY_KEYS
from ..nn import RMSNormGated
from ._validation import (
    CountChecker,
    FeatureAligner,
    check_modalities_and_layers,
    check_paired,
    features_differ,
    iter_row_blocks,
    layer_matrix,
    row_positions,
)

if TYPE_CHECKING:
    from ._scmamba import SCMAMBA


def prepare_query_mudata(mdata: MuData, reference_model: SCMAMBA) -> MuData:
    """A copy of ``mdata`` with exactly the reference model's features, in its order.

    The body of :meth:`SCMAMBA.prepare_query_mudata` (see there); warnings point at the caller of that method.
    """
    if not isinstance(mdata, MuData):
        raise TypeError(
            f"prepare_query_mudata needs a MuData with the reference's modalities, got {type(mdata).__name__}. "
            "For cells measured in one modality use reference_model.get_latent_representation(adata, "
            "modality='rna'), which aligns the features itself."
        )
    registered = reference_model.modality_mods_
    setup_args = reference_model.adata_manager.registry["setup_args"]
    layers = {arg: setup_args.get(arg) for arg in MODALITY_LAYER_ARGS.values()}
    check_modalities_and_layers(mdata, registered, layers)
    check_paired(mdata, registered, training=False)
    mods = {}
    for modality, mod in registered.items():
        source, layer = mdata.mod[mod], layers[MODALITY_LAYER_ARGS[modality]]
        name = f"Query modality {mod!r} ({modality}, layer {layer or 'X'})"
        ref = reference_model._reference_features(modality)
        aligner = FeatureAligner(source.var_names, ref, name=name, stacklevel=4)
        rows = row_positions(mdata, mod)  # None: the modality is in mdata.obs_names order already
        if rows is not None:
            rows = rows[rows >= 0]  # mosaic: the cells this modality measured, in mdata.obs_names order
        n_rows = mdata.n_obs if rows is None else len(rows)
        checker = CountChecker(name=name, modality=modality, n_rows=n_rows)
        blocks = []
        for offset, block in iter_row_blocks(layer_matrix(source, layer, what=f"modality {mod!r}"), rows):
            blocks.append(aligner.apply(block))
            checker.update(blocks[-1], offset)
        if blocks:
            checker.finish(stacklevel=4)
            X = sparse.vstack(blocks, format="csr")
        else:  # a query with no cell in this layer (e.g. the ATAC-only cells of a mosaic)
            X = sparse.csr_matrix((0, len(ref)), dtype=np.float32)
        obs = source.obs.copy() if rows is None else source.obs.iloc[rows].copy()
        ad = AnnData(X=X if layer is None else None, obs=obs, var=pd.DataFrame(index=ref))
        ref_var = reference_model.adata.mod[mod].var if reference_model.adata is not None else None
        if ref_var is not None:
            ad.var = ref_var.copy()
        if layer is not None:
            ad.layers[layer] = X
        mods[mod] = ad
    out = MuData(mods)
    order = mdata.obs_names[mdata.obs_names.isin(out.obs_names)]
    if not out.obs_names.equals(order):  # a mosaic: MuData puts the union in modality order
        out = out[order].copy()
    out.obs = mdata.obs.loc[out.obs_names].copy() if mdata.obs.shape[1] else out.obs
    return out


def check_saved_features(mdata: MuData, registry: Mapping, *, query: bool = False) -> None:
    """The registered modalities of a saved model are in ``mdata`` with its features (clear errors before scvi-tools').

    ``query``: modalities of ``mdata`` the model was not trained with are an error (scvi-tools' query path
    compares every modality of the query with the saved ones).
    """
    modalities = registry.get("setup_args", {}).get("modalities", {})
    registered = {m: modalities[arg] for m, arg in MODALITY_LAYER_ARGS.items() if modalities.get(arg) is not None}
    fields = registry.get("field_registries", {})
    for modality, mod in registered.items():
        if mod not in mdata.mod:
            raise ValueError(
                f"The saved model was trained with modality {mod!r} ({modality}); this MuData has {list(mdata.mod)}."
            )
        state = fields.get(MODALITY_REGISTRY_KEYS[modality], {}).get("state_registry", {})
        if "column_names" not in state:
            continue
        difference = features_differ(mdata.mod[mod].var_names, pd.Index(state["column_names"]))
        if difference is not None:
            raise ValueError(
                f"Modality {mod!r} has different features from the saved model: {difference}. Load onto data with "
                "the training features, or align it with SCMAMBA.prepare_query_mudata."
            )
    extra = [mod for mod in mdata.mod if mod not in registered.values()]
    if query and extra:
        raise ValueError(
            f"The query MuData has modalities the reference model does not use: {extra}. Keep the model's modalities "
            f"({list(registered.values())}), e.g. with SCMAMBA.prepare_query_mudata(mdata, reference_model), which "
            "also aligns the features."
        )


#: Parameter groups a query model can train.
QUERY_GROUPS = ("norms", "embedding", "head", "all")

_NORM_TYPES = (nn.RMSNorm, nn.LayerNorm, nn.BatchNorm1d, RMSNormGated)


def _group_parameter_names(module: nn.Module) -> dict[str, set[str]]:
    groups: dict[str, set[str]] = {"norms": set(), "embedding": set(), "head": set()}
    for mod_name, sub in module.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        own = {prefix + n for n, _ in sub.named_parameters(recurse=False)}
        if isinstance(sub, _NORM_TYPES):
            groups["norms"] |= own
        if mod_name.endswith(".tokenizer"):
            groups["embedding"] |= {prefix + n for n, _ in sub.named_parameters()}
        if mod_name.endswith((".head", ".out")):
            groups["head"] |= {prefix + n for n, _ in sub.named_parameters()}
    return groups


def freeze_for_query(module: nn.Module, trainable: str | Iterable[str]) -> list[str]:
    """Set ``requires_grad`` so that only the ``trainable`` groups train; return the trainable parameter names.

    Groups: ``'norms'`` (scales and biases of every RMSNorm/BatchNorm, including Mamba2's gated norm),
    ``'embedding'`` (patch projections and position embeddings), ``'head'`` (the MLP heads), ``'all'``.
    BatchNorm running statistics are frozen too unless ``'norms'`` or ``'all'`` is trainable (momentum 0).
    """
    chosen = {trainable} if isinstance(trainable, str) else set(trainable)
    unknown = chosen - set(QUERY_GROUPS)
    if unknown or not chosen:
        raise ValueError(f"trainable must be one or more of {QUERY_GROUPS}, got {sorted(unknown) or 'nothing'}.")
    groups = _group_parameter_names(module)
    names = {n for n, _ in module.named_parameters()}
    keep = names if "all" in chosen else set().union(*(groups[g] for g in chosen))
    # the decoders' per-batch offsets and the batch classifier always train: a new batch's rows start untrained;
    # both enter the training loss only, never the embedding
    keep |= {n for n in names if n.endswith("batch_offset") or n.startswith("batch_classifier.")}
    for name, p in module.named_parameters():
        p.requires_grad_(name in keep)
    if not ({"norms", "all"} & chosen):
        _freeze_batchnorm_statistics(module)
    return sorted(keep)


def _freeze_batchnorm_statistics(module: nn.Module, only_frozen: bool = False) -> None:
    """Momentum 0 for BatchNorm layers (``only_frozen``: those whose scale and bias do not train)."""
    for sub in module.modules():
        if isinstance(sub, nn.BatchNorm1d):
            if only_frozen and any(p.requires_grad for p in sub.parameters(recurse=False)):
                continue
            sub.momentum = 0.0  # running statistics stay the reference's


def restore_freeze(module: nn.Module, trainable_parameters: Iterable[str], groups: Iterable[str] | None) -> None:
    """Re-apply a query model's freeze after ``load``: only ``trainable_parameters`` require grad.

    ``requires_grad`` and BatchNorm momenta are not part of a state dict, so a loaded query model would otherwise
    train every weight. ``groups`` (``trainable_groups_``, saved since the freeze is kept) decides the BatchNorm
    statistics as :func:`freeze_for_query` does; without it (a folder saved before), the statistics of BatchNorm
    layers whose scale and bias are frozen stay fixed.
    """
    names = set(trainable_parameters)
    unknown = names - {n for n, _ in module.named_parameters()}
    if unknown:
        raise ValueError(f"The saved trainable parameters are not in this model: {sorted(unknown)[:5]}.")
    for name, p in module.named_parameters():
        p.requires_grad_(name in names)
    if groups is None:
        _freeze_batchnorm_statistics(module, only_frozen=True)
    elif not ({"norms", "all"} & set(groups)):
        _freeze_batchnorm_statistics(module)
