"""DSPy's import path ``dspy.utils.exceptions``: the errors DSPy names."""

from ..errors import AdapterParseError, ContextWindowExceededError, LMError

__all__ = ["AdapterParseError", "ContextWindowExceededError", "LMError"]
