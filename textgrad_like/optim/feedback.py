"""One feedback concept for every reflective optimizer: textual :class:`Gradient` items on parameters.

``loss.backward()`` leaves ``Gradient(feedback, context, score)`` items in each predictor's
``instruction.grad``. A GEPA-style feedback metric ``metric(gold, pred, trace, pred_name, pred_trace)``
produces the same thing, one predictor at a time. This module converts in both directions:

- :func:`gradients_from_metric` runs a program on examples under :func:`~textgrad_like.nn.record`,
  asks the metric for feedback on each predictor (``pred_name`` / ``pred_trace``) and accumulates
  the answers as ``Gradient`` items on that predictor's Instruction, ready for
  :class:`~textgrad_like.optim.TextualGradientDescent` (``opt.step()``).
- :func:`reflective_dataset_from_gradients` turns the gradients on a module's predictors — made by
  ``loss.backward()`` or by :func:`gradients_from_metric` — into GEPA's reflective dataset
  ``{predictor name: [{"Inputs": ..., "Generated Outputs": ..., "Feedback": ...}, ...]}``.

GEPA itself builds its reflective dataset this way (metric → gradients → dataset), so a run can
also take its feedback from ``backward()`` (``GEPA(..., feedback_source="backward")``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..nn.graph import record
from ..nn.parameter import Gradient
from ..parallel import ParallelExecutor
from ..primitives import Example, Prediction
from ..primitives.metric import call_metric, read_metric

logger = logging.getLogger(__name__)

__all__ = [
    "Rollout",
    "call_metric",
    "format_reflective_records",
    "gradients_from_metric",
    "gradients_from_rollouts",
    "predictor_names_of",
    "read_metric",
    "reflective_dataset_from_gradients",
    "run_rollouts",
]

Trace = list[tuple[Any, dict[str, Any], Any]]


# --- metrics -------------------------------------------------------------------------------------
# Metrics are called and read through the one protocol in primitives/metric.py (call_metric, read_metric).


def _default_feedback(example: Any, prediction: Any, score: float) -> str:
    from ..autograd.loss import describe_difference

    verdict = "correct" if score >= 1.0 else ("partly correct" if score > 0 else "wrong")
    return f"The output was {verdict} (score {score:.2f}). {describe_difference(example, prediction)}".strip()


# --- rollouts ------------------------------------------------------------------------------------
@dataclass
class Rollout:
    """One run of a program on one example, scored: its recorded trace, score and feedback."""

    index: int
    example: Any
    prediction: Any
    trace: Trace
    score: float
    feedback: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.error is not None


def predictor_names_of(program: Any) -> dict[int, str]:
    """``{id(predictor): name}`` for every predictor of ``program``."""
    return {id(p): name for name, p in program.named_predictors()}


def run_rollouts(program: Any, examples: Sequence[Any], metric: Callable[..., Any], *,
                 num_threads: int | None = None, failure_score: float = 0.0,
                 on_metric_call: Callable[[], None] | None = None, description: str = "Rollouts") -> list[Rollout]:
    """Run ``program`` on each example under :func:`record` and score it with ``metric`` (called once per
    example, with ``pred_name=None``). A program that raises gets ``failure_score`` and its error kept."""

    def one(item: tuple[int, Any]) -> Rollout:
        index, example = item
        graph = None
        try:
            with record() as graph:
                prediction = program(**example.inputs())
        except Exception as exc:
            logger.warning("Program failed on example %d: %s: %s", index, type(exc).__name__, exc, exc_info=True)
            trace = graph.trace() if graph is not None else []
            if on_metric_call is not None:
                on_metric_call()
            return Rollout(index, example, None, trace, float(failure_score), None,
                           error=f"{type(exc).__name__}: {exc}")
        trace = graph.trace()
        value = call_metric(metric, example, prediction, trace, None, None)
        if on_metric_call is not None:
            on_metric_call()
        score, feedback = read_metric(value)
        return Rollout(index, example, prediction, trace, score, feedback, extra={"graph": graph})

    executor = ParallelExecutor(num_threads=num_threads, max_errors=len(examples) + 1, disable_progress_bar=True,
                                description=description)
    results = executor.run(one, list(enumerate(examples)))
    out: list[Rollout] = []
    for i, (example, rollout) in enumerate(zip(examples, results, strict=True)):
        if rollout is None:  # the metric itself raised: keep it visible, score it as a failure
            err = executor.errors.get(i)
            out.append(Rollout(i, example, None, [], float(failure_score), None, error=str(err) if err else "failed"))
        else:
            out.append(rollout)
    return out


def _as_dict(value: Any) -> Any:
    if isinstance(value, (Prediction, Example)):
        return dict(value.items())
    return value


def gradients_from_rollouts(program: Any, rollouts: Iterable[Rollout], metric: Callable[..., Any], *,
                            predictor_names: Sequence[str] | None = None, add_format_failure_as_feedback: bool = False,
                            on_feedback_call: Callable[[], None] | None = None) -> int:
    """Ask ``metric`` for feedback on each predictor of each rollout and accumulate it as
    ``Gradient`` items on the predictor's Instruction (in ``program``). Returns the number of metric calls.

    Each call is ``metric(gold, pred, trace, pred_name, pred_trace)`` with ``pred_trace`` the part of the
    trace made by that predictor. Feedback the metric does not write is filled in automatically (which
    fields were wrong and their gold values)."""
    named = dict(program.named_predictors())
    wanted = list(predictor_names) if predictor_names is not None else list(named)
    ids = predictor_names_of(program)
    calls = 0
    for rollout in rollouts:
        by_name: dict[str, Trace] = {}
        for entry in rollout.trace:
            name = ids.get(id(entry[0]))
            if name is not None:
                by_name.setdefault(name, []).append(entry)
        for name in wanted:
            predictor = named.get(name)
            if predictor is None:
                continue
            pred_trace = by_name.get(name)
            if rollout.failed:
                if add_format_failure_as_feedback and not pred_trace:
                    predictor.instruction.accumulate(Gradient(
                        feedback=f"The program failed before producing valid outputs for this step: {rollout.error}. "
                                 "The step's reply must follow the required output format exactly.",
                        context={"node": name, "inputs": dict(rollout.example.inputs().items()),
                                 "outputs": {"error": rollout.error}, "source": "format_failure",
                                 "example_index": rollout.index},
                        score=rollout.score))
                continue
            if not pred_trace:
                continue
            value = call_metric(metric, rollout.example, rollout.prediction, rollout.trace, name, pred_trace)
            calls += 1
            if on_feedback_call is not None:
                on_feedback_call()
            score, feedback = read_metric(value)
            if not feedback:
                feedback = rollout.feedback or _default_feedback(rollout.example, rollout.prediction, score)
            _, inputs, outputs = pred_trace[-1]
            predictor.instruction.accumulate(Gradient(
                feedback=feedback,
                context={"node": name, "inputs": dict(inputs), "outputs": _as_dict(outputs), "source": "metric",
                         "example_index": rollout.index, "calls_in_trace": len(pred_trace)},
                score=score))
    return calls


def gradients_from_metric(program: Any, examples: Sequence[Any], metric: Callable[..., Any], *,
                          predictor_names: Sequence[str] | None = None, num_threads: int | None = None,
                          failure_score: float = 0.0, add_format_failure_as_feedback: bool = False) -> list[Rollout]:
    """Run ``program`` on ``examples`` and store the metric's per-predictor feedback as textual gradients.

    After it, ``TextualGradientDescent(program.parameters()).step()`` rewrites each instruction from
    the metric's feedback, exactly as it would after ``loss.backward()``. Returns the scored rollouts."""
    rollouts = run_rollouts(program, examples, metric, num_threads=num_threads, failure_score=failure_score)
    gradients_from_rollouts(program, rollouts, metric, predictor_names=predictor_names,
                            add_format_failure_as_feedback=add_format_failure_as_feedback)
    return rollouts


