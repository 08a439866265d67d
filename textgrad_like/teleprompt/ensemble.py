"""DSPy's import path ``dspy.teleprompt.ensemble``: Ensemble."""

from ..optim.ensemble import Ensemble

__all__ = ["Ensemble"]
