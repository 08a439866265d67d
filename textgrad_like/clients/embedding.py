"""DSPy's import path ``dspy.clients.embedding``: Embedder."""

from ..lm.embedder import Embedder

__all__ = ["Embedder"]
