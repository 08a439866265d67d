"""Language models: the provider-agnostic :class:`LM`, caching, usage and budgets."""

from .base import GLOBAL_HISTORY, BaseLM, LMResponse, inspect_history
from .cache import Cache, configure_cache, get_cache
from .lm import LM, register_lm_backend
from .usage import Budget, Usage, UsageTracker, budget, track_usage

# ``LM("local/...")`` is the in-process transformers model (imported on first use: no torch at import).
register_lm_backend("local/", "textgrad_like.lm.local:LocalLM")

__all__ = ["BaseLM", "LM", "LMResponse", "inspect_history", "GLOBAL_HISTORY", "Cache", "configure_cache",
           "get_cache", "Budget", "Usage", "UsageTracker", "budget", "track_usage", "register_lm_backend"]
