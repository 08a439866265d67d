"""DSPy's import path ``dspy.teleprompt.copro_optimizer``: COPRO."""

from ..optim.copro import COPRO

__all__ = ["COPRO"]
