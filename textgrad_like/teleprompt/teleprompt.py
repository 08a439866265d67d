"""DSPy's import path ``dspy.teleprompt.teleprompt``: the optimizer base class."""

from ..optim.teleprompter import Teleprompter

__all__ = ["Teleprompter"]
