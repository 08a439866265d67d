"""``Evaluate``: run a program over a devset in parallel and score it with a metric.

``Evaluate(devset=..., metric=...)(program)`` returns an :class:`EvaluationResult` (a ``Prediction``
with ``score``, a percentage, and ``results``, one ``(example, prediction, score)`` per row), as DSPy's.
It also reports the distribution of the program's answers (``label_distribution``) and warns when the
program gives one answer for (nearly) every example: its score then only measures that answer's share.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
import types
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from ..callbacks import with_callbacks
from ..errors import EvaluationError
from ..nn.graph import no_grad
from ..parallel import ParallelExecutor, TaskError
from ..primitives import Example, Prediction
from ..primitives.metric import call_metric, read_metric

logger = logging.getLogger(__name__)

__all__ = ["Evaluate", "EvaluationResult", "format_table", "label_distribution", "score_example"]

#: a program answers "one label for nearly every example" when its most common answer covers at
#: least this share of at least ``COLLAPSE_MIN_EXAMPLES`` scored examples.
COLLAPSE_SHARE = 0.9
COLLAPSE_MIN_EXAMPLES = 10
_NOT_LABELS = frozenset({"reasoning", "rationale"})


class EvaluationResult(Prediction):
    """What ``Evaluate`` returns: a ``Prediction`` with ``score`` (a percentage, 0–100) and ``results``
    (``(example, prediction, score)`` per devset row). Besides DSPy's two fields it carries, as
    attributes: ``errors`` (one :class:`TaskError` per failed row), ``label_field`` and
    ``label_distribution`` (``{answer: count}``, most common first, or ``None`` when the program's
    answer field could not be chosen) and ``collapsed`` (the program gave one answer for nearly all rows).
    """

    __slots__ = ("errors", "label_field", "label_distribution", "collapsed")

    def __init__(self, score: float, results: list[tuple[Example, Any, float]], errors: list[TaskError] | None = None,
                 label_field: str | None = None, label_distribution: dict[str, int] | None = None,
                 collapsed: bool = False) -> None:
        super().__init__(score=score, results=results)
        object.__setattr__(self, "errors", list(errors or []))
        object.__setattr__(self, "label_field", label_field)
        object.__setattr__(self, "label_distribution", label_distribution)
        object.__setattr__(self, "collapsed", collapsed)

    @property
    def failures(self) -> int:
        return len(self.errors)

    def __repr__(self) -> str:
        return f"EvaluationResult(score={self.score}, results=<list of {len(self.results)} results>)"

    __str__ = __repr__


def score_example(program: Any, metric: Any, example: Example) -> tuple[Any, float]:
    """Run ``program`` on one example (recording no graph) and score it through the metric protocol
    (:func:`~textgrad_like.primitives.metric.call_metric`); a metric that raises or returns something
    unreadable gives :class:`MetricError`. The one per-example step of ``Evaluate`` and of the
    optimizers' scoring."""
    with no_grad():
        prediction = program(**example.inputs())
    return prediction, read_metric(call_metric(metric, example, prediction)).score


def _answer_field(results: Sequence[tuple[Example, Any, float]], field: str | None) -> str | None:
    if field is not None:
        return field
    for example, pred, _ in results:
        if not isinstance(pred, Example) or not len(pred):
            continue
        outputs = [k for k in pred.keys() if k not in _NOT_LABELS]
        labels = [k for k in example.labels().keys() if k in outputs] if example.input_keys else []
        if len(labels) == 1:
            return labels[0]
        return outputs[0] if len(outputs) == 1 else None
    return None


def _label(value: Any) -> str:
    return " ".join(str(value).split())


def label_distribution(results: Sequence[tuple[Example, Any, float]], field: str | None = None,
                       ) -> tuple[str | None, dict[str, int] | None]:
    """The program's answers counted: ``(field, {answer: count})``, most common first. The field is
    ``field``, else the example's one label field the prediction has, else the prediction's one output
    (besides ``reasoning``); ``(None, None)`` when none can be chosen. Failed rows are not counted."""
    name = _answer_field(results, field)
    if name is None:
        return None, None
    counts = Counter(_label(pred[name]) for _, pred, _ in results if isinstance(pred, Example) and name in pred)
    return name, dict(counts.most_common())


