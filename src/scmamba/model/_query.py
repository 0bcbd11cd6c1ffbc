"""Query mapping: query data aligned to a reference model, checked against a saved registry, and the freezing policy.

:func:`prepare_query_mudata` and :func:`check_saved_features` serve ``SCMAMBA.prepare_query_mudata``, ``load`` and
``load_query_data``, which stay thin methods on the model. Which parameters a query model trains: scvi-tools'
``ArchesMixin`` freezes by the naming rules of its ``FCLayers`` (batch-covariate columns stay
trainable). SCMAMBA has no ``FCLayers`` (its batch covariate is the decoders' per-batch offset, which always
trains), so those rules would freeze every parameter; the encoders are instead split into named parameter groups
that a query may adapt.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData
from scipy import sparse
from torch import nn

from .._constants import MODALITY_LAYER_ARGS, MODALITY_REGISTRY_KEYS
from .._counts import CountChecker, iter_row_blocks
from ..nn import RMSNormGated
from ._features import FeatureAligner, features_differ, features_message, registered_features
from ._modalities import check_modalities_and_layers, layer_matrix, registered_layers, registered_modalities
from ._pairing import check_paired, row_positions

if TYPE_CHECKING:
    from ._scmamba import SCMAMBA


@dataclass
class Reference:
    """What query alignment needs of a reference model: its set-up registry and, when at hand, its ``var`` tables."""

    registry: dict
    var: dict[str, pd.DataFrame] | None = None

    @classmethod
    def of(cls, reference_model: SCMAMBA | str | os.PathLike, model_cls: type) -> Reference:
        """From a trained model, or from the folder it was saved to (read without unpickling or weights)."""
        from ._io import read_folder

        if isinstance(reference_model, model_cls):
            adata = reference_model.adata
            var = (
                None if adata is None else {mod: adata.mod[mod].var for mod in reference_model.modality_mods_.values()}
            )
            return cls(reference_model.adata_manager.registry, var)
        if isinstance(reference_model, str | os.PathLike):
            registry = read_folder(reference_model, weights=False).registry
            name = registry.get("model_name", model_cls.__name__)
            if name != model_cls.__name__:
                raise ValueError(f"The reference model is a {name}, not a {model_cls.__name__}.")
            return cls(registry)
        raise TypeError(
            f"reference_model must be a {model_cls.__name__} or the folder it was saved to, not {reference_model!r}."
        )

    @property
    def modalities(self) -> dict[str, str]:
        """Modality kind -> MuData modality name of the reference's set-up."""
        return registered_modalities(self.registry["setup_args"]["modalities"])


def prepare_query_mudata(mdata: MuData, reference: Reference) -> MuData:
    """A new MuData with exactly the reference model's features, in its order.

    The body of :meth:`SCMAMBA.prepare_query_mudata` (see there); warnings point at the caller of that method.
    """
    if not isinstance(mdata, MuData):
        raise TypeError(
            f"prepare_query_mudata needs a MuData with the reference's modalities, got {type(mdata).__name__}. "
            "For cells measured in one modality use reference_model.get_latent_representation(adata, "
            "modality='rna'), which aligns the features itself."
        )
    registered = reference.modalities
    setup_args = reference.registry["setup_args"]
    layers = registered_layers(setup_args)
    check_modalities_and_layers(mdata, registered, layers)
    check_paired(mdata, registered, training=False)
    mods = {}
    for modality, mod in registered.items():
        source, layer = mdata.mod[mod], layers[MODALITY_LAYER_ARGS[modality]]
        name = f"Query modality {mod!r} ({modality}, layer {layer or 'X'})"
        ref = registered_features(reference.registry, modality)
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
        # the reference's feature annotation (coordinates) where the model has its data, else the query's own
        var = reference.var[mod].copy() if reference.var is not None else source.var.reindex(ref)
        ad = AnnData(X=X if layer is None else None, obs=obs, var=var)
        if layer is not None:
            ad.layers[layer] = X
        mods[mod] = ad
    out = MuData(mods)
    order = mdata.obs_names[mdata.obs_names.isin(out.obs_names)]
    if not out.obs_names.equals(order):  # a mosaic: MuData puts the union in modality order
        out = out[order].copy()
    out.obs = mdata.obs.loc[out.obs_names].copy() if mdata.obs.shape[1] else out.obs
    out.uns = mdata.uns.copy()
    return out


