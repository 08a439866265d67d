"""DSPy's import path ``dspy.clients``: LM clients (ours live in ``textgrad_like.lm``)."""

from ..lm.cache import configure_cache
from .base_lm import BaseLM, inspect_history
from .embedding import Embedder
from .lm import LM

__all__ = ["configure_cache", "BaseLM", "inspect_history", "Embedder", "LM"]
