"""DSPy's import path ``dspy.teleprompt.bettertogether``: BetterTogether."""

from ..optim.better_together import BetterTogether

__all__ = ["BetterTogether"]
