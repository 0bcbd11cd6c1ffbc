"""Training and embedding through the stream: a Lightning data module for ``train()``, a loader for embeddings."""

from __future__ import annotations

import logging
import math

import numpy as np
from lightning.pytorch import LightningDataModule
from scvi import settings

from ._stream import BUFFER_CELLS, CHUNK_SIZE, is_backed, stream_loader

logger = logging.getLogger(__name__)

DATA_SOURCES = ("auto", "memory", "stream")


def use_stream(adata_manager, data_source: str) -> bool:
    """Whether ``data_source`` (``'auto'``: when a registered matrix is backed) means the streaming path."""
    if data_source not in DATA_SOURCES:
        raise ValueError(f"data_source must be one of {DATA_SOURCES}, got {data_source!r}.")
    return data_source == "stream" or (data_source == "auto" and is_backed(adata_manager))


class StreamingDataModule(LightningDataModule):
    """Train/validation split of the registered cells, each served by :func:`~scmamba.dataloaders.stream_loader`.

    The split is scvi-tools' :class:`~scvi.dataloaders.DataSplitter`'s (a permutation seeded by
    ``scvi.settings.seed``: validation cells first, then training cells), so the same cells train either way.
    Training minibatches are shuffled by chunks and buffers (:func:`~scmamba.dataloaders.epoch_buffers`);
    validation cells stream in file order. Under DDP each process reads its own share of every epoch.

    Parameters
    ----------
    adata_manager
        The model's data manager.
    train_size, validation_size, batch_size, drop_last
        As :class:`~scvi.dataloaders.DataSplitter`'s.
    chunk_size, buffer_cells, prefetch
        Cells per contiguous read, cells shuffled together in memory, buffers read ahead
        (:class:`~scmamba.dataloaders.StreamingDataset`).
    pin_memory
        Pin minibatches for the GPU; ``None``: when training on CUDA.
    """

    def __init__(
        self,
        adata_manager,
        *,
        train_size: float = 1.0,
        validation_size: float | None = None,
        batch_size: int = 128,
        drop_last: bool = True,
        chunk_size: int = CHUNK_SIZE,
        buffer_cells: int = BUFFER_CELLS,
        prefetch: int = 1,
        pin_memory: bool | None = None,
        shuffle_set_split: bool = True,
    ):
        super().__init__()
        self.adata_manager = adata_manager
        n = adata_manager.adata.n_obs
        self.n_train = math.ceil(train_size * n)
        self.n_val = n - self.n_train if validation_size is None else math.floor(n * validation_size)
        indices = np.arange(n)
        if shuffle_set_split:
            indices = np.random.RandomState(seed=settings.seed).permutation(indices)
        self.val_idx = np.sort(indices[: self.n_val])
        self.train_idx = np.sort(indices[self.n_val : self.n_val + self.n_train])
        self.test_idx = np.sort(indices[self.n_val + self.n_train :])
        self.n_obs = n
        self.loader_kwargs = {
            "batch_size": batch_size, "chunk_size": chunk_size, "buffer_cells": buffer_cells, "prefetch": prefetch,
        }  # fmt: skip
        self.drop_last = drop_last
        self.pin_memory = pin_memory
        self.seed = int(settings.seed or 0)

    def _placement(self) -> dict:
        trainer = getattr(self, "trainer", None)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        pin = self.pin_memory
        if pin is None:
            pin = trainer is not None and type(trainer.accelerator).__name__ == "CUDAAccelerator"
        return {"rank": rank, "world_size": world, "pin_memory": bool(pin), "seed": self.seed}

    def train_dataloader(self):
        """Shuffled (chunk order and buffers, new each epoch) training minibatches of this process's share."""
        return stream_loader(
            self.adata_manager, self.train_idx, shuffle=True, drop_last=self.drop_last, **self.loader_kwargs,
            **self._placement(),
        )  # fmt: skip

    def val_dataloader(self):
        """Validation minibatches in file order (this process's share)."""
        return stream_loader(self.adata_manager, self.val_idx, shuffle=False, **self.loader_kwargs, **self._placement())

    def on_after_batch_transfer(self, batch, dataloader_idx):
        """Keep sparse tensors sparse on the device (as :class:`~scmamba.model._data.SparseDataSplitter`)."""
        return batch


def training_datamodule(
    adata_manager,
    data_source: str,
    *,
    train_size: float,
    validation_size: float | None,
    batch_size: int,
    datasplitter_kwargs: dict,
) -> StreamingDataModule | None:
    """The streaming data module for ``train()``, or ``None`` for scvi-tools' in-memory data splitter.

    ``datasplitter_kwargs`` go to :class:`StreamingDataModule` (``drop_last``, ``chunk_size``, ``buffer_cells``,
    ``prefetch``, ``pin_memory``, ``shuffle_set_split``).
    """
    if not use_stream(adata_manager, data_source):
        return None
    kwargs = dict(datasplitter_kwargs)
    kwargs.pop("drop_dataset_tail", None)  # every process gets an equal share of each epoch anyway
    accepted = {"drop_last", "chunk_size", "buffer_cells", "prefetch", "pin_memory", "shuffle_set_split"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(
            f"datasplitter_kwargs {unknown} do not apply to the streaming data path (data_source='stream', or 'auto' "
            f"with a backed MuData); it takes {sorted(accepted)}. Pass data_source='memory' for scvi-tools' splitter."
        )
    logger.info("Training from the stream (contiguous chunk reads, shuffled in memory buffers).")
    return StreamingDataModule(
        adata_manager, train_size=train_size, validation_size=validation_size, batch_size=batch_size, **kwargs
    )  # fmt: skip


def embedding_loader(model, adata, *, indices=None, batch_size: int, data_source: str = "auto"):
    """Minibatches for ``get_latent_representation``: streamed when the data are backed, else scvi-tools' loader.

    Streamed cells come in the order of ``indices`` (default all), in contiguous reads with a reader thread ahead.
    """
    manager = model.get_anndata_manager(adata, required=True)
    if not use_stream(manager, data_source):
        return model._make_data_loader(adata=adata, indices=indices, batch_size=batch_size, load_sparse_tensor=True)
    rows = None if indices is None else np.asarray(indices)
    if rows is not None and rows.dtype == bool:
        rows = np.flatnonzero(rows)
    return stream_loader(manager, rows, batch_size=batch_size, shuffle=False)
