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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData
from scipy import sparse

from .._constants import MODALITIES, MODALITY_LAYER_ARGS, MODALITY_REGISTRY_KEYS, find_modality

if TYPE_CHECKING:
    from ..data import GenomeOrder

logger = logging.getLogger(__name__)

#: Values read per block when a matrix is checked or aligned in row blocks (bounds memory on backed files).
BLOCK_VALUES = 2_000_000

#: Shipped gene tables tried when a gene annotation places few genes (see :func:`check_genomic_order`).
SHIPPED_GENOMES = ("GRCh38", "GRCh37", "GRCm38")


# ---------------------------------------------------------------------------------------------------------------
# modalities, layers, names


def registered_modalities(modalities: Mapping[str, str | None]) -> dict[str, str]:
    """Modality kind -> MuData modality name, e.g. ``{'rna': 'rna', 'atac': 'atac'}``, from setup's ``modalities``."""
    return {m: modalities[arg] for m, arg in MODALITY_LAYER_ARGS.items() if modalities.get(arg) is not None}


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


@dataclass(frozen=True)
class Mosaic:
    """Which registered modalities measure each ``mdata.obs_names`` cell.

    A cell is absent from a modality's ``obs`` when that modality was not measured on it: the MuData convention for
    partially paired data.

    ``observed`` maps each modality kind (``'rna'``, ``'atac'``, ``'protein'``, in :data:`MODALITIES` order) to a
    boolean array over ``mdata.obs_names``.
    """

    observed: dict[str, np.ndarray]

    @property
    def modalities(self) -> list[str]:
        """Registered modality kinds, e.g. ``['rna', 'atac']``."""
        return list(self.observed)

    @property
    def n_obs(self) -> int:
        """Cells of the MuData."""
        return len(next(iter(self.observed.values())))

    @property
    def is_mosaic(self) -> bool:
        """Some cell is missing from some registered modality."""
        return not all(bool(v.all()) for v in self.observed.values())

    def layers(self) -> np.ndarray:
        """Per cell, the measured layers joined by ``'+'`` (e.g. ``'rna+atac'``, ``'rna'``), as a string array."""
        out = np.full(self.n_obs, "", dtype=object)
        for modality, obs in self.observed.items():
            out[obs] = np.where(out[obs] == "", modality, out[obs] + "+" + modality)
        return out

    def counts(self) -> dict[str, int]:
        """Cells per measured set of layers, most layers first: ``{'rna+atac': 3436, 'rna': 3437, ...}``."""
        layers = pd.Series(self.layers())
        order = sorted(layers.unique(), key=lambda v: (-v.count("+"), self.modalities.index(v.split("+")[0])))
        return {name: int((layers == name).sum()) for name in order}

    def describe(self) -> str:
        """One line, e.g. ``'10,309 cells: 3,436 paired (rna+atac), 3,437 rna only, 3,436 atac only'``."""
        parts = [f"{n:,} paired ({name})" if "+" in name else f"{n:,} {name} only" for name, n in self.counts().items()]
        return f"{self.n_obs:,} cells: " + ", ".join(parts)


