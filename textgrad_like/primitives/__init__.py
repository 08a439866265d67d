"""Data records: :class:`Example`, :class:`Prediction`, :class:`Completions`, :class:`RunHistory`."""

from .example import Example
from .prediction import Completions, Prediction
from .run_history import RunHistory

__all__ = ["Example", "Prediction", "Completions", "RunHistory"]
