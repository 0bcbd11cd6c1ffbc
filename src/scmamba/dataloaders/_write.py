"""Writing larger-than-memory data in blocks: a stream-friendly ``.h5mu`` (:func:`to_chunked`) and embeddings."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

logger = logging.getLogger(__name__)

#: Cells per block when copying counts or writing embeddings (~500 MB of full-width multiome counts).
BLOCK_CELLS = 8192


def _wide_csr(block) -> sparse.csr_matrix:
    """``block`` as float32 CSR with 32-bit column indices and a 64-bit ``indptr``.

    anndata appends to an on-disk CSR only while its ``indptr`` dtype can hold the total number of values; a
    multiome atlas passes 2**31 values, so ``indptr`` starts 64-bit, while column indices (< 2**31 features) stay
    32-bit to keep the file small.
    """
    block = sparse.csr_matrix(block, dtype=np.float32)
    out = sparse.csr_matrix(block.shape, dtype=np.float32)
    out.data, out.indices, out.indptr = block.data, block.indices.astype(np.int32), block.indptr.astype(np.int64)
    return out


def write_h5mu_blocks(
    path: str | os.PathLike,
    obs: pd.DataFrame,
    modalities: Mapping[str, tuple[pd.DataFrame, pd.DataFrame, Iterable]],
) -> Path:
    """Write a MuData whose count matrices never sit in memory whole.

    ``modalities`` maps each modality name to ``(obs, var, blocks)``: the modality's ``obs`` (rows in file order),
    its ``var``, and an iterable of CSR row blocks that together make its ``X``, top to bottom. mudata writes
    everything but the counts (with empty ``X``); each ``X`` is then written with anndata's ``write_elem`` for the
    first block and appended to with anndata's on-disk sparse ``append`` (uncompressed, so that a run of rows is
    one plain read).
    """
    import anndata as ad
    import h5py
    import mudata as md

    path = Path(path)
    mods = {
        name: ad.AnnData(X=sparse.csr_matrix((len(m_obs), len(var)), dtype=np.float32), obs=m_obs, var=var)
        for name, (m_obs, var, _) in modalities.items()
    }
    mdata = md.MuData(mods)
    if not mdata.obs_names.equals(obs.index):
        if len(mdata.obs_names) != len(obs.index) or not mdata.obs_names.isin(obs.index).all():
            raise ValueError("obs.index must hold the cells of the modalities (their union), each once.")
        mdata = mdata[obs.index].copy()  # MuData unites the cells in modality order; keep the given order
    mdata.obs = obs
    mdata.write_h5mu(path)
    with h5py.File(path, "r+") as f:
        for name, (m_obs, var, blocks) in modalities.items():
            group = f[f"mod/{name}"]
            del group["X"]
            n_rows = 0
            for block in blocks:
                block = _wide_csr(block)
                if "X" not in group:
                    ad.io.write_elem(group, "X", block)
                else:
                    ad.io.sparse_dataset(group["X"]).append(block)
                n_rows += block.shape[0]
            if n_rows != len(m_obs):
                raise ValueError(f"Modality {name!r}: the blocks hold {n_rows} rows for {len(m_obs)} cells.")
            if "X" not in group:
                ad.io.write_elem(group, "X", _wide_csr(sparse.csr_matrix((0, len(var)))))
    return path


def to_chunked(
    source: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    layers: Mapping[str, str] | None = None,
    block_cells: int = BLOCK_CELLS,
) -> Path:
    """Copy an ``.h5mu`` into the layout the streaming loader reads fastest, in blocks (never all in memory).

    Every modality's counts become an uncompressed CSR ``X`` whose rows follow ``mdata.obs_names`` (cells a modality
    lacks are left out, as before), so that a run of cells is one contiguous read in each modality. Worth it when
    the source is compressed (gzip makes every read CPU-bound), stored as CSC or dense, or holds modalities in
    different row orders. ``obs`` and ``var`` are kept; other slots (``obsm``, other layers ...) are not copied.

    Parameters
    ----------
    source, dest
        The ``.h5mu`` to read (opened backed) and the file to write.
    layers
        Modality name -> layer holding the raw counts, where they are not in ``X``; it becomes ``X`` of ``dest``
        (register ``dest`` then without ``*_layer``).
    block_cells
        Cells copied at a time.

    Returns
    -------
    ``dest``; open it with ``mudata.read_h5mu(dest, backed="r")``.
    """
    import mudata as md

    from ._stream import read_rows_contiguous

    layers = dict(layers or {})
    src = md.read_h5mu(source, backed="r")
    mods = {}
    for name, adata in src.mod.items():
        pos = adata.obs_names.get_indexer(src.obs_names)
        rows = pos[pos >= 0]
        X = adata.X if name not in layers else adata.layers[layers[name]]

        def blocks(X=X, rows=rows, name=name):
            for start in range(0, len(rows), block_cells):
                yield read_rows_contiguous(X, rows[start : start + block_cells], name=f"Modality {name!r}")

        mods[name] = (adata.obs.iloc[rows].copy(), adata.var.copy(), blocks())
    try:
        return write_h5mu_blocks(dest, src.obs.copy(), mods)
    finally:
        src.file.close()


def write_latent(
    model,
    out: str | os.PathLike,
    *,
    adata=None,
    modality: str = "joint",
    indices=None,
    batch_size: int | None = None,
    layer: str | None = None,
    batch_corrected: bool = True,
    block_cells: int = 65536,
    key: str | None = None,
):
    """Embed cells block by block into a file, for data whose embedding (or counts) should not sit in memory.

    ``out`` ending in ``.npy``: a NumPy array file filled through a memory map (``np.load(out, mmap_mode="r")``);
    ``.h5ad``: an AnnData with the cells' ``obs`` and the embedding in ``obsm[key]`` (``key`` default ``X_scmamba``
    for the joint embedding, ``X_scmamba_<modality>`` otherwise), for scanpy (``sc.pp.neighbors(a, use_rep=key)``)
    and :func:`scmamba.tl.match_cells`. Returns the memory-mapped array or the AnnData read back (its ``obsm`` is
    in memory: ``cells x n_latent`` floats).
    """
    import anndata as ad
    import h5py

    from .._constants import LATENT_KEY

    out = Path(out)
    data = adata if adata is not None else model.adata
    n_all = data.n_obs
    rows = np.arange(n_all) if indices is None else np.asarray(indices)
    if rows.dtype == bool:
        rows = np.flatnonzero(rows)
    n_latent = int(model.module.n_latent) if hasattr(model.module, "n_latent") else None
    key = key or (LATENT_KEY if modality == "joint" else f"{LATENT_KEY}_{modality}")
    suffix = out.suffix.lower()
    if suffix not in (".npy", ".h5ad"):
        raise ValueError(f"out must end in .npy (a memory-mapped array) or .h5ad (an AnnData), got {out.name!r}.")
    target = None
    handle = None
    try:
        for start in range(0, len(rows), block_cells):
            block = rows[start : start + block_cells]
            z = model.get_latent_representation(
                adata,
                modality=modality,
                indices=block,
                batch_size=batch_size,
                layer=layer,
                batch_corrected=batch_corrected,
            )
            if target is None:
                n_latent = z.shape[1]
                if suffix == ".npy":
                    target = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(len(rows), n_latent))
                else:
                    obs = data.obs.iloc[rows].copy() if indices is not None else data.obs.copy()
                    ad.AnnData(obs=obs).write_h5ad(out)
                    handle = h5py.File(out, "r+")
                    ad.io.write_elem(handle["obsm"], key, z, dataset_kwargs={"maxshape": (None, n_latent)})
                    target = handle["obsm"][key]
                    target.resize((len(rows), n_latent))
                    continue
            target[start : start + len(z)] = z
        if target is None:  # no cells
            raise ValueError("No cells to embed (empty indices).")
    finally:
        if handle is not None:
            handle.close()
        elif target is not None:
            target.flush()
    if suffix == ".npy":
        return np.load(out, mmap_mode="r")
    return ad.read_h5ad(out)
