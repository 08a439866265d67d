"""Data records: :class:`Example`, :class:`Prediction`, :class:`Completions`, :class:`RunHistory`;
the metric protocol (:func:`call_metric`, :func:`read_metric`)."""

from .example import Example
from .metric import MetricResult, call_metric, read_metric
from .prediction import Completions, Prediction
from .run_history import RunHistory

__all__ = ["Example", "Prediction", "Completions", "RunHistory", "MetricResult", "call_metric", "read_metric"]