def check_paired(mdata: MuData, registered: Mapping[str, str], *, training: bool = True) -> Mosaic:
    """Which registered modalities measure each cell of ``mdata.obs_names`` (by name); raise on what cannot work.

    Cells are paired across modalities by ``obs_names``; row orders may differ between modalities. A cell missing
    from a registered modality's ``obs`` is a cell not measured in that modality: the MuData is a *mosaic*
    (partially paired data). Accepted as long as

    * the MuData has cells, and no duplicated cell names (in ``mdata`` or in a registered modality);
    * every registered modality has cells of ``mdata.obs_names``;
    * some cells are measured in both contrasted modalities (the first two registered): the modalities are aligned
      through them;
    * every cell of ``mdata.obs_names`` is measured in at least one registered modality.

    The second and third conditions are for training data only (``training=True``): data a trained model embeds
    (a query, a selection such as the ATAC-only cells of a mosaic) needs neither pairs nor cells in every layer.

    Parameters
    ----------
    mdata
        The MuData.
    registered
        Modality kind -> MuData modality name, e.g. ``{'rna': 'rna', 'atac': 'atac'}``.
    """
    registered = dict(registered)
    if mdata.n_obs == 0:
        raise ValueError("The MuData has no cells (an empty selection?); SCMAMBA needs cells measured in both layers.")
    if mdata.obs_names.has_duplicates:
        raise ValueError("The MuData has duplicated cell names; make them unique (mdata.obs_names_make_unique()).")
    observed = {}
    for modality in MODALITIES:
        if modality not in registered:
            continue
        mod = registered[modality]
        names = mdata.mod[mod].obs_names
        if names.has_duplicates:
            dups = names[names.duplicated()].unique()
            raise ValueError(
                f"Modality {mod!r} has duplicated cell names (e.g. {list(dups[:3])}); cells are paired across "
                "modalities by name, so make them unique first (adata.obs_names_make_unique(), then "
                "mdata.update())."
            )
        observed[modality] = np.asarray(mdata.obs_names.isin(names))
        if training and not observed[modality].any():
            detail = (
                "has no cells"
                if len(names) == 0
                else f"has {len(names):,} cells but none of them is in mdata.obs_names (call mdata.update())"
            )
            raise ValueError(
                f"Modality {mod!r} ({modality}) {detail}; every registered modality needs cells. Register only the "
                "modalities that were measured, or add that modality's cells."
            )
    mosaic = Mosaic(observed)
    if not mosaic.is_mosaic:
        return mosaic
    mod_a, mod_b = mosaic.modalities[:2]
    if training and not (observed[mod_a] & observed[mod_b]).any():
        example = {m: list(mdata.mod[registered[m]].obs_names[:2]) for m in (mod_a, mod_b)}
        raise ValueError(
            f"No cell is measured in both {registered[mod_a]!r} ({mod_a}) and {registered[mod_b]!r} ({mod_b}) "
            f"({mosaic.describe()}). SCMAMBA aligns the two layers through cells measured in both, matched by "
            f"obs_names, so it cannot integrate fully unpaired data. If the same cells are in both modalities under "
            f"different names (e.g. {example}), give them the same obs_names; otherwise add paired cells (e.g. a "
            "multiome sample of the same tissue)."
        )
    nowhere = ~np.logical_or.reduce(list(observed.values()))
    if nowhere.any():
        absent = mdata.obs_names[nowhere]
        keep = " | ".join(f"mdata.obs_names.isin(mdata[{mod!r}].obs_names)" for mod in registered.values())
        others = [m for m in mdata.mod if m not in registered.values()]
        where = f" (they are in {others} only)" if others else ""
        raise ValueError(
            f"{nowhere.sum():,} of the {mdata.n_obs:,} cells of the MuData are in none of the registered modalities "
            f"{list(registered.values())}{where}, e.g. {list(absent[:3])}: they have nothing to embed. Keep the cells "
            f"measured in at least one of them: mdata = mdata[{keep}].copy()."
        )
    return mosaic


def row_positions(mdata: MuData, mod: str) -> np.ndarray | None:
    """Row of each ``mdata.obs_names`` cell in modality ``mod``, -1 where the cell is not in that modality.

    ``None`` when the modality's rows are already in ``mdata.obs_names`` order (and it has every cell).
    """
    names = mdata.mod[mod].obs_names
    if names.equals(mdata.obs_names):
        return None
    return names.get_indexer(mdata.obs_names)


# ---------------------------------------------------------------------------------------------------------------
# reading matrices in row blocks (in memory or backed)


def _is_sparse(X) -> bool:
    return sparse.issparse(X)


def read_rows(X, rows: np.ndarray | slice):
    """Rows of a matrix (scipy sparse, numpy, or a backed HDF5 matrix) as scipy CSR or numpy, in the given order."""
    if isinstance(rows, slice) or _is_sparse(X) or isinstance(X, np.ndarray):
        out = X[rows]
    else:  # backed: h5py-style datasets need increasing, unique indices
        rows = np.asarray(rows)
        uniq, inverse = np.unique(rows, return_inverse=True)
        out = X[uniq]
        out = out[inverse] if not np.array_equal(uniq, rows) else out
    if _is_sparse(out):
        return sparse.csr_matrix(out)
    return np.asarray(out)


