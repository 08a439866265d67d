"""The one metric protocol: how every part of the library calls a metric and reads what it returns.

**Calling** (:func:`call_metric`). A metric is any callable whose first two positional parameters are
the gold example and the prediction. It may accept more, in DSPy's order:

- ``metric(example, pred)`` — as DSPy's ``Evaluate`` calls it;
- ``metric(example, pred, trace=None)`` — DSPy's usual form (``trace`` is set while bootstrapping);
- ``metric(gold, pred, trace=None, pred_name=None, pred_trace=None)`` — GEPA's feedback form.

The signature is inspected once per call and the metric gets as many of these five arguments as it
declares (positionally; ``trace``/``pred_name``/``pred_trace`` by keyword when they are keyword-only).
A metric declared ``(*args)`` gets the first three, or all five when a ``pred_name`` is given. A
module used as a metric (``SemanticF1``) is read through its ``forward``. The metric is called
exactly once: whatever it raises (``TypeError`` included) becomes a :class:`MetricError` naming the
cause, except :class:`BudgetExceeded` and :class:`MetricError`, which pass through unchanged.

**Reading** (:func:`read_metric`) gives a :class:`MetricResult` ``(score, feedback)`` from:

============================================ ==============================
metric returns                               score, feedback
============================================ ==============================
``True`` / ``False``                         ``1.0`` / ``0.0``, ``None``
a number (int, float, numpy scalar)          ``float(n)``, ``None``
``(score, feedback)``                        ``float(score)``, ``str(feedback)``
``Prediction(score=..., feedback=...)``      the two fields (``feedback`` optional)
``{"score": ..., "feedback": ...}``          the two keys (``feedback`` optional)
============================================ ==============================

Anything else (``None``, a string, a dict or Prediction with ``feedback`` but no ``score``) is a
:class:`MetricError` that says what to return instead — never a silent ``0.0``.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ..errors import BudgetExceeded, MetricError
from .example import Example

__all__ = ["MetricResult", "call_metric", "read_metric", "metric_score"]

_OPTIONAL = ("trace", "pred_name", "pred_trace")
_SHAPES = ("a bool, a number, (score, feedback), Prediction(score=..., feedback=...) "
           "or {'score': ..., 'feedback': ...}")


class MetricResult(NamedTuple):
    """A metric's verdict on one prediction: ``score`` (a float) and optional ``feedback`` text."""

    score: float
    feedback: str | None = None


def _plan(metric: Callable[..., Any]) -> tuple[int, tuple[str, ...]]:
    """How to call ``metric``: the number of positional arguments (2–5, or -1 for ``*args``) and the
    names of the optional arguments it takes by keyword only."""
    target = metric
    forward = getattr(metric, "forward", None)
    if not inspect.isroutine(metric) and callable(forward):
        target = forward  # a Module used as a metric: its __call__ is (*args, **kwargs)
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature: DSPy's three-argument form
        return 3, ()
    positional = 0
    filling = True
    keyword: list[str] = []
    for p in params:
        if p.kind == inspect.Parameter.VAR_POSITIONAL:
            return (-1, ()) if filling else (positional, ())
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            # the 3rd positional is DSPy's trace whatever its name; the 4th and 5th are GEPA's
            # pred_name/pred_trace only when so named or required (so `frac=1.0` is left alone)
            filling = filling and (positional < 3 or p.name in _OPTIONAL[1:] or p.default is inspect.Parameter.empty)
            positional += filling
        elif p.kind == inspect.Parameter.KEYWORD_ONLY and p.name in _OPTIONAL:
            keyword.append(p.name)
    if positional < 2:
        raise MetricError(f"The metric {_name(metric)} takes {positional} positional argument(s); a metric must "
                          "accept (example, prediction), optionally followed by trace=None (DSPy) or "
                          "trace, pred_name, pred_trace (GEPA).")
    required = [p for p in params if p.default is inspect.Parameter.empty
                and p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    if len(required) > 5:
        raise MetricError(f"The metric {_name(metric)} requires {len(required)} arguments; a metric takes at most "
                          "five: (gold, pred, trace, pred_name, pred_trace). Give the others defaults.")
    return min(positional, 5), tuple(keyword)


def _name(metric: Any) -> str:
    return getattr(metric, "__qualname__", None) or type(metric).__name__


def call_metric(metric: Callable[..., Any], example: Any, prediction: Any, trace: Any = None,
                pred_name: str | None = None, pred_trace: Any = None) -> Any:
    """Call ``metric`` once with as many of ``(example, prediction, trace, pred_name, pred_trace)`` as it
    declares and return its raw value (read it with :func:`read_metric`). See the module docstring."""
    positional, keyword = _plan(metric)
    values = (example, prediction, trace, pred_name, pred_trace)
    if positional < 0:
        positional = 5 if (pred_name is not None or pred_trace is not None) else 3
    kwargs = {name: values[2 + _OPTIONAL.index(name)] for name in keyword}
    try:
        return metric(*values[:positional], **kwargs)
    except (BudgetExceeded, MetricError):
        raise
    except Exception as exc:
        raise MetricError(f"The metric {_name(metric)} raised {type(exc).__name__}: {exc}. Make the metric "
                          "handle this prediction (the example is scored as a failure).") from exc


def read_metric(value: Any) -> MetricResult:
    """Read what a metric returned as ``MetricResult(score, feedback)``; see the module docstring for
    the accepted shapes. Raises :class:`MetricError` for anything else."""
    if isinstance(value, bool):
        return MetricResult(1.0 if value else 0.0, None)
    if isinstance(value, numbers.Real):
        return MetricResult(float(value), None)
    if isinstance(value, tuple):
        if len(value) != 2:
            raise MetricError(f"A metric returned a tuple of {len(value)} items; return (score, feedback) or "
                              f"{_SHAPES}.")
        score, feedback = value
        return MetricResult(_number(score, "the score in (score, feedback)"), _text(feedback))
    if isinstance(value, (Example, Mapping)):
        if "score" not in value:
            has = "feedback but no score" if "feedback" in value else f"keys {sorted(value.keys())} but no score"
            raise MetricError(f"A metric returned a {type(value).__name__} with {has}; add a numeric score, e.g. "
                              "Prediction(score=0.0, feedback=...). A missing score is not read as 0.")
        return MetricResult(_number(value["score"], "its 'score'"), _text(value.get("feedback")))
    if value is None:
        raise MetricError(f"A metric returned None (a missing `return`?); return {_SHAPES}.")
    if isinstance(value, (str, bytes)):
        raise MetricError(f"A metric returned the text {value!r}; return {_SHAPES}.")
    return MetricResult(_number(value, "the value"), None)


def metric_score(value: Any) -> float:
    """Only the score of :func:`read_metric`."""
    return read_metric(value).score


def _number(value: Any, what: str) -> float:
    if isinstance(value, (str, bytes)) or value is None:
        raise MetricError(f"A metric returned {value!r} as {what}; it must be a number or a bool.")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MetricError(f"A metric returned a {type(value).__name__} as {what}; it must be a number or a bool "
                          f"(a metric returns {_SHAPES}).") from None


def _text(feedback: Any) -> str | None:
    return None if feedback is None else str(feedback)
