"""Real data sets: a small SNARE-seq subset shipped with the package, and loaders that download larger ones."""

from ._demo import snareseq_cortex_demo
from ._remote import abseq_bone_marrow, snareseq_mouse_cortex

__all__ = ["abseq_bone_marrow", "snareseq_cortex_demo", "snareseq_mouse_cortex"]
