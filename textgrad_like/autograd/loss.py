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

from ..primitives import Example
from ..primitives.metric import call_metric, read_metric
from ..prompts import JudgeOutput, TextualBackward, check_override

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
    ``score`` the reduced metric score. ``items`` keeps the per-example scores and feedback.

    Losses add up: ``text_loss + other_text_loss`` concatenates the items (a prediction reached by
    both runs its backward once, with both feedbacks), and ``text_loss + sft_loss`` (either order)
    gives one loss whose ``backward()`` sends textual gradients to the text parameters **and** torch
    gradients to the LoRA tensors."""

    def __init__(self, items: list[LossItem], reduction: str = "mean", tensor_losses: Sequence[Any] = (),
                 backward_signature: Any = None) -> None:
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}.")
        self.items = items
        self.reduction = reduction
        self.tensor_losses = list(tensor_losses)
        self.backward_signature = backward_signature

    @property
    def score(self) -> float:
        if not self.items:
            return 0.0
        total = sum(i.score for i in self.items)
        return total / len(self.items) if self.reduction == "mean" else total

    @property
    def value(self) -> float:
        """The textual loss (reduced ``1 - score``) plus the value of every tensor loss added to it."""
        total = sum(1.0 - i.score for i in self.items)
        text = (total / len(self.items) if self.reduction == "mean" else total) if self.items else 0.0
        return text + sum(float(t.value) for t in self.tensor_losses)

    def item(self) -> float:
        return self.value

    def __float__(self) -> float:
        return self.value

    @property
    def feedback(self) -> list[str]:
        return [i.feedback for i in self.items]

    def __add__(self, other: Any) -> Loss:
        if isinstance(other, Loss):
            return Loss([*self.items, *other.items], self.reduction, [*self.tensor_losses, *other.tensor_losses],
                        self.backward_signature or other.backward_signature)
        if hasattr(other, "tensor") and callable(getattr(other, "backward", None)):  # an SFT loss value
            return Loss(list(self.items), self.reduction, [*self.tensor_losses, other], self.backward_signature)
        if isinstance(other, (int, float)) and other == 0:
            return self  # sum([...]) starts from 0
        return NotImplemented

    __radd__ = __add__

    def backward(self, backward_lm: Any = None, num_threads: int | None = None, retain_graph: bool = False,
                 backward_signature: Any = None) -> Any:
        """Send textual gradients to every trainable text parameter that influenced this loss, and torch
        gradients to the LoRA tensors of any SFT loss added to it. A second call raises
        :class:`~textgrad_like.errors.GraphFreedError` unless the first passed ``retain_graph=True``."""
        from .backward import backward

        visited: Any = []
        if self.items:
            visited = backward(self, backward_lm=backward_lm, num_threads=num_threads, retain_graph=retain_graph,
                               backward_signature=backward_signature or self.backward_signature)
        for tensor_loss in self.tensor_losses:
            tensor_loss.backward(retain_graph=retain_graph)
        return visited

    def __repr__(self) -> str:
        extra = f", tensor_losses={len(self.tensor_losses)}" if self.tensor_losses else ""
        return f"Loss(value={self.value:.4f}, score={self.score:.4f}, n={len(self.items)}{extra})"


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
    def __init__(self, reduction: str = "mean", backward_signature: Any = None) -> None:
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}.")
        self.reduction = reduction
        # the prompt of the textual backward pass for this loss (a subclass of prompts.TextualBackward)
        self.backward_signature = check_override(backward_signature, TextualBackward, "backward_signature")

    def item_for(self, prediction: Any, example: Example | None) -> LossItem:
        raise NotImplementedError

    def __call__(self, predictions: Any, examples: Any = None) -> Loss:
        preds = _as_list(predictions)
        exs = _as_list(examples) if examples is not None else [None] * len(preds)
        if len(exs) != len(preds):
            raise ValueError(f"{len(preds)} predictions but {len(exs)} examples: pass one example per prediction.")
        items = [self.item_for(p, e) for p, e in zip(preds, exs, strict=True)]
        return Loss(items, self.reduction, backward_signature=self.backward_signature)


class MetricLoss(_BaseLoss):
    """Loss from a DSPy metric ``metric(example, prediction, trace=None)``. Feedback says which fields
    were wrong and what the gold values are; a metric that returns feedback itself is used as is."""

    def __init__(self, metric: Callable[..., Any], reduction: str = "mean", backward_signature: Any = None) -> None:
        super().__init__(reduction, backward_signature)
        if not callable(metric):
            raise ValueError(f"metric must be callable (example, prediction, trace=None), got {type(metric).__name__}.")
        self.metric = metric

    def item_for(self, prediction: Any, example: Example | None) -> LossItem:
        graph = getattr(prediction, "graph", None)
        trace = graph.trace() if graph is not None else None
        score, feedback = read_metric(call_metric(self.metric, example, prediction, trace))
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
        score, feedback = read_metric(call_metric(self.metric, example, prediction, trace))
        if not feedback:
            feedback = f"Score {score:.2f}. {describe_difference(example, prediction)}".strip()
        return LossItem(prediction, example, score, feedback, graph)


class LMJudgeLoss(_BaseLoss):
    """An LM judge scores each prediction (0–1) and explains what to improve, following ``instructions``."""

    def __init__(self, instructions: str, judge_lm: Any = None, reduction: str = "mean",
                 fields: Sequence[str] | None = None, signature: Any = None, backward_signature: Any = None) -> None:
        super().__init__(reduction, backward_signature)
        from ..predict import Predict

        self.instructions = instructions
        self.judge_lm = judge_lm
        self.fields = list(fields) if fields else None
        base = check_override(signature, JudgeOutput, "signature")
        self.judge = Predict(base.with_instructions(instructions))

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
