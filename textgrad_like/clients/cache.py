"""DSPy's import path ``dspy.clients.cache``: the LM cache."""

from ..lm.cache import Cache

__all__ = ["Cache"]
