"""User-facing model classes."""

from ._scmamba import SCMAMBA

__all__ = ["SCMAMBA"]
