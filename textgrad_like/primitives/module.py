"""DSPy's import path ``dspy.primitives.module``: Module (ours lives in ``textgrad_like.nn``)."""

from ..nn.module import Module

__all__ = ["Module"]
