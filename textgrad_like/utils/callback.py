"""DSPy's import path for callbacks: ``textgrad_like.utils.callback.BaseCallback``."""

from ..callbacks import BaseCallback, with_callbacks

__all__ = ["BaseCallback", "with_callbacks"]
