"""``Evaluate``: run a program over a devset in parallel and score it with a metric."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Any

from ..callbacks import with_callbacks
from ..errors import EvaluationError, MetricError
from ..nn.graph import no_grad
from ..parallel import ParallelExecutor, TaskError
from ..primitives import Example, Prediction

logger = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """``score`` is a percentage (0–100); ``results`` holds ``(example, prediction, score)`` per row."""

    score: float
    results: list[tuple[Example, Any, float]]
    errors: list[TaskError] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return len(self.errors)

    def __float__(self) -> float:
        return float(self.score)

    def __repr__(self) -> str:
        return f"EvaluationResult(score={self.score:.2f}, n={len(self.results)}, failures={self.failures})"


def metric_value(value: Any) -> float:
    """A metric's return value as a number (bools, numbers, ``None``, or objects with a ``score``)."""
    if isinstance(value, (Prediction, dict)) and "score" in value:
        return float(value["score"])
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if value is None:
        return 0.0
    return float(value)


def score_example(program: Any, metric: Any, example: Example) -> tuple[Any, float]:
    """Run ``program`` on one example (recording no graph) and score it; a metric that raises gives
    :class:`MetricError`. The one per-example step of ``Evaluate`` and of the optimizers' scoring."""
    with no_grad():
        prediction = program(**example.inputs())
    try:
        score = metric_value(metric(example, prediction))
    except Exception as exc:
        raise MetricError(f"The metric raised {type(exc).__name__}: {exc}. Make the metric handle this "
                          "prediction (it is counted as a failure).") from exc
    return prediction, score


class Evaluate:
    _callback_kind = "evaluate"

    def __init__(self, devset: list[Example] | None = None, metric: Any = None, num_threads: int | None = None,
                 display_progress: bool = False, display_table: bool | int = False, max_errors: int | None = None,
                 provide_traceback: bool | None = None, failure_score: float = 0.0, callbacks: list[Any] | None = None,
                 **kwargs: Any) -> None:
        self.devset = devset
        self.metric = metric
        self.num_threads = num_threads
        self.display_progress = display_progress
        self.display_table = display_table
        self.max_errors = max_errors
        self.provide_traceback = provide_traceback
        self.failure_score = failure_score
        self.callbacks = list(callbacks or [])

    @with_callbacks
    def __call__(self, program: Any, metric: Any = None, devset: list[Example] | None = None,
                 num_threads: int | None = None, display_progress: bool | None = None,
                 display_table: bool | int | None = None, callback_metadata: dict[str, Any] | None = None,
                 **kwargs: Any) -> EvaluationResult:
        metric = metric or self.metric
        devset = self.devset if devset is None else devset
        if metric is None:
            raise EvaluationError("Evaluate needs a metric: Evaluate(devset=..., metric=answer_exact_match).")
        if not devset:
            raise EvaluationError("The devset is empty: pass at least one Example to Evaluate(devset=...).")
        display_progress = self.display_progress if display_progress is None else display_progress
        display_table = self.display_table if display_table is None else display_table
        executor = ParallelExecutor(num_threads=num_threads or self.num_threads, max_errors=self.max_errors,
                                    disable_progress_bar=not display_progress,
                                    provide_traceback=self.provide_traceback, description="Evaluate")
        def one(example: Example) -> tuple[Any, float]:
            return score_example(program, metric, example)

        outputs = executor.run(one, devset)
        results: list[tuple[Example, Any, float]] = []
        for example, out in zip(devset, outputs, strict=True):
            if out is None:
                results.append((example, Prediction(), float(self.failure_score)))
            else:
                results.append((example, out[0], out[1]))
        total = sum(r[2] for r in results)
        score = round(100.0 * total / len(devset), 2)
        errors = [executor.errors[i] for i in executor.failed_indices]
        if errors:
            logger.warning("Evaluate: %d of %d examples failed (scored %s).", len(errors), len(devset),
                           self.failure_score)
        if display_table:
            limit = display_table if isinstance(display_table, int) and not isinstance(display_table, bool) else None
            sys.stdout.write(format_table(results, limit) + "\n")
        return EvaluationResult(score=score, results=results, errors=errors)


def format_table(results: list[tuple[Example, Any, float]], limit: int | None = None, width: int = 40) -> str:
    """A plain-text table of examples, predictions and scores (no pandas needed)."""
    rows = results[:limit] if limit else results
    if not rows:
        return "(no results)"
    in_keys: list[str] = []
    out_keys: list[str] = []
    for example, pred, _ in rows:
        for k in example.keys():
            if k not in in_keys:
                in_keys.append(k)
        if isinstance(pred, Example):
            for k in pred.keys():
                if k not in out_keys:
                    out_keys.append(k)
    headers = [*in_keys, *[f"pred_{k}" for k in out_keys], "score"]

    def cell(value: Any) -> str:
        text = " ".join(str(value).split())
        return text if len(text) <= width else text[: width - 1] + "…"

    table = [[cell(ex.get(k, "")) for k in in_keys] + [cell(pred.get(k, "") if isinstance(pred, Example) else "")
             for k in out_keys] + [f"{score:.2f}"] for ex, pred, score in rows]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    sep = "-+-".join("-" * w for w in widths)
    body = "\n".join(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in table)
    more = f"\n... {len(results) - len(rows)} more rows" if len(rows) < len(results) else ""
    return f"{line}\n{sep}\n{body}{more}"
