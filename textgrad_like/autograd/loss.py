"""Losses: turn predictions (and gold examples) into a score plus textual feedback.

A loss function is called like a torch loss, ``loss = loss_fn(predictions, examples)``, and
returns a :class:`Loss`. ``loss.backward()`` then sends the feedback back through the graph
recorded while the predictions were made (see :mod:`textgrad_like.autograd.backward`).

- :class:`MetricLoss` — any DSPy metric; feedback is written automatically from gold vs prediction.
- :class:`FeedbackLoss` — a metric that returns ``Prediction(score=..., feedback=...)`` (as GEPA's do).
- :class:`LMJudgeLoss` — an LM judge with your instructions scores and criticises each prediction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import MetricError
from ..primitives import Example, Prediction

logger = logging.getLogger(__name__)


@dataclass
class LossItem:
    """The loss of one prediction: its score (higher is better) and feedback on it."""

    prediction: Any
    example: Example | None
    score: float
    feedback: str
    graph: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class Loss:
    """A (batch) loss. ``value`` is the reduced ``1 - score`` (so lower is better, as in torch) and
    ``score`` the reduced metric score. ``items`` keeps the per-example scores and feedback."""

    def __init__(self, items: list[LossItem], reduction: str = "mean") -> None:
        if reduction not in ("mean", "sum"):
            raise ValueError("reduction must be 'mean' or 'sum'")
        self.items = items
        self.reduction = reduction

    @property
    def score(self) -> float:
        if not self.items:
            return 0.0
        total = sum(i.score for i in self.items)
        return total / len(self.items) if self.reduction == "mean" else total

    @property
    def value(self) -> float:
        if not self.items:
            return 0.0
        total = sum(1.0 - i.score for i in self.items)
        return total / len(self.items) if self.reduction == "mean" else total

    def item(self) -> float:
        return self.value

    def __float__(self) -> float:
        return self.value

    @property
    def feedback(self) -> list[str]:
        return [i.feedback for i in self.items]

    def __add__(self, other: Loss) -> Loss:
        return Loss([*self.items, *other.items], self.reduction)

    def backward(self, backward_lm: Any = None, num_threads: int | None = None) -> Any:
        """Send textual gradients to every trainable parameter that influenced this loss."""
        from .backward import backward

        return backward(self, backward_lm=backward_lm, num_threads=num_threads)

    def __repr__(self) -> str:
        return f"Loss(value={self.value:.4f}, score={self.score:.4f}, n={len(self.items)})"


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def describe_difference(example: Example | None, prediction: Any) -> str:
    """Automatic feedback: which predicted fields differ from the gold labels."""
    if example is None:
        return ""
    try:
        labels = example.labels()
    except Exception:
        labels = example
    lines = []
    for key, gold in labels.items():
        if isinstance(prediction, Example) and key in prediction:
            got = prediction[key]
            if str(got).strip().lower() != str(gold).strip().lower():
                lines.append(f"The field `{key}` was {got!r}, but the correct value is {gold!r}.")
            else:
                lines.append(f"The field `{key}` was correct ({got!r}).")
    return " ".join(lines)


class _BaseLoss:
    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = reduction

    def item_for(self, prediction: Any, example: Example | None) -> LossItem:
        raise NotImplementedError

    def __call__(self, predictions: Any, examples: Any = None) -> Loss:
        preds = _as_list(predictions)
        exs = _as_list(examples) if examples is not None else [None] * len(preds)
        if len(exs) != len(preds):
            raise ValueError(f"{len(preds)} predictions but {len(exs)} examples: pass one example per prediction.")
        items = [self.item_for(p, e) for p, e in zip(preds, exs, strict=True)]
        return Loss(items, self.reduction)


def _score_of(value: Any) -> tuple[float, str | None]:
    """Read a metric result: a number/bool, ``(score, feedback)``, a dict or a Prediction."""
    if isinstance(value, bool):
        return (1.0 if value else 0.0), None
    if isinstance(value, (int, float)):
        return float(value), None
    if isinstance(value, tuple) and len(value) == 2:
        return float(value[0]), str(value[1])
    if isinstance(value, (Prediction, Example, dict)):
        score = value["score"] if "score" in value else 0.0
        feedback = value.get("feedback") if hasattr(value, "get") else None
        return float(score), (str(feedback) if feedback is not None else None)
    return float(value), None


class MetricLoss(_BaseLoss):
    """Loss from a DSPy metric ``metric(example, prediction, trace=None)``. Feedback says which fields
    were wrong and what the gold values are; a metric that returns feedback itself is used as is."""

    def __init__(self, metric: Callable[..., Any], reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.metric = metric

    def item_for(self, prediction: Any, example: Example | None) -> LossItem:
        graph = getattr(prediction, "graph", None)
        trace = graph.trace() if graph is not None else None
        try:
            value = self.metric(example, prediction, trace)
        except TypeError:
            value = self.metric(example, prediction)
        except Exception as exc:
            raise MetricError(f"The metric raised {type(exc).__name__}: {exc}") from exc
        score, feedback = _score_of(value)
        if not feedback:
            auto = describe_difference(example, prediction)
            verdict = "correct" if score >= 1.0 else ("partly correct" if score > 0 else "wrong")
            feedback = f"The output was {verdict} (score {score:.2f}). {auto}".strip()
        return LossItem(prediction, example, score, feedback, graph)


class FeedbackLoss(MetricLoss):
    """Loss from a metric that returns a score and feedback text (``Prediction(score=, feedback=)``,
    a dict, or a ``(score, feedback)`` tuple). Accepts GEPA-style metrics
    ``metric(gold, pred, trace, pred_name, pred_trace)`` too."""

    def item_for(self, prediction: Any, example: Example | None) -> LossItem:
        graph = getattr(prediction, "graph", None)
        trace = graph.trace() if graph is not None else None
        try:
            try:
                value = self.metric(example, prediction, trace, None, None)
            except TypeError:
                value = self.metric(example, prediction, trace)
        except Exception as exc:
            raise MetricError(f"The metric raised {type(exc).__name__}: {exc}") from exc
        score, feedback = _score_of(value)
        if not feedback:
            feedback = f"Score {score:.2f}. {describe_difference(example, prediction)}".strip()
        return LossItem(prediction, example, score, feedback, graph)


class LMJudgeLoss(_BaseLoss):
    """An LM judge scores each prediction (0–1) and explains what to improve, following ``instructions``."""

    def __init__(self, instructions: str, judge_lm: Any = None, reduction: str = "mean",
                 fields: Sequence[str] | None = None) -> None:
        super().__init__(reduction)
        from ..predict import Predict
        from ..signatures import InputField, OutputField, make_signature

        self.instructions = instructions
        self.judge_lm = judge_lm
        self.fields = list(fields) if fields else None
        sig = make_signature({
            "task_inputs": (str, InputField(desc="the inputs the system received")),
            "system_output": (str, InputField(desc="what the system produced")),
            "reference": (str, InputField(desc="a reference answer, if any")),
            "feedback": (str, OutputField(desc="concrete criticism: what is wrong or missing and how to fix it")),
            "score": (float, OutputField(desc="quality from 0.0 (useless) to 1.0 (perfect)")),
        }, instructions, signature_name="JudgeOutput")
        self.judge = Predict(sig)

    def item_for(self, prediction: Any, example: Example | None) -> LossItem:
        from ..nn.graph import no_grad

        graph = getattr(prediction, "graph", None)
        inputs = ""
        reference = ""
        if example is not None:
            try:
                inputs = "\n".join(f"{k}: {v}" for k, v in example.inputs().items())
                reference = "\n".join(f"{k}: {v}" for k, v in example.labels().items())
            except Exception:
                inputs = "\n".join(f"{k}: {v}" for k, v in example.items())
        if isinstance(prediction, Example):
            keys = self.fields or list(prediction.keys())
            output = "\n".join(f"{k}: {prediction[k]}" for k in keys if k in prediction)
        else:
            output = str(getattr(prediction, "value", prediction))
        with no_grad():
            verdict = self.judge(task_inputs=inputs, system_output=output, reference=reference or "(none)",
                                 lm=self.judge_lm)
        score = max(0.0, min(1.0, float(verdict.score)))
        return LossItem(prediction, example, score, str(verdict.feedback), graph)
