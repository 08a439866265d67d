"""DSPy's import path ``dspy.teleprompt.mipro_optimizer_v2``: MIPROv2."""

from ..optim.mipro import MIPROv2

__all__ = ["MIPROv2"]
