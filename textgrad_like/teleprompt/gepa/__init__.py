"""DSPy's import path ``dspy.teleprompt.gepa``: GEPA."""

from .gepa import GEPA

__all__ = ["GEPA"]
