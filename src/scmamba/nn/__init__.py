"""Neural-network building blocks: SSD scan, Mamba2 layer, patch tokenizer and encoder."""

from ._encoder import GatedMLP, MambaBlock, MambaEncoder, PatchEmbedding
from ._mamba2 import Mamba2, RMSNormGated
from ._ssd import mamba_ssm_available, ssd, ssd_chunked, ssd_sequential

__all__ = [
    "GatedMLP",
    "Mamba2",
    "MambaBlock",
    "MambaEncoder",
    "PatchEmbedding",
    "RMSNormGated",
    "mamba_ssm_available",
    "ssd",
    "ssd_chunked",
    "ssd_sequential",
]
