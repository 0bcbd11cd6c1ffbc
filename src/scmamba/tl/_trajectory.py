"""Diffusion pseudotime on scmamba embeddings and its agreement between omics layers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._constants import LATENT_KEY
from .._embeddings import as_embedding, check_paired

if TYPE_CHECKING:
    from anndata import AnnData
    from mudata import MuData
    from numpy.typing import ArrayLike

_REP = "X_rep"


def _diffusion_adata(embedding: np.ndarray, *, n_neighbors: int, n_dcs: int) -> AnnData:
    """Build a private AnnData with ``embedding``, its kNN graph and diffusion map (scanpy), ready for DPT."""
    import scanpy as sc
    from anndata import AnnData

    n = embedding.shape[0]
    if n < 4:
        raise ValueError(f"Diffusion pseudotime needs at least 4 cells, got {n}.")
    if n_dcs < 2:
        raise ValueError(f"`n_dcs` must be at least 2 (the first diffusion component is trivial), got {n_dcs}.")
    internal = AnnData(obs=pd.DataFrame(index=pd.RangeIndex(n).astype(str)), obsm={_REP: embedding})
    sc.pp.neighbors(internal, n_neighbors=min(n_neighbors, n - 1), use_rep=_REP, random_state=0)
    sc.tl.diffmap(internal, n_comps=min(n_dcs, n - 2))
    return internal


def _dpt(internal: AnnData, iroot: int, n_dcs: int) -> np.ndarray:
    import scanpy as sc

    internal.uns["iroot"] = int(iroot)
    sc.tl.dpt(internal, n_dcs=min(n_dcs, internal.obsm["X_diffmap"].shape[1]))
    return internal.obs["dpt_pseudotime"].to_numpy(dtype=np.float64)


def _root_from_type(internal: AnnData, labels: pd.Series, root_value: object) -> int:
    """Return the cell of type ``root_value`` at the far end of the first non-trivial diffusion component.

    The type's cells lie mostly on one side of the median of DC1 (over all cells); of them, the one with the
    most extreme DC1 on that side (the minimum if the type's median is below the overall median, else the
    maximum) is the root.
    """
    members = np.flatnonzero((labels == root_value).to_numpy())
    if members.size == 0:
        present = list(pd.unique(labels.dropna()))
        shown = present[:20]
        raise ValueError(f"No cell has the root type {root_value!r}; types present include {shown}.")
    dc1 = internal.obsm["X_diffmap"][:, 1]
    if np.median(dc1[members]) < np.median(dc1):
        return int(members[np.argmin(dc1[members])])
    return int(members[np.argmax(dc1[members])])


def pseudotime(
    adata: AnnData | MuData,
    *,
    use_rep: str = LATENT_KEY,
    root: int | str | None = None,
    root_key: str | None = None,
    root_value: object = None,
    n_neighbors: int = 15,
    n_dcs: int = 10,
    key_added: str = "scmamba_pseudotime",
) -> np.ndarray:
    """Diffusion pseudotime (DPT, Haghverdi et al. 2016) on an embedding in ``adata.obsm[use_rep]``.

    Runs :func:`scanpy.pp.neighbors` (on ``use_rep``), :func:`scanpy.tl.diffmap` and :func:`scanpy.tl.dpt`
    on a private AnnData built from the embedding, so the neighbour graph, diffusion map and ``uns`` entries of
    ``adata`` are left untouched; only ``adata.obs[key_added]`` is written.

    The root cell is either given directly (``root``) or chosen by type: among the cells with
    ``adata.obs[root_key] == root_value``, the one at the far end of the first non-trivial diffusion component
    (DC1). "Far end" means: if the type's median DC1 is below the median DC1 of all cells, the type's cell with
    the smallest DC1, otherwise the one with the largest. This picks an extreme cell of the starting population,
    which is what DPT expects of a root.

    Parameters
    ----------
    adata
        AnnData or MuData with the embedding in ``obsm[use_rep]``.
    use_rep
        Key of the embedding in ``obsm``.
    root
        Root cell as a position (int) or an ``obs_names`` entry (str).
    root_key
        Column of ``adata.obs`` with cell types, used with ``root_value`` when ``root`` is None.
    root_value
        Cell type of the root cell.
    n_neighbors
        Neighbours of the kNN graph.
    n_dcs
        Diffusion components computed and used by DPT (the first, trivial one included).
    key_added
        Column of ``adata.obs`` for the pseudotime.

    Returns
    -------
    Pseudotime per cell in ``[0, 1]`` (``inf`` for cells not connected to the root in the kNN graph), also
    written to ``adata.obs[key_added]``.

    Examples
    --------
    >>> import scmamba
    >>> pt = scmamba.tl.pseudotime(mdata, root_key="cell_type", root_value="OPC")  # doctest: +SKIP
    """
    if use_rep not in adata.obsm:
        raise ValueError(f"No embedding `obsm[{use_rep!r}]`; the obsm keys are {list(adata.obsm.keys())}.")
    emb = as_embedding(adata.obsm[use_rep], f"obsm[{use_rep!r}]")
    if root is None:
        if root_key is None or root_value is None:
            raise ValueError("Give the root cell: `root` (index or obs name), or `root_key` and `root_value`.")
        if root_key not in adata.obs.columns:
            raise ValueError(f"`root_key` {root_key!r} is not an obs column; columns are {list(adata.obs.columns)}.")
    elif root_key is not None or root_value is not None:
        raise ValueError("Pass either `root` or `root_key`/`root_value`, not both.")

    internal = _diffusion_adata(emb, n_neighbors=n_neighbors, n_dcs=n_dcs)
    if root is None:
        iroot = _root_from_type(internal, adata.obs[root_key].reset_index(drop=True), root_value)
    elif isinstance(root, str):
        positions = np.flatnonzero(adata.obs_names == root)
        if positions.size != 1:
            raise ValueError(f"`root` {root!r} matches {positions.size} obs names; it must match exactly one.")
        iroot = int(positions[0])
    else:
        iroot = int(root)
        if not -adata.n_obs <= iroot < adata.n_obs:
            raise ValueError(f"`root` {root} is out of range for {adata.n_obs} cells.")
        iroot %= adata.n_obs
    pt = _dpt(internal, iroot, n_dcs)
    adata.obs[key_added] = pt
    return pt


def modality_pseudotime_consistency(
    z_a: ArrayLike,
    z_b: ArrayLike,
    *,
    root_index: int,
    n_neighbors: int = 15,
    n_dcs: int = 10,
) -> dict[str, float]:
    """Agreement of the diffusion pseudotimes computed on two omics layers' embeddings of the same cells.

    DPT is computed separately on ``z_a`` and ``z_b`` (row-paired: row ``i`` is the same cell) from the same
    root cell, with the neighbour graph and diffusion map of each embedding built as in :func:`pseudotime`.
    Cells with a non-finite pseudotime in either layer (not connected to the root) are left out.

    Parameters
    ----------
    z_a
        First layer's embedding (e.g. RNA), shape ``(N, d)``.
    z_b
        Second layer's embedding (e.g. ATAC), row-paired with ``z_a``.
    root_index
        Row of the root cell.
    n_neighbors
        Neighbours of each kNN graph.
    n_dcs
        Diffusion components used by DPT.

    Returns
    -------
    ``{"pearson", "spearman", "trajectory_conservation"}``: Pearson and Spearman correlation of the two
    pseudotimes, and :func:`scmamba.metrics.trajectory_conservation` (``(spearman + 1) / 2``). NaN when fewer
    than two cells are usable or a pseudotime is constant.
    """
    from scipy.stats import pearsonr, spearmanr

    a, b = check_paired(z_a, z_b)
    n = a.shape[0]
    if not -n <= int(root_index) < n:
        raise ValueError(f"`root_index` {root_index} is out of range for {n} cells.")
    iroot = int(root_index) % n
    pt_a = _dpt(_diffusion_adata(a, n_neighbors=n_neighbors, n_dcs=n_dcs), iroot, n_dcs)
    pt_b = _dpt(_diffusion_adata(b, n_neighbors=n_neighbors, n_dcs=n_dcs), iroot, n_dcs)
    valid = np.isfinite(pt_a) & np.isfinite(pt_b)
    if valid.sum() < 2 or np.ptp(pt_a[valid]) == 0 or np.ptp(pt_b[valid]) == 0:
        pearson = spearman = float("nan")
    else:
        pearson = float(pearsonr(pt_a[valid], pt_b[valid]).statistic)
        spearman = float(spearmanr(pt_a[valid], pt_b[valid]).statistic)
    return {
        "pearson": pearson,
        "spearman": spearman,
        # scmamba.metrics.trajectory_conservation of the same cells (metrics builds on tl, not the other way)
        "trajectory_conservation": (spearman + 1.0) / 2.0,
    }
