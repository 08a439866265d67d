"""DSPy's import path ``dspy.clients.base_lm``: BaseLM."""

from ..lm.base import BaseLM, inspect_history
from ..nn.saving import CLASS_KEY as LM_CLASS_STATE_KEY

__all__ = ["BaseLM", "LM_CLASS_STATE_KEY", "inspect_history"]