def replace_in_place(mdata: MuData, new: MuData) -> None:
    """Make ``mdata`` hold ``new``'s modalities (others dropped), through MuData's public API.

    ``mdata.obs`` and ``uns`` are kept (``new`` has the same cells, in ``mdata.obs_names`` order); modality columns
    are not pulled into ``mdata.obs``.
    """
    import mudata

    with mudata.set_options(pull_on_update=False):
        for mod in [m for m in mdata.mod if m not in new.mod]:
            del mdata.mod[mod]
        for mod, adata in new.mod.items():
            mdata.mod[mod] = adata
        mdata.update()


def check_saved_features(mdata: MuData, registry: Mapping, *, query: bool = False) -> None:
    """The registered modalities of a saved model are in ``mdata`` with its features (clear errors before scvi-tools').

    ``query``: modalities of ``mdata`` the model was not trained with are an error (scvi-tools' query path
    compares every modality of the query with the saved ones).
    """
    modalities = registry.get("setup_args", {}).get("modalities", {})
    registered = registered_modalities(modalities)
    fields = registry.get("field_registries", {})
    for modality, mod in registered.items():
        if mod not in mdata.mod:
            raise ValueError(
                f"The saved model was trained with modality {mod!r} ({modality}); this MuData has {list(mdata.mod)}."
            )
        if MODALITY_REGISTRY_KEYS[modality] not in fields:
            continue
        difference = features_differ(mdata.mod[mod].var_names, registered_features(registry, modality))
        if difference is not None:
            raise ValueError(features_message(mod, modality, difference))
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


