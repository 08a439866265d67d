"""DSPy's import path ``dspy.utils.saving``: load."""

from ..nn.module import load

__all__ = ["load"]
