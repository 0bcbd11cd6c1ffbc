"""Checks of user data with errors that say what to fix. Nothing here modifies the data.

:func:`validate_mudata` is the one validation path of a MuData: it runs whenever a MuData is registered, by
:meth:`~scmamba.SCMAMBA.setup_mudata` and by every query entry point (``get_latent_representation`` on a new MuData,
``load``, ``load_query_data``), so that query data gets the same checks and messages as training data. The
one-modality (AnnData) path and ``prepare_query_mudata`` use the same checks block by block.

Pairing rule: cells are matched across modalities by ``obs_names``, never by row position; results follow
``mdata.obs_names``. A cell absent from a registered modality's ``obs`` was not measured in that modality (a mosaic
of paired and single-modality cells, :class:`Mosaic`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd
from mudata import MuData

from .._constants import MODALITY_LAYER_ARGS
from .._counts import check_counts
from ._features import check_unique_features, features_differ, features_message, registered_features
from ._modalities import check_modalities_and_layers, layer_matrix, registered_layers, registered_modalities
from ._pairing import Mosaic, check_paired

if TYPE_CHECKING:
    from ..data import GenomeOrder

logger = logging.getLogger(__name__)

#: Shipped gene tables tried when a gene annotation places few genes (see :func:`check_genomic_order`).
SHIPPED_GENOMES = ("GRCh38", "GRCh37", "GRCm38")


def check_obs_column(mdata: MuData, key: str, mod: str | None, *, arg: str = "batch_key") -> None:
    """An ``obs`` column used by set-up exists (in ``mdata.obs`` or modality ``mod``'s) and has no missing values."""
    obs = mdata.obs if mod is None else mdata.mod[mod].obs
    where = "mdata.obs" if mod is None else f"mdata.mod[{mod!r}].obs"
    if key not in obs:
        raise ValueError(f"{arg} {key!r} is not a column of {where}; columns: {list(obs.columns)}.")
    n_missing = int(obs[key].isna().sum())
    if n_missing:
        raise ValueError(
            f"{arg} {key!r} has {n_missing} missing values (NaN) in {where}; every cell needs a value. Fill them "
            f"(e.g. {where}[{key!r}] = {where}[{key!r}].astype(str).replace('nan', 'unknown')) or remove those cells."
        )


def check_genomic_order(var: pd.DataFrame, modality: str, annotation, *, name: str) -> GenomeOrder:
    """Coordinates can be found (fail at set-up, not at model creation), and an annotation matches the features.

    A gene annotation that places fewer than half of the genes is almost always the wrong genome or naming; the
    error says which shipped table (or ``var``'s own coordinates) places more. Returns the order, which the
    set-up keeps for the model (:meth:`PairedMuDataManager.genome_order`), so it is computed once.
    """
    from ..data import genomic_order

    keyword = f"{modality}_annotation"
    try:
        order = genomic_order(var, modality=modality, annotation=annotation)
    except ValueError as err:
        text = str(err).replace("`annotation=`", f"`{keyword}=` of setup_mudata")
        text = text.replace(
            "For proteins use modality='protein' to keep the given order.",
            "Proteins keep their given order: register them with protein_layer=.",
        )
        raise ValueError(f"{name}: {text}") from None
    if annotation is None or modality == "protein" or order.source != "annotation":
        return order
    n = var.shape[0]
    placed = n - order.n_unplaced
    if placed >= 0.5 * n:
        return order
    alternatives = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for genome in SHIPPED_GENOMES:
            if isinstance(annotation, str) and genome.lower() == annotation.strip().lower():
                continue
            try:
                alternatives[f"{keyword}={genome!r}"] = n - genomic_order(var, annotation=genome).n_unplaced
            except ValueError:
                continue
        try:
            own = genomic_order(var, modality=modality)
            if own.source != "annotation":
                alternatives[f"no {keyword} (coordinates from {own.source})"] = n - own.n_unplaced
        except ValueError:
            pass
    best = sorted(alternatives.items(), key=lambda kv: -kv[1])[:2]
    advice = "; ".join(f"{what} places {count} of {n}" for what, count in best if count > placed)
    label = repr(annotation) if isinstance(annotation, str) else f"the given {type(annotation).__name__}"
    hint = f" {advice}." if advice else " Check the species and the gene naming (symbols vs. IDs)."
    raise ValueError(
        f"{name}: {keyword}={label} placed only {placed} of {n} genes (the others would be put last, out of "
        f"genomic order): wrong genome or gene naming?{hint}"
    )


def validate_mudata(
    mdata: MuData, setup_args: Mapping, *, source_registry: Mapping | None = None
) -> tuple[Mosaic, dict[str, GenomeOrder]]:
    """All checks of a MuData before it is registered: names and pairing, features, values, obs columns.

    Parameters
    ----------
    mdata
        The MuData being registered.
    setup_args
        ``setup_mudata``'s arguments (``modalities``, layers, ``batch_key``, annotations).
    source_registry
        The registry of the model the data is registered for (query, load): its features must be the model's
        features. ``None`` for a fresh set-up, which checks that genomic coordinates can be found instead.

    Returns
    -------
    Which registered modalities measure each cell (:func:`check_paired`), and the genomic order of each modality
    computed by a fresh set-up's check (empty when ``source_registry`` is given).
    """
    if not isinstance(mdata, MuData):
        raise TypeError(f"Expected a mudata.MuData, got {type(mdata).__name__}.")
    modalities = setup_args["modalities"]
    registered = registered_modalities(modalities)
    layers = registered_layers(setup_args)
    check_modalities_and_layers(mdata, registered, layers)
    mosaic = check_paired(mdata, registered, training=source_registry is None)
    orders = {}
    for modality, mod in registered.items():
        adata = mdata.mod[mod]
        if adata.n_obs == 0:  # a query without cells in this layer (check_paired allows it for queries)
            continue
        layer = layers[MODALITY_LAYER_ARGS[modality]]
        name = f"Modality {mod!r} ({modality}, layer {layer or 'X'})"
        check_unique_features(adata.var_names, name)
        if source_registry is not None:
            difference = features_differ(adata.var_names, registered_features(source_registry, modality))
            if difference is not None:
                raise ValueError(features_message(mod, modality, difference))
        check_counts(
            layer_matrix(adata, layer, what=f"modality {mod!r}"), name=name, modality=modality, mod=mod, layer=layer
        )
        if source_registry is None:
            orders[modality] = check_genomic_order(
                adata.var, modality, setup_args.get(f"{modality}_annotation"), name=name
            )
    if setup_args.get("batch_key") is not None:
        batch_mod = modalities.get("batch_key")
        check_obs_column(mdata, setup_args["batch_key"], batch_mod)
        if batch_mod is not None:
            missing = int((~mdata.obs_names.isin(mdata.mod[batch_mod].obs_names)).sum())
            if missing:
                raise ValueError(
                    f"batch_key {setup_args['batch_key']!r} is read from mdata.mod[{batch_mod!r}].obs, but {missing:,} "
                    f"cells of the MuData are not in modality {batch_mod!r} ({mosaic.describe()}), so they "
                    f"would have no batch. Put a batch column for every cell into mdata.obs (e.g. "
                    f"mdata.obs['batch'] = ..., one value per mdata.obs_names cell) and set it up without "
                    "modalities['batch_key']."
                )
    return mosaic, orders
