"""User-facing model class and its named configurations."""

from ._io import UntrustedPickleError
from ._presets import paper_config, small_config
from ._scmamba import SCMAMBA

__all__ = ["SCMAMBA", "UntrustedPickleError", "paper_config", "small_config"]
