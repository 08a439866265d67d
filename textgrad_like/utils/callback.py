"""DSPy's import path for callbacks: ``textgrad_like.utils.callback.BaseCallback``."""

from ..callbacks import ACTIVE_CALL_ID, BaseCallback, with_callbacks

__all__ = ["ACTIVE_CALL_ID", "BaseCallback", "with_callbacks"]
