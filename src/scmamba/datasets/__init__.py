"""Small real data sets shipped with the package."""

from ._demo import snareseq_cortex_demo

__all__ = ["snareseq_cortex_demo"]
