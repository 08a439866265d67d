"""Language models: the provider-agnostic :class:`LM`, caching, usage and budgets."""

from .base import GLOBAL_HISTORY, BaseLM, LMResponse, inspect_history
from .cache import Cache, configure_cache, get_cache
from .lm import LM
from .usage import Budget, Usage, UsageTracker, budget, track_usage

__all__ = ["BaseLM", "LM", "LMResponse", "inspect_history", "GLOBAL_HISTORY", "Cache", "configure_cache",
           "get_cache", "Budget", "Usage", "UsageTracker", "budget", "track_usage"]
