"""User-facing model class and its named configurations."""

from ._presets import paper_config, small_config
from ._scmamba import SCMAMBA

__all__ = ["SCMAMBA", "paper_config", "small_config"]
