"""DSPy's import path ``dspy.clients.lm``: LM."""

from ..lm.lm import LM

__all__ = ["LM"]
