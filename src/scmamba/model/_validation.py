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
from collections.abc import Iterator, Mapping, Sequence
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


#: What to do about duplicated cell names (``mdata.obs_names_make_unique()`` works only on MuData with ``axis=1``).
UNIQUE_NAMES_ADVICE = (
    "cells are paired across modalities by name, so make them unique in every modality, the same way: "
    "for adata in mdata.mod.values(): adata.obs_names_make_unique(), then mdata.update() (or prefix each "
    "modality's names with its sample, e.g. adata.obs_names = adata.obs['sample'].astype(str) + '_' + "
    "adata.obs_names)."
)


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
        dups = mdata.obs_names[mdata.obs_names.duplicated()].unique()
        raise ValueError(f"The MuData has duplicated cell names (e.g. {list(dups[:3])}); {UNIQUE_NAMES_ADVICE}")
    observed = {}
    for modality in MODALITIES:
        if modality not in registered:
            continue
        mod = registered[modality]
        names = mdata.mod[mod].obs_names
        if names.has_duplicates:
            dups = names[names.duplicated()].unique()
            raise ValueError(
                f"Modality {mod!r} has duplicated cell names (e.g. {list(dups[:3])}); {UNIQUE_NAMES_ADVICE}"
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


def check_count_dtype(dtype, name: str = "The count matrix") -> None:
    """Counts are integers, floats or booleans; anything else is an error that says how to convert."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_ or np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating):
        return
    raise ValueError(
        f"{name} holds {dtype} values; SCMAMBA reads integer or floating-point counts. Convert them first, e.g. "
        "adata.X = adata.X.astype(np.float32) (adata.layers[...] likewise)."
    )


def canonical_counts(block, *, name: str = "The count matrix") -> sparse.csr_matrix:
    """Rows of a count matrix as the canonical form the model reads: float32 CSR, sorted indices, no duplicates.

    Every storage anndata allows gives the same matrix: dense or sparse (CSR, CSC, COO; scipy sparse matrices or
    arrays), any integer, float (float16 included) or boolean dtype, unsorted indices or duplicate entries (summed,
    as scipy's ``sum_duplicates``). ``block`` itself is never modified: whatever is changed is a copy.
    """
    if _is_sparse(block):
        check_count_dtype(block.dtype, name)
        out = sparse.csr_matrix(block)  # shares the arrays of a CSR input
        if out.dtype != np.float32:
            out = out.astype(np.float32)
        if not out.has_canonical_format:
            out = out.copy()  # sum_duplicates works in place
            out.sum_duplicates()
        return out
    block = np.asarray(block)
    check_count_dtype(block.dtype, name)
    return sparse.csr_matrix(block.astype(np.float32, copy=False).reshape(block.shape[0], -1))


def row_readable(X):
    """``X`` in a form whose rows are read cheaply.

    In-memory sparse matrices in other formats (CSC, COO) become CSR once (a copy; the given matrix is left as it
    is); CSR, dense and backed matrices are returned as they are.
    """
    if _is_sparse(X) and X.format != "csr":
        logger.info("Converting a %s matrix to CSR (a copy in memory) to read its rows.", X.format.upper())
        return sparse.csr_matrix(X)
    return X


def read_rows(X, rows: np.ndarray | slice, *, name: str = "The count matrix") -> sparse.csr_matrix:
    """Rows of a matrix (scipy sparse, numpy, or a backed HDF5 matrix), in the given order.

    Returned as canonical float32 CSR (:func:`canonical_counts`).
    """
    if isinstance(rows, slice) or _is_sparse(X) or isinstance(X, np.ndarray):
        out = X[rows]
    else:  # backed: h5py-style datasets need increasing, unique indices
        rows = np.asarray(rows)
        if len(rows) == 0:
            return sparse.csr_matrix((0, X.shape[1]), dtype=np.float32)
        uniq, inverse = np.unique(rows, return_inverse=True)
        out = X[uniq]
        out = out[inverse] if not np.array_equal(uniq, rows) else out
    return canonical_counts(out, name=name)


def iter_row_blocks(
    X, rows: np.ndarray | None = None, max_values: int = BLOCK_VALUES, *, name: str = "The count matrix"
) -> Iterator[tuple[int, sparse.csr_matrix]]:
    """``(offset, block)`` over the rows of ``X`` (all rows, or ``rows`` in that order) in blocks of bounded size.

    Blocks are canonical float32 CSR (:func:`canonical_counts`), whatever the storage of ``X``.
    """
    X = row_readable(X)
    n_rows = X.shape[0] if rows is None else len(rows)
    if rows is None and _is_sparse(X) and X.dtype == np.float32 and X.has_canonical_format:
        yield 0, sparse.csr_matrix(X)  # in memory and canonical already: one vectorised pass, no copy
        return
    if _is_sparse(X):  # in memory: blocks of about max_values stored values
        per_block = max(1, max_values * X.shape[0] // max(X.nnz, 1))
    else:
        per_block = max(1, max_values // max(X.shape[1], 1))
    for start in range(0, n_rows, per_block):
        stop = min(start + per_block, n_rows)
        yield start, read_rows(X, slice(start, stop) if rows is None else rows[start:stop], name=name)


def row_indices(indices, n_obs: int, *, what: str = "the AnnData") -> np.ndarray:
    """Integer rows from ``indices``: integer positions, or a boolean mask with one value per row of ``what``."""
    rows = np.asarray(indices)
    if rows.dtype == np.bool_:
        if rows.shape != (n_obs,):
            raise ValueError(
                f"indices is a boolean mask of {rows.size:,} values, but {what} has {n_obs:,} rows; give one value "
                "per row, or integer positions."
            )
        return np.flatnonzero(rows)
    if rows.size == 0:
        return rows.astype(np.int64).ravel()
    if not np.issubdtype(rows.dtype, np.integer) or rows.ndim != 1:
        raise TypeError(
            f"indices must be integer row positions or a boolean mask over the rows of {what}, got "
            f"{rows.dtype} values of shape {rows.shape}."
        )
    if rows.min() < -n_obs or rows.max() >= n_obs:
        raise IndexError(f"indices hold positions outside the {n_obs:,} rows of {what}.")
    return np.where(rows < 0, rows + n_obs, rows)


# ---------------------------------------------------------------------------------------------------------------
# values


class CountChecker:
    """Checks row blocks of a count matrix; :meth:`finish` reports what needs all rows (cells without counts)."""

    def __init__(self, *, name: str, modality: str, n_rows: int, empty: str | None = None):
        self.name, self.modality = name, modality
        #: What cells without counts lack and how to remove them (default: the advice for a MuData's modality).
        self.empty = empty
        self.row_sums = np.zeros(n_rows)
        self.non_integer = False

    def update(self, block, offset: int) -> None:
        """Raise on non-numeric, NaN/inf and negative values of a block of rows starting at ``offset``."""
        block = canonical_counts(block, name=self.name)
        values = block.data
        finite = np.isfinite(values)
        if not finite.all():
            bad = int(finite.size - finite.sum())
            raise ValueError(f"{self.name} contains {bad} NaN or infinite values; replace or remove them first.")
        if not self.non_integer:
            sample = values[:BLOCK_VALUES]
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
            advice = self.empty or (
                "no counts at all; an empty profile cannot be embedded. Remove them first, e.g. for a MuData "
                "modality 'rna': empty = mdata['rna'].obs_names[np.asarray(mdata['rna'].X.sum(1)).ravel() == 0]; "
                "mdata = mdata[~mdata.obs_names.isin(empty)].copy() (use the layer holding the counts if not X)."
            )
            raise ValueError(f"{self.name}: {empty.size} cells have {advice} (e.g. row {empty[:3].tolist()})")
        if self.non_integer and self.modality in ("rna", "protein"):
            warnings.warn(
                f"{self.name} holds non-integer values: it looks normalised. SCMAMBA bins values within each cell, "
                "which is robust to this, but raw counts are expected; pass the raw-count layer if you have one.",
                UserWarning,
                stacklevel=stacklevel,
            )


def check_counts(X, *, name: str, modality: str, mod: str | None = None, layer: str | None = None) -> None:
    """Raise on NaN/inf, negative values and cells without counts; warn on non-integer RNA/protein values.

    Only stored values are inspected for sparse matrices; dense and backed matrices are read in row blocks.
    ``mod`` and ``layer``: where ``X`` is in the MuData, for the advice on cells without counts.
    """
    empty = None
    if mod is not None:
        counts = f"mdata[{mod!r}]." + ("X" if layer is None else f"layers[{layer!r}]")
        empty = (
            "no counts at all; an empty profile cannot be embedded. Remove them first: "
            f"empty = mdata[{mod!r}].obs_names[np.asarray({counts}.sum(1)).ravel() == 0]; "
            "mdata = mdata[~mdata.obs_names.isin(empty)].copy()"
        )
    checker = CountChecker(name=name, modality=modality, n_rows=X.shape[0], empty=empty)
    for offset, block in iter_row_blocks(X, name=name):
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
        self.name, self.n_reference = name, len(reference)
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
        """A block of rows with the reference's columns, as canonical float32 CSR (:func:`canonical_counts`)."""
        block = canonical_counts(block, name=self.name)
        if self.identity:
            return block
        out = (block @ self.selection.astype(block.dtype)).tocsr()
        out.sort_indices()
        return out


def align_features(adata: AnnData, reference: pd.Index, layer: str | None, *, name: str) -> sparse.csr_matrix:
    """Columns of ``adata`` reordered to ``reference`` (missing ones zero-filled, warned), read in row blocks."""
    X = layer_matrix(adata, layer, what=name)
    aligner = FeatureAligner(adata.var_names, reference, name=name, stacklevel=4)
    return sparse.vstack([aligner.apply(block) for _, block in iter_row_blocks(X, name=name)], format="csr")


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