def _collapse_warning(results: Sequence[tuple[Example, Any, float]], name: str, counts: dict[str, int],
                      share: float, min_examples: int) -> bool:
    answered = sum(counts.values())
    if answered < min_examples or not counts:
        return False
    top, count = next(iter(counts.items()))
    if count < share * answered:
        return False
    gold = [_label(ex[name]) for ex, _, _ in results if name in ex]
    gold_share = f"{100.0 * gold.count(top) / len(gold):.1f}%" if gold else "unknown"
    logger.warning("Evaluate: the program answered %s=%r for %d of %d examples (%.1f%%); its score mostly "
                   "measures how often the gold label is %r (%s of this devset), not what it learned. Try "
                   "demos (BootstrapFewShot), fine-tuning or a stronger LM.", name, top, count, answered,
                   100.0 * count / answered, top, gold_share)
    return True


def _metric_name(metric: Any) -> str:
    return metric.__name__ if isinstance(metric, types.FunctionType) else type(metric).__name__


def _merge(example: Example, prediction: Any) -> dict[str, Any]:
    ex = example.toDict()
    pred = dict(prediction.items()) if hasattr(prediction, "items") and callable(prediction.items) else None
    if pred is None:
        return {**ex, "prediction": prediction}
    merged = {f"example_{k}" if k in pred else k: v for k, v in ex.items()}
    merged.update({f"pred_{k}" if k in ex else k: v for k, v in pred.items()})
    return merged


def result_rows(results: Sequence[tuple[Example, Any, float]], metric_name: str) -> list[dict[str, Any]]:
    """One dict per result (example fields, prediction fields — ``example_``/``pred_`` prefixed when the
    names clash, as DSPy — and the score under the metric's name): the rows of the table, CSV and JSON."""
    return [_merge(example, pred) | {metric_name: score} for example, pred, score in results]