class QueryMixin:
    """Query mapping, as scvi-tools' ``ArchesMixin``: :meth:`prepare_query_mudata` and :meth:`load_query_data`."""

    @classmethod
    def prepare_query_mudata(
        cls,
        mdata: MuData,
        reference_model: SCMAMBA | str | os.PathLike,
        return_reference_var_names: bool = False,
        inplace: bool = True,
    ) -> MuData | dict[str, pd.Index] | None:
        """Give ``mdata``'s modalities exactly the reference model's features, in its order (scvi-tools' contract).

        Features the query lacks are zero-filled (with a warning saying how many); extra features are dropped.
        Cells are paired by ``obs_names``: every modality holds its cells in ``mdata.obs_names`` order (all of them
        for paired data; a mosaic stays a mosaic). ``obs``, ``uns`` and modality names are kept; modalities the
        model does not use are left out. The query gets the checks of :meth:`setup_mudata` (layers, names, pairing,
        values); backed (``backed='r'``) data are read in blocks and the result is in memory.

        Parameters
        ----------
        mdata
            Query MuData with the reference's modalities and count layers.
        reference_model
            The trained reference model, or the folder it was saved to (read without unpickling).
        return_reference_var_names
            Return the reference's features per modality (``{modality name: pd.Index}``) and do nothing else.
        inplace
            Replace ``mdata``'s modalities with the aligned ones and return ``None`` (scvi-tools' default);
            ``False``: leave ``mdata`` as it is and return the aligned MuData.

        Returns
        -------
        ``None`` (``inplace=True``), the aligned MuData (``inplace=False``), or the reference's features
        (``return_reference_var_names=True``); the aligned data go to :meth:`load_query_data`.
        """
        reference = Reference.of(reference_model, cls)
        if return_reference_var_names:
            return {mod: registered_features(reference.registry, m) for m, mod in reference.modalities.items()}
        aligned = prepare_query_mudata(mdata, reference)
        if not inplace:
            return aligned
        replace_in_place(mdata, aligned)
        return None

    @classmethod
    def load_query_data(
        cls,
        mdata: MuData,
        reference_model: SCMAMBA | str | os.PathLike,
        *,
        trainable: str | Sequence[str] = "norms",
        unfrozen: bool = False,
        accelerator: str = "auto",
        device: int | str = "auto",
        trust_pickle: bool = False,
    ) -> SCMAMBA:
        """A model for query cells (a new donor or batch) in the reference model's embedding space, scArches-style.

        The query is registered with the reference's setup (new batch categories are added) and the model starts
        from the reference weights, so before any training it embeds cells exactly as the reference does. Calling
        :meth:`train` on it then fine-tunes only the ``trainable`` parameter groups on the query's own pairs
        (plus the decoders' per-batch offsets and the batch classifier, which enter the training loss but never the
        embedding); everything else stays frozen at the reference values, which keeps the query in the reference space
        (reference embeddings and labels stay valid). Without training the query model is a plain mapping, the
        better default for label transfer: fine-tuning moves the query away from the reference embeddings a
        classifier is fitted on (``benchmarks/README.md``, label transfer, has the measurements).

        Parameters
        ----------
        mdata
            Query MuData with the reference's modalities and features in the reference order (use
            :meth:`prepare_query_mudata` to align it); raw counts in the reference's layers. It gets the checks of
            :meth:`setup_mudata`; cells are paired across modalities by ``obs_names`` and the query model's results
            follow ``mdata.obs_names``.
        reference_model
            Trained model, or the folder it was saved to.
        trainable
            Groups trained when the query model is fine-tuned: ``'norms'`` (default: RMSNorm/BatchNorm scales
            and biases; a few thousand parameters), ``'embedding'`` (patch projections and position embeddings,
            for shifted input distributions), ``'head'`` (MLP heads), ``'all'``, or a list of these.
        unfrozen
            Train every parameter (same as ``trainable='all'``), as in scvi-tools.
        accelerator, device
            Where the query model lives (Lightning style; ``'auto'``: the GPU if there is one).
        trust_pickle
            Read a reference folder that needs unpickling (see :meth:`load`); only for folders you trust.

        Returns
        -------
        The query model (``is_trained_`` False until :meth:`train` is called; it embeds right away, with the
        reference's weights, without the untrained-model warning; ``from_reference_`` is True). Its freeze
        (``trainable_parameters_``, ``trainable_groups_``) is saved with it: :meth:`load` restores it.

        Notes
        -----
        scvi-tools' :meth:`~scvi.model.base.ArchesMixin.load_query_data` freezes by the naming rules of
        ``FCLayers``; SCMAMBA has none, so those rules would freeze every parameter. This override keeps the same
        call pattern with a freezing policy that fits the Mamba2 encoders.
        """
        from ._io import SavedModel, build_model, read_folder

        if not isinstance(mdata, MuData):
            raise TypeError(
                f"load_query_data needs a MuData with the reference's modalities, got {type(mdata).__name__}. "
                "For cells measured in one modality use reference_model.get_latent_representation(adata, "
                "modality='rna')."
            )
        if isinstance(reference_model, cls):
            saved = SavedModel.from_model(reference_model)
        elif isinstance(reference_model, str | os.PathLike):
            saved = read_folder(reference_model, trust_pickle=trust_pickle)  # weights only unless trusted
        else:
            raise TypeError(f"reference_model must be a SCMAMBA or its saved folder, not {reference_model!r}.")
        if saved.registry.get("model_name", cls.__name__) != cls.__name__:
            raise ValueError(f"The reference model is a {saved.registry['model_name']}, not a {cls.__name__}.")
        # as scvi-tools' ArchesMixin: registration with the reference's setup (new batch categories added; the
        # checks of setup_mudata), reference weights, new rows for new batches in the decoders' batch offsets
        # (zero, as a new model's). Its FCLayers freezing rules do not fit SCMAMBA: SCMAMBA's own policy instead.
        model = build_model(cls, saved, mdata, accelerator=accelerator, device=device, query=True)
        groups = ["all"] if unfrozen else sorted({trainable} if isinstance(trainable, str) else set(trainable))
        model.trainable_parameters_ = freeze_for_query(model.module, groups)
        model.trainable_groups_ = groups  # saved with the model: load re-applies the freeze
        model.from_reference_ = True  # trained weights: it embeds before (and without) fine-tuning, no warning
        return model

    @classmethod
    def prepare_query_anndata(cls, adata, reference_model, return_reference_var_names=False, inplace=True):
        """Not supported: SCMAMBA queries are MuData (:meth:`prepare_query_mudata`)."""
        raise NotImplementedError(
            "SCMAMBA queries are MuData: use SCMAMBA.prepare_query_mudata(mdata, reference_model). For cells "
            "measured in one modality use reference_model.get_latent_representation(adata, modality='rna')."
        )
