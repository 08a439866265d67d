"""DSPy's import path ``dspy.utils.usage_tracker``: usage tracking."""

from ..lm.usage import UsageTracker, track_usage

__all__ = ["UsageTracker", "track_usage"]
