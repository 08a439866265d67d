"""DSPy's import path ``dspy.teleprompt.bootstrap``: BootstrapFewShot."""

from ..optim.bootstrap import BootstrapFewShot

__all__ = ["BootstrapFewShot"]
