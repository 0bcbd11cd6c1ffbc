"""Pairing of cells across modalities by ``obs_names``, and which layers measure each cell (:class:`Mosaic`).

Cells are matched across modalities by ``obs_names``, never by row position; results follow ``mdata.obs_names``. A
cell absent from a registered modality's ``obs`` was not measured in that modality (a mosaic of paired and
single-modality cells).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from mudata import MuData

from .._constants import MODALITIES, contrasted_pair

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


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

    def layers(self, modalities: Sequence[str] | None = None) -> np.ndarray:
        """Per cell, the measured layers joined by ``'+'`` (e.g. ``'rna+atac'``, ``'rna'``), as a string array.

        ``modalities``: only these layers (default all registered); a cell measured in none of them gets ``''``.
        """
        out = np.full(self.n_obs, "", dtype=object)
        for modality, obs in self.observed.items():
            if modalities is None or modality in modalities:
                out[obs] = np.where(out[obs] == "", modality, out[obs] + "+" + modality)
        return out

    def paired(self) -> np.ndarray:
        """Cells measured in both contrasted layers (:func:`~scmamba._constants.contrasted_pair`), as a mask."""
        mod_a, mod_b = contrasted_pair(self.modalities)
        return self.observed[mod_a] & self.observed[mod_b]

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
    mod_a, mod_b = contrasted_pair(mosaic.modalities)
    if training and not mosaic.paired().any():
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
