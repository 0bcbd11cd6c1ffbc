"""Out-of-core data: streaming minibatches from a MuData on disk, block-wise writing of counts and embeddings.

:class:`StreamingDataset` reads runs of consecutive cells, visits them in a new random order every epoch and
shuffles them in memory buffers; ``SCMAMBA.train`` and ``get_latent_representation`` use it for backed MuData
(or with ``train(data_source="stream")``). :func:`to_chunked` rewrites an ``.h5mu`` in the layout it reads
fastest; ``get_latent_representation(out=...)`` writes embeddings to disk block by block (:func:`write_latent`).
"""

from ._datamodule import StreamingDataModule, embedding_loader, training_datamodule, use_stream
from ._stream import StreamingDataset, epoch_buffers, read_rows_contiguous, stream_loader
from ._write import to_chunked, write_h5mu_blocks, write_latent

__all__ = [
    "StreamingDataModule",
    "StreamingDataset",
    "embedding_loader",
    "epoch_buffers",
    "read_rows_contiguous",
    "stream_loader",
    "to_chunked",
    "training_datamodule",
    "use_stream",
    "write_h5mu_blocks",
    "write_latent",
]
