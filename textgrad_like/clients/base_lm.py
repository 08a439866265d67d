"""DSPy's import path ``dspy.clients.base_lm``: BaseLM."""

from ..lm.base import BaseLM, inspect_history

__all__ = ["BaseLM", "inspect_history"]
