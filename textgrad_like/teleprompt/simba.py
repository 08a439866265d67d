"""DSPy's import path ``dspy.teleprompt.simba``: SIMBA."""

from ..optim.simba import SIMBA

__all__ = ["SIMBA"]
