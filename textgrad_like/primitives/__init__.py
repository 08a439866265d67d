"""Data records: :class:`Example`, :class:`Prediction`, :class:`Completions`."""

from .example import Example
from .prediction import Completions, Prediction

__all__ = ["Example", "Prediction", "Completions"]
