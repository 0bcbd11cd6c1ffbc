"""Training plans."""

from ._plan import ContrastiveTrainingPlan

__all__ = ["ContrastiveTrainingPlan"]