class Evaluate:
    """``Evaluate(devset=..., metric=..., num_threads=...)(program)`` → :class:`EvaluationResult`.

    DSPy's arguments: ``display_progress``, ``display_table`` (``True`` or a row count; printed to stdout),
    ``max_errors``, ``provide_traceback``, ``failure_score`` (the score of a row whose program or metric
    raised), ``save_as_csv``/``save_as_json`` (file paths), ``timeout``/``straggler_limit`` (straggler
    resubmission, see :class:`~textgrad_like.parallel.ParallelExecutor`), ``population_metric``
    (``fn(examples, predictions) -> score`` over the whole devset — macro-F1, a correlation — whose value,
    as it is, becomes ``result.score``; without ``metric`` the rows' scores are ``None``). Ours: ``label_field`` (the
    prediction field whose answers are counted; chosen automatically when ``None``) and
    ``collapse_share`` (warn when one answer covers at least this share of ≥ 10 examples).
    """

    _callback_kind = "evaluate"

    def __init__(self, devset: list[Example] | None = None, metric: Callable[..., Any] | None = None,
                 num_threads: int | None = None, display_progress: bool = False, display_table: bool | int = False,
                 max_errors: int | None = None, provide_traceback: bool | None = None, failure_score: float = 0.0,
                 save_as_csv: str | None = None, save_as_json: str | None = None, timeout: float | None = 120,
                 straggler_limit: int = 3, population_metric: Callable[[list[Example], list[Any]], Any] | None = None,
                 label_field: str | None = None, collapse_share: float = COLLAPSE_SHARE,
                 callbacks: list[Any] | None = None, **kwargs: Any) -> None:
        if "return_outputs" in kwargs or "return_all_scores" in kwargs:
            raise EvaluationError("`return_outputs`/`return_all_scores` are gone (as in DSPy 3): the returned "
                                  "EvaluationResult always has `.results`, one (example, prediction, score) per row.")
        if kwargs:
            logger.warning("Evaluate ignores unknown arguments: %s.", ", ".join(sorted(kwargs)))
        self.devset = devset
        self.metric = metric
        self.num_threads = num_threads
        self.display_progress = display_progress
        self.display_table = display_table
        self.max_errors = max_errors
        self.provide_traceback = provide_traceback
        self.failure_score = failure_score
        self.save_as_csv = save_as_csv
        self.save_as_json = save_as_json
        self.timeout = timeout
        self.straggler_limit = straggler_limit
        self.population_metric = population_metric
        self.label_field = label_field
        self.collapse_share = collapse_share
        self.callbacks = list(callbacks or [])

    @with_callbacks
    def __call__(self, program: Any, metric: Callable[..., Any] | None = None, devset: list[Example] | None = None,
                 num_threads: int | None = None, display_progress: bool | None = None,
                 display_table: bool | int | None = None, callback_metadata: dict[str, Any] | None = None,
                 save_as_csv: str | None = None, save_as_json: str | None = None, timeout: Any = ...,
                 straggler_limit: int | None = None) -> EvaluationResult:
        metric = metric if metric is not None else self.metric
        devset = self.devset if devset is None else devset
        if metric is None and self.population_metric is None:
            raise EvaluationError("Evaluate needs a metric: Evaluate(devset=..., metric=answer_exact_match) "
                                  "(or population_metric=fn(examples, predictions)).")
        if not devset:
            raise EvaluationError("The devset is empty: pass at least one Example to Evaluate(devset=...).")
        display_progress = self.display_progress if display_progress is None else display_progress
        display_table = self.display_table if display_table is None else display_table
        save_as_csv = save_as_csv or self.save_as_csv
        save_as_json = save_as_json or self.save_as_json
        executor = ParallelExecutor(
            num_threads=num_threads or self.num_threads, max_errors=self.max_errors,
            disable_progress_bar=not display_progress, provide_traceback=self.provide_traceback,
            description="Evaluate", timeout=self.timeout if timeout is ... else timeout,
            straggler_limit=self.straggler_limit if straggler_limit is None else straggler_limit)

        def one(example: Example) -> tuple[Any, float | None]:
            if metric is None:
                with no_grad():
                    return program(**example.inputs()), None
            return score_example(program, metric, example)

        outputs = executor.run(one, devset)
        failed = None if metric is None else float(self.failure_score)
        results: list[tuple[Example, Any, Any]] = [
            (example, Prediction(), failed) if out is None else (example, out[0], out[1])
            for example, out in zip(devset, outputs, strict=True)]
        if self.population_metric is not None:
            score = self.population_metric([r[0] for r in results], [r[1] for r in results])
            logger.info("Population metric: %s", score)
        else:
            total = sum(r[2] for r in results)
            score = round(100.0 * total / len(devset), 2)
            logger.info("Average Metric: %s / %d (%.1f%%)", round(total, 2), len(devset), score)
        errors = [executor.errors[i] for i in executor.failed_indices]
        if errors:
            logger.warning("Evaluate: %d of %d examples failed (scored %s).", len(errors), len(devset),
                           self.failure_score)
        field, counts = label_distribution(results, self.label_field)
        collapsed = field is not None and counts is not None and _collapse_warning(
            results, field, counts, self.collapse_share, COLLAPSE_MIN_EXAMPLES)
        name = _metric_name(metric if metric is not None else self.population_metric)
        if display_table:
            limit = None if isinstance(display_table, bool) else int(display_table)
            sys.stdout.write(format_table(results, limit, metric_name=name) + "\n")
        if save_as_csv or save_as_json:
            rows = result_rows(results, name)
            if save_as_csv:
                _write_csv(save_as_csv, rows)
            if save_as_json:
                with open(save_as_json, "w", encoding="utf-8") as f:
                    json.dump(rows, f, default=_jsonable)
        return EvaluationResult(score=score, results=results, errors=errors, label_field=field,
                                label_distribution=counts, collapsed=collapsed)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Example):
        return value.toDict()
    return str(value)


def _write_csv(path: str, rows: list[dict[str, Any]]) -> None:
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def format_table(results: Sequence[tuple[Example, Any, float]], limit: int | None = None, width: int = 40,
                 metric_name: str = "score") -> str:
    """A plain-text table of DSPy's result rows (see :func:`result_rows`; no pandas needed)."""
    shown = list(results[:limit]) if limit else list(results)
    if not shown:
        return "(no results)"
    rows = result_rows(shown, metric_name)
    headers: list[str] = []
    for row in rows:
        headers.extend(k for k in row if k not in headers and k != metric_name)
    headers.append(metric_name)

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.2f}"
        text = " ".join(str(value).split())
        return text if len(text) <= width else text[: width - 1] + "…"

    table = [[cell(row.get(h, "")) for h in headers] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    sep = "-+-".join("-" * w for w in widths)
    body = "\n".join(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in table)
    more = f"\n... {len(results) - len(shown)} more rows not displayed ..." if len(shown) < len(results) else ""
    return f"{line}\n{sep}\n{body}{more}"
