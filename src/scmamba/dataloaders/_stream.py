"""Streaming minibatches from a MuData on disk: contiguous chunk reads, shuffled chunk order, a shuffle buffer.

Random 128-cell minibatches from a backed file cost one HDF5 read per row run, and a file larger than the page cache
turns each into a disk seek. The stream reads instead runs of ``chunk_size`` consecutive cells (one contiguous read
per modality, through anndata's backed CSR slicing), visits the chunks in a new random order every epoch, gathers
``buffer_cells`` cells of several chunks in memory and shuffles them there before cutting minibatches (the scheme
of scDataset and annbatch). A background thread reads the next buffer while the model trains on the current one,
and pins the tensors when they go to a GPU. Each DDP process reads its own disjoint share of every epoch.

Minibatches are the dicts of :class:`~scmamba.model._data.PairedAnnTorchDataset`, key for key (counts as sparse CSR
tensors read at each cell's row in its modality, batch codes and other registered ``obs`` columns, the mosaic
``observed_<modality>`` masks), so training, validation and embedding run on them unchanged.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from scipy import sparse
from torch.utils.data import DataLoader, IterableDataset, default_convert

from .._counts import canonical_counts, expand_rows, read_rows, row_readable

logger = logging.getLogger(__name__)

#: Cells per contiguous read. 64 full-width multiome cells are ~4 MB per modality: long enough for sequential disk
#: throughput, short enough that a buffer mixes many places of the file (files are often sorted by sample or type).
CHUNK_SIZE = 64
#: Cells shuffled together in memory (64 chunks at the default chunk size; ~250 MB at full multiome width).
BUFFER_CELLS = 4096
#: Rows between two wanted rows that are read and dropped rather than split into two reads (cells of the
#: validation split, or not asked for, inside a chunk).
MAX_GAP = 32


class DiskCSR:
    """Row runs of a CSR matrix stored in anndata's on-disk encoding (``data``, ``indices``, ``indptr``) in HDF5/zarr.

    Written by hand because anndata's backed ``X[lo:hi]`` validates its index through a package-metadata lookup
    (~30 ms of Python per call in anndata 0.12) that costs more than reading a 64-cell chunk, and has no read of
    several row runs at once. Here ``indptr`` is read once (8 bytes per cell), and each run is one contiguous
    slice of ``data`` and ``indices``: the array layout anndata documents for ``csr_matrix`` elements.
    """

    def __init__(self, X):
        group = X.group
        self.data, self.indices = group["data"], group["indices"]
        self.indptr = np.asarray(group["indptr"][...], dtype=np.int64)
        self.shape = tuple(X.shape)
        self._buffers: dict[str, np.ndarray] = {}

    def _buffer(self, name: str, size: int, dtype) -> np.ndarray:
        """A reused output array (fresh large arrays cost page faults on every buffer; these stay mapped)."""
        buf = self._buffers.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = np.empty(max(size, int(1.25 * (0 if buf is None else buf.size))), dtype=dtype)
            self._buffers[name] = buf
        return buf[:size]

    @staticmethod
    def _read(source, a: int, b: int, out: np.ndarray) -> None:
        if hasattr(source, "read_direct"):  # h5py: straight into the output array, no intermediate copy
            if b > a:
                source.read_direct(out, np.s_[a:b])
        else:  # zarr
            out[...] = source[a:b]

    def rows(self, uniq: np.ndarray, max_gap: int = MAX_GAP, *, reuse: bool = False) -> sparse.csr_matrix:
        """Rows ``uniq`` (sorted, unique), runs closer than ``max_gap`` rows read as one slice.

        ``reuse``: the result's arrays are this reader's own, overwritten by the next ``rows(..., reuse=True)``
        (the stream copies each minibatch's rows out first).
        """
        ip = self.indptr
        breaks = np.flatnonzero(np.diff(uniq) > max_gap + 1) + 1
        lengths = ip[uniq + 1] - ip[uniq]
        total = int(lengths.sum())
        if reuse:
            data = self._buffer("data", total, self.data.dtype)
            indices = self._buffer("indices", total, self.indices.dtype)
        else:
            data, indices = np.empty(total, self.data.dtype), np.empty(total, self.indices.dtype)
        o = 0
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(uniq)], strict=True):
            lo, hi = int(uniq[start]), int(uniq[stop - 1]) + 1
            a, b = int(ip[lo]), int(ip[hi])
            if hi - lo == stop - start:
                self._read(self.data, a, b, data[o : o + b - a])
                self._read(self.indices, a, b, indices[o : o + b - a])
                o += b - a
                continue
            want = uniq[start:stop]  # rows between the wanted ones are read and dropped
            lens = ip[want + 1] - ip[want]
            take = np.repeat(ip[want] - a - np.r_[0, np.cumsum(lens)[:-1]], lens) + np.arange(lens.sum())
            n = len(take)
            data[o : o + n] = self.data[a:b][take]
            indices[o : o + n] = self.indices[a:b][take]
            o += n
        indptr = np.r_[0, np.cumsum(lengths)]
        return sparse.csr_matrix((data, indices, indptr), shape=(len(uniq), self.shape[1]), copy=False)


def _disk_csr(X):
    """A :class:`DiskCSR` for a backed anndata CSR matrix; ``None`` for anything else (read through anndata)."""
    if sparse.issparse(X) or isinstance(X, np.ndarray) or getattr(X, "format", None) != "csr":
        return None
    return DiskCSR(X) if hasattr(X, "group") else None


def read_rows_contiguous(
    X, rows: np.ndarray, *, max_gap: int = MAX_GAP, name: str = "The count matrix", reuse: bool = False
):
    """Rows ``rows`` (any order, non-negative) of ``X`` as canonical float32 CSR, read in contiguous runs.

    For a backed CSR matrix (or its :class:`DiskCSR`) the sorted rows are grouped into runs whose gaps are at most
    ``max_gap`` rows, each read as one slice; other backed storage (CSC, dense) is read through anndata, whose
    integer-array indexing reads runs of consecutive rows as slices. In-memory matrices are indexed directly.
    ``reuse``: see :meth:`DiskCSR.rows`.
    """
    rows = np.asarray(rows, dtype=np.int64)
    disk = X if isinstance(X, DiskCSR) else _disk_csr(X)
    if disk is None or len(rows) == 0:
        return read_rows(X, rows, name=name)
    uniq, inverse = np.unique(rows, return_inverse=True)
    out = canonical_counts(disk.rows(uniq, max_gap, reuse=reuse), name=name)
    return out if np.array_equal(uniq, rows) else out[inverse]


def epoch_buffers(
    cells: np.ndarray,
    *,
    batch_size: int,
    shuffle: bool,
    epoch: int = 0,
    seed: int = 0,
    chunk_size: int = CHUNK_SIZE,
    buffer_cells: int = BUFFER_CELLS,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> list[list[np.ndarray]]:
    """One epoch's plan: buffers (cells read together), each a list of minibatches (arrays of cells of ``cells``).

    ``shuffle``: ``cells`` (sorted) are cut into chunks of ``chunk_size`` consecutive cells, the chunks put in a
    random order (the same on every process: ``seed``, ``epoch``), and the sequence of cells split into
    ``world_size`` equal, disjoint shares (at most ``world_size - 1`` cells are left out, different ones each
    epoch); this process (``rank``) cuts its share into buffers of about ``buffer_cells`` cells (a multiple of
    ``batch_size``), shuffles each buffer and cuts it into minibatches. Every process gets the same number of
    minibatches, as DDP needs. Without ``shuffle``, ``cells`` keep their order (embedding, validation).
    ``drop_last``: only full minibatches (the few cells left over differ from epoch to epoch when shuffling); a last
    minibatch of one cell is always dropped when shuffling (BatchNorm cannot train on it).
    """
    cells = np.asarray(cells, dtype=np.int64)
    rng = np.random.default_rng([seed, epoch])
    if shuffle:
        cells = np.sort(cells)
        n_chunks = max(1, math.ceil(len(cells) / chunk_size))
        order = rng.permutation(n_chunks)
        cells = np.concatenate([cells[i * chunk_size : (i + 1) * chunk_size] for i in order]) if len(cells) else cells
    share = len(cells) // world_size if world_size > 1 else len(cells)
    cells = cells[rank * share : (rank + 1) * share]
    if drop_last or (shuffle and share % batch_size == 1):
        cells = cells[: len(cells) // batch_size * batch_size]
    per_buffer = max(batch_size, buffer_cells // batch_size * batch_size)
    local = np.random.default_rng([seed, epoch, rank])
    plan = []
    for start in range(0, len(cells), per_buffer):
        buf = cells[start : start + per_buffer]
        if shuffle:
            buf = buf[local.permutation(len(buf))]
        plan.append([buf[i : i + batch_size] for i in range(0, len(buf), batch_size)])
    return plan


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


_END = object()


def prefetched(make: Callable[[], Iterator], depth: int) -> Iterator:
    """Iterate ``make()`` in a background thread, at most ``depth`` items ahead.

    A thread, not worker processes: h5py file handles cannot be shared with forked processes, and the model's
    torch kernels release the GIL, so one reader thread overlaps disk reads and CSR slicing with training.
    Errors in the thread are raised here; stopping early (e.g. ``limit_train_batches``) stops the thread.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for item in make():
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_Failure(exc))

    thread = threading.Thread(target=work, name="scmamba-stream", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class StreamingDataset(IterableDataset):
    """Minibatches of the registered MuData read in buffers of contiguous chunks (:func:`epoch_buffers`).

    Parameters
    ----------
    adata_manager
        The model's :class:`~scmamba.model._data.PairedMuDataManager` for the data (training data or a query).
    indices
        Cells (positions in ``mdata.obs_names``) to stream; ``None``: all. Without ``shuffle`` they come in this
        order (the embedding of cell ``indices[i]`` is row ``i``).
    batch_size, shuffle, drop_last, chunk_size, buffer_cells, seed, rank, world_size
        See :func:`epoch_buffers`; the epoch advances with each pass over the dataset.
    prefetch
        Buffers read ahead in a background thread (0: read in the calling thread).
    pin_memory
        Pin minibatch tensors (page-locked memory) for asynchronous copies to a GPU.
    """

    def __init__(
        self,
        adata_manager,
        indices: Sequence[int] | None = None,
        *,
        batch_size: int = 128,
        shuffle: bool = False,
        drop_last: bool = False,
        chunk_size: int = CHUNK_SIZE,
        buffer_cells: int = BUFFER_CELLS,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        prefetch: int = 1,
        pin_memory: bool = False,
    ):
        super().__init__()
        if chunk_size < 1 or buffer_cells < 1 or batch_size < 1:
            raise ValueError("chunk_size, buffer_cells and batch_size must be positive integers.")
        dataset = adata_manager.create_torch_dataset(load_sparse_tensor=True)  # checks registry vs data
        self.n_obs = adata_manager.adata.n_obs
        self.cells = np.arange(self.n_obs) if indices is None else np.asarray(indices, dtype=np.int64)
        self.matrix_keys = dataset.matrix_keys
        self.rows = dataset.rows
        self.observed = dataset.observed
        self.keys = list(dataset.keys_and_dtypes)
        self.matrices = {
            key: _disk_csr(X) or _readable(X) for key, X in ((k, dataset.data[k]) for k in self.matrix_keys)
        }
        plain = {k: v for k, v in dataset.keys_and_dtypes.items() if k not in self.matrix_keys}
        # obs columns (batch codes ...) and mosaic masks: read by the in-memory dataset itself (obs is in memory)
        self.meta = adata_manager.create_torch_dataset(data_and_attributes=plain) if plain else None
        self.plan_kwargs = {
            "batch_size": batch_size, "shuffle": shuffle, "drop_last": drop_last, "chunk_size": chunk_size,
            "buffer_cells": buffer_cells, "seed": seed, "rank": rank, "world_size": world_size,
        }  # fmt: skip
        self.prefetch = prefetch
        self.pin_memory = pin_memory
        self.epoch = 0
        self._len = sum(len(buf) for buf in self.plan(0))

    def plan(self, epoch: int) -> list[list[np.ndarray]]:
        """The buffers and minibatches of ``epoch`` (:func:`epoch_buffers`)."""
        return epoch_buffers(self.cells, epoch=epoch, **self.plan_kwargs)

    def __len__(self) -> int:
        return self._len

    def __iter__(self):
        plan = self.plan(self.epoch)
        self.epoch += 1
        if not self.prefetch:
            yield from self._batches(plan)
            return
        per_buffer = max((len(buf) for buf in plan), default=1)
        yield from prefetched(lambda: self._batches(plan), depth=per_buffer * self.prefetch)

    def _batches(self, plan) -> Iterator[dict]:
        for buffer in plan:
            cells = np.concatenate(buffer)
            ordered = bool(np.all(np.diff(cells) > 0))
            if not ordered:  # read in file order; each minibatch then takes its rows (its one copy of them)
                cells = np.sort(cells)
            data = self.read(cells)
            offset = 0
            for batch in buffer:
                sel = np.arange(offset, offset + len(batch)) if ordered else np.searchsorted(cells, batch)
                offset += len(batch)
                yield self._minibatch(data, sel)

    def read(self, cells: np.ndarray) -> dict:
        """Every registered key for ``cells`` (in that order; fastest sorted): CSR counts, numpy arrays for the rest."""
        out = {}
        if self.meta is not None or self.observed:
            order = np.argsort(cells, kind="stable")
            meta = self.meta[cells[order]] if self.meta is not None else {}
            for key, value in meta.items():
                value = np.asarray(value)
                out[key] = np.empty_like(value)
                out[key][order] = value
            for modality, observed in self.observed.items():
                from .._constants import OBSERVED_KEY

                out[OBSERVED_KEY.format(modality)] = observed[cells][:, None]
        for key in self.matrix_keys:
            X = self.matrices[key]
            pos = self.rows[key][cells] if key in self.rows else cells
            present = pos >= 0
            if present.all():
                out[key] = read_rows_contiguous(X, pos, reuse=True)
            elif present.any():
                out[key] = expand_rows(read_rows_contiguous(X, pos[present], reuse=True), present)
            else:
                out[key] = sparse.csr_matrix((len(pos), X.shape[1]), dtype=np.float32)
        return out

    def _minibatch(self, data: dict, sel: slice) -> dict:
        out = {}
        for key in [*self.keys, *(k for k in data if k not in self.keys)]:
            value = data[key][sel]
            if sparse.issparse(value):
                value = torch.sparse_csr_tensor(
                    torch.as_tensor(value.indptr), torch.as_tensor(value.indices), torch.as_tensor(value.data),
                    size=value.shape,
                )  # fmt: skip
            else:
                value = default_convert(np.ascontiguousarray(value))
            out[key] = _pinned(value) if self.pin_memory else value
        return out


def _readable(X):

    return row_readable(X)


def _pinned(t: torch.Tensor) -> torch.Tensor:
    """``t`` in page-locked memory (a sparse CSR tensor: its three component tensors)."""
    if t.layout == torch.sparse_csr:
        return torch.sparse_csr_tensor(
            t.crow_indices().pin_memory(), t.col_indices().pin_memory(), t.values().pin_memory(), size=t.shape
        )
    return t.pin_memory()


def stream_loader(adata_manager, indices=None, **kwargs) -> DataLoader:
    """A :class:`~torch.utils.data.DataLoader` over a :class:`StreamingDataset` (keywords go to it).

    The dataset yields whole minibatches, so the loader neither batches nor collates (``batch_size=None``).
    """
    return DataLoader(StreamingDataset(adata_manager, indices, **kwargs), batch_size=None, num_workers=0)


def is_backed(adata_manager) -> bool:
    """Whether any registered count matrix of the manager's MuData is read from disk."""
    from .._constants import MODALITY_LAYER_ARGS

    mdata = adata_manager.adata
    registered = adata_manager._registered()
    setup = adata_manager._setup_args
    for modality, mod in registered.items():
        layer = setup.get(MODALITY_LAYER_ARGS[modality])
        adata = mdata.mod[mod]
        X = adata.X if layer is None else adata.layers[layer]
        if not (sparse.issparse(X) or isinstance(X, np.ndarray)):
            return True
    return False
