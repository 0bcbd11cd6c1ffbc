"""Single-cell multi-omics integration on all features with Mamba2 (SSD) encoders, as a scvi-tools model."""

from importlib.metadata import PackageNotFoundError, version

from . import data, datasets, metrics, module, nn, pl, tl, train
from .model import SCMAMBA

try:
    __version__ = version("scmamba")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["SCMAMBA", "__version__", "data", "datasets", "metrics", "module", "nn", "pl", "tl", "train"]
