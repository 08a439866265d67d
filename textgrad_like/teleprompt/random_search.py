"""DSPy's import path ``dspy.teleprompt.random_search``: BootstrapFewShotWithRandomSearch."""

from ..optim.random_search import BootstrapFewShotWithRandomSearch

__all__ = ["BootstrapFewShotWithRandomSearch"]
