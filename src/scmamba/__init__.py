"""scMamba (Yuan et al. 2025): single-cell multi-omics integration on all features with Mamba2 (SSD) encoders.

Written as a scvi-tools model. The subpackages and :class:`SCMAMBA` are imported on first use, so that
``import scmamba`` (and ``scmamba --help``) does not load PyTorch and scvi-tools until they are needed.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scmamba")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

_SUBPACKAGES = ("data", "dataloaders", "datasets", "metrics", "module", "nn", "pl", "tl", "train")

__all__ = ["SCMAMBA", "__version__", *_SUBPACKAGES]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return import_module(f".{name}", __name__)
    if name == "SCMAMBA":
        from .model import SCMAMBA

        return SCMAMBA
    raise AttributeError(f"module 'scmamba' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "SCMAMBA", *_SUBPACKAGES])