# --- gradients -> reflective dataset -----------------------------------------------------------------
def reflective_dataset_from_gradients(module: Any, predictor_names: Sequence[str] | None = None,
                                      max_records: int | None = None) -> dict[str, list[dict[str, Any]]]:
    """GEPA's reflective dataset from the ``Gradient`` items on each predictor's Instruction.

    Works on gradients left by ``loss.backward()`` (whose context holds the rendered inputs/outputs
    of the step) and on those made by :func:`gradients_from_metric` (dicts). Predictors without
    gradients are left out. Each record is ``{"Inputs", "Generated Outputs", "Feedback", "Score"}``."""
    out: dict[str, list[dict[str, Any]]] = {}
    wanted = set(predictor_names) if predictor_names is not None else None
    for name, predictor in module.named_predictors():
        if wanted is not None and name not in wanted:
            continue
        grads: list[Gradient] = list(predictor.instruction.grad or [])
        if not grads:
            continue
        records = []
        for g in grads[: max_records or None]:
            ctx = g.context or {}
            records.append({
                "Inputs": ctx.get("inputs", ""),
                "Generated Outputs": ctx.get("outputs", ""),
                "Feedback": g.feedback,
                "Score": g.score,
            })
        out[name] = records
    return out


def _render(value: Any) -> str:
    from ..adapters.values import format_value

    if isinstance(value, dict):
        return "\n".join(f"  {k}: {format_value(v)}" for k, v in value.items()) or "  (none)"
    return "  " + str(value).replace("\n", "\n  ")


def format_reflective_records(records: Sequence[dict[str, Any]], max_chars: int = 12_000) -> str:
    """Render reflective records as numbered plain text for a reflection prompt (cut at ``max_chars``)."""
    parts = []
    for i, rec in enumerate(records, 1):
        score = rec.get("Score")
        head = f"### Case {i}" + (f" (score {score:.2f})" if isinstance(score, (int, float)) else "")
        parts.append(f"{head}\nInputs:\n{_render(rec.get('Inputs', ''))}\nOutputs:\n"
                     f"{_render(rec.get('Generated Outputs', ''))}\nFeedback:\n  {rec.get('Feedback', '')}")
    text = "\n\n".join(parts)
    return text if len(text) <= max_chars else text[:max_chars] + "\n[... cut ...]"
