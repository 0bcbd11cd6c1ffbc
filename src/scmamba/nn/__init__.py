"""Neural-network building blocks: SSD scan, Mamba2 layer, patch tokenizer and encoder."""

from ._adversary import BatchClassifier
from ._decoder import CompositionDecoder
from ._encoder import GatedMLP, MambaBlock, MambaEncoder, PatchEmbedding
from ._mamba2 import Mamba2, RMSNormGated
from ._sparse import SparseRows
from ._ssd import mamba_ssm_available, ssd, ssd_chunked, ssd_sequential

__all__ = [
    "BatchClassifier",
    "CompositionDecoder",
    "GatedMLP",
    "Mamba2",
    "MambaBlock",
    "MambaEncoder",
    "PatchEmbedding",
    "RMSNormGated",
    "SparseRows",
    "mamba_ssm_available",
    "ssd",
    "ssd_chunked",
    "ssd_sequential",
]