def iter_row_blocks(X, rows: np.ndarray | None = None, max_values: int = BLOCK_VALUES) -> Iterator[tuple[int, object]]:
    """``(offset, block)`` over the rows of ``X`` (all rows, or ``rows`` in that order) in blocks of bounded size."""
    n_rows = X.shape[0] if rows is None else len(rows)
    if rows is None and _is_sparse(X):
        yield 0, sparse.csr_matrix(X)  # in memory already: one vectorised pass
        return
    per_block = max(1, max_values // max(X.shape[1], 1))
    for start in range(0, n_rows, per_block):
        stop = min(start + per_block, n_rows)
        yield start, read_rows(X, slice(start, stop) if rows is None else rows[start:stop])


# ---------------------------------------------------------------------------------------------------------------
# values


def _values(X) -> np.ndarray:
    if sparse.issparse(X):
        return np.asarray(X.data)
    return np.asarray(X)


class CountChecker:
    """Checks row blocks of a count matrix; :meth:`finish` reports what needs all rows (cells without counts)."""

    def __init__(self, *, name: str, modality: str, n_rows: int):
        self.name, self.modality = name, modality
        self.row_sums = np.zeros(n_rows)
        self.non_integer = False

    def update(self, block, offset: int) -> None:
        """Raise on non-numeric, NaN/inf and negative values of a block of rows starting at ``offset``."""
        values = _values(block)
        if not np.issubdtype(values.dtype, np.number):
            raise ValueError(f"{self.name} holds non-numeric values ({values.dtype}); counts are expected.")
        if np.issubdtype(values.dtype, np.floating):
            finite = np.isfinite(values)
            if not finite.all():
                bad = int(finite.size - finite.sum())
                raise ValueError(f"{self.name} contains {bad} NaN or infinite values; replace or remove them first.")
            if not self.non_integer:
                sample = values.ravel()[:BLOCK_VALUES]
                self.non_integer = bool(np.any(np.abs(sample - np.round(sample)) > 1e-6))
        if values.size and values.min() < 0:
            raise ValueError(
                f"{self.name} contains negative values (minimum {values.min():.3g}); SCMAMBA expects raw counts. "
                "Pass the layer with raw counts (e.g. rna_layer='counts')."
            )
        sums = np.asarray(block.sum(axis=1)).ravel()
        self.row_sums[offset : offset + len(sums)] = sums

    def finish(self, stacklevel: int = 3) -> None:
        """Raise on cells without counts; warn once on non-integer RNA/protein values."""
        empty = np.flatnonzero(self.row_sums == 0)
        if empty.size:
            raise ValueError(
                f"{self.name}: {empty.size} cells have no counts at all (e.g. index {empty[:3].tolist()}); an empty "
                "profile cannot be embedded. Remove them first, e.g. keep = counts.sum(1) > 0 in every modality and "
                "subset the MuData (muon.pp.filter_obs)."
            )
        if self.non_integer and self.modality in ("rna", "protein"):
            warnings.warn(
                f"{self.name} holds non-integer values: it looks normalised. SCMAMBA bins values within each cell, "
                "which is robust to this, but raw counts are expected; pass the raw-count layer if you have one.",
                UserWarning,
                stacklevel=stacklevel,
            )


def check_counts(X, *, name: str, modality: str) -> None:
    """Raise on NaN/inf, negative values and cells without counts; warn on non-integer RNA/protein values.

    Only stored values are inspected for sparse matrices; dense and backed matrices are read in row blocks.
    """
    checker = CountChecker(name=name, modality=modality, n_rows=X.shape[0])
    for offset, block in iter_row_blocks(X):
        checker.update(block, offset)
    checker.finish(stacklevel=4)


# ---------------------------------------------------------------------------------------------------------------
# features


def check_unique_features(var_names: pd.Index, name: str) -> None:
    """Duplicated feature names would make reordering and query alignment ambiguous."""
    if var_names.has_duplicates:
        dups = var_names[var_names.duplicated()].unique()
        raise ValueError(
            f"{name} has {len(dups)} duplicated feature names (e.g. {list(dups[:5])}); make them unique first "
            "(adata.var_names_make_unique())."
        )


def features_differ(given: pd.Index, reference: pd.Index) -> str | None:
    """``None`` when ``given`` is exactly ``reference`` (same names, same order), else what differs."""
    if given.equals(reference):
        return None
    missing = int((~reference.isin(given)).sum())
    extra = int((~given.isin(reference)).sum())
    if not missing and not extra:
        return f"the model's {len(reference)} features in another order"
    return (
        f"{len(given)} features where the model has {len(reference)} ({missing} of the model's missing, {extra} extra)"
    )


class FeatureAligner:
    """Maps columns of data with ``var_names`` onto ``reference``; reference features it lacks are zero-filled."""

    def __init__(self, var_names: pd.Index, reference: pd.Index, *, name: str, stacklevel: int = 3):
        check_unique_features(pd.Index(var_names), name)
        idx = pd.Index(var_names).get_indexer(reference)
        present = idx >= 0
        if not present.any():
            raise ValueError(
                f"{name} shares no feature with the {len(reference)} features the model was trained on "
                f"(e.g. reference {list(reference[:3])}, given {list(var_names[:3])}). Use the same naming "
                "(symbols vs. IDs) as the reference."
            )
        n_missing = int((~present).sum())
        if n_missing:
            warnings.warn(
                f"{name}: {n_missing} of {len(reference)} reference features are missing and are zero-filled "
                f"({present.sum()} present; {len(var_names) - present.sum()} extra features ignored).",
                UserWarning,
                stacklevel=stacklevel,
            )
        self.identity = not n_missing and len(var_names) == len(reference) and np.array_equal(idx, np.arange(len(idx)))
        cols = np.flatnonzero(present)
        self.selection = sparse.csr_matrix(
            (np.ones(len(cols), dtype=np.float32), (idx[cols], cols)), shape=(len(var_names), len(reference))
        )

    def apply(self, block) -> sparse.csr_matrix:
        """A block of rows with the reference's columns, as CSR in the block's dtype."""
        block = sparse.csr_matrix(block)
        if self.identity:
            return block
        out = (block @ self.selection.astype(block.dtype)).tocsr()
        out.sort_indices()
        return out


def align_features(adata: AnnData, reference: pd.Index, layer: str | None, *, name: str) -> sparse.csr_matrix:
    """Columns of ``adata`` reordered to ``reference`` (missing ones zero-filled, warned), read in row blocks."""
    X = layer_matrix(adata, layer, what=name)
    aligner = FeatureAligner(adata.var_names, reference, name=name, stacklevel=4)
    return sparse.vstack([aligner.apply(block) for _, block in iter_row_blocks(X)], format="csr")


# ---------------------------------------------------------------------------------------------------------------
# obs columns and genomic coordinates


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


# ---------------------------------------------------------------------------------------------------------------
# the one validation path of a MuData


def registered_features(registry: Mapping, modality: str) -> pd.Index:
    """Feature names a registry holds for a modality (the model's features, in the model's order)."""
    field = registry["field_registries"][MODALITY_REGISTRY_KEYS[modality]]
    return pd.Index(field["state_registry"]["column_names"])


def features_message(mod: str, modality: str, difference: str) -> str:
    """Error text for a modality whose features are not the model's."""
    return (
        f"Modality {mod!r} ({modality}) has {difference}. Align it first with "
        "SCMAMBA.prepare_query_mudata(mdata, model) (the model's features in its order; missing ones zero-filled), "
        f"or embed one modality with get_latent_representation(mdata[{mod!r}], modality={modality!r})."
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
    layers = {arg: setup_args.get(arg) for arg in MODALITY_LAYER_ARGS.values()}
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
        check_counts(layer_matrix(adata, layer, what=f"modality {mod!r}"), name=name, modality=modality)
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
