"""Neural-network building blocks: SSD scan, Mamba2 layer, value encoding, patch tokenizer and encoder."""

from ._adversary import BatchClassifier
from ._decoder import CompositionDecoder
from ._encoder import GatedMLP, MambaBlock, MambaEncoder, PatchEmbedding
from ._latent_correction import LatentCorrection
from ._linear_view import LinearView
from ._mamba2 import Mamba2, RMSNormGated
from ._sparse import SparseRows, bin_relative_levels, encode_values, normalize_log1p
from ._ssd import mamba_ssm_available, ssd, ssd_chunked, ssd_sequential

__all__ = [
    "BatchClassifier",
    "CompositionDecoder",
    "GatedMLP",
    "LatentCorrection",
    "LinearView",
    "Mamba2",
    "MambaBlock",
    "MambaEncoder",
    "PatchEmbedding",
    "RMSNormGated",
    "SparseRows",
    "bin_relative_levels",
    "encode_values",
    "mamba_ssm_available",
    "normalize_log1p",
    "ssd",
    "ssd_chunked",
    "ssd_sequential",
]
