"""LM-judged metrics for long answers: ``SemanticF1`` and ``CompleteAndGrounded``.

Both are modules (so their judges can be optimized like any program) and are called as metrics:
``metric(example, pred, trace=None)`` returns ``Prediction(score=...)`` (as DSPy's) with a score in
[0, 1], or — when a trace is given, as optimizers do while bootstrapping — whether the score reaches
``threshold``.
"""

from __future__ import annotations

from typing import Any

from ..nn.module import Module
from ..predict import ChainOfThought
from ..primitives import Prediction
from ..signatures import InputField, OutputField, Signature


class SemanticRecallPrecision(Signature):
    """Compare a system's response with the ground-truth response to the same question. Recall is the share of
    the ground truth's content that the response covers; precision is the share of the response's content that
    the ground truth supports. Give both as numbers between 0 and 1."""

    question: str = InputField()
    ground_truth: str = InputField()
    system_response: str = InputField()
    recall: float = OutputField(desc="0 to 1: how much of the ground truth the response covers")
    precision: float = OutputField(desc="0 to 1: how much of the response the ground truth supports")


class DecompositionalSemanticRecallPrecision(Signature):
    """Compare a system's response with the ground-truth response to the same question. First list the key ideas
    of each, then discuss which ideas match. Recall is the share of ground-truth ideas that the response states;
    precision is the share of response ideas that the ground truth supports. Give both between 0 and 1."""

    question: str = InputField()
    ground_truth: str = InputField()
    system_response: str = InputField()
    ground_truth_key_ideas: str = OutputField(desc="numbered list of the ground truth's key ideas")
    system_response_key_ideas: str = OutputField(desc="numbered list of the response's key ideas")
    discussion: str = OutputField(desc="which ideas overlap and which do not")
    recall: float = OutputField(desc="0 to 1")
    precision: float = OutputField(desc="0 to 1")


class AnswerCompleteness(Signature):
    """Judge how completely a system's response covers the key ideas of the ground-truth response: list the key
    ideas of both, discuss what is covered, then give completeness between 0 and 1."""

    question: str = InputField()
    ground_truth: str = InputField()
    system_response: str = InputField()
    ground_truth_key_ideas: str = OutputField()
    system_response_key_ideas: str = OutputField()
    discussion: str = OutputField()
    completeness: float = OutputField(desc="0 to 1")


class AnswerGroundedness(Signature):
    """Judge how well a system's response is supported by the retrieved context (or by commonsense reasoning
    from it): list the response's claims, discuss which are supported, then give groundedness between 0 and 1."""

    question: str = InputField()
    retrieved_context: str = InputField()
    system_response: str = InputField()
    system_response_claims: str = OutputField()
    discussion: str = OutputField()
    groundedness: float = OutputField(desc="0 to 1")


def f1_score(precision: float, recall: float) -> float:
    """The harmonic mean of ``precision`` and ``recall``, each clipped to [0, 1]."""
    precision, recall = _clip(precision), _clip(recall)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _clip(value: Any) -> float:
    return max(0.0, min(1.0, float(value)))


class SemanticF1(Module):
    """F1 of semantic recall and precision of ``pred.response`` against ``example.response``."""

    def __init__(self, threshold: float = 0.66, decompositional: bool = False) -> None:
        super().__init__()
        self.threshold = threshold
        self.module = ChainOfThought(DecompositionalSemanticRecallPrecision if decompositional else SemanticRecallPrecision)

    def forward(self, example: Any, pred: Any, trace: Any = None) -> Prediction:
        scores = self.module(question=example.question, ground_truth=example.response,
                             system_response=pred.response)
        score = f1_score(scores.precision, scores.recall)
        return Prediction(score=score if trace is None else score >= self.threshold)


class CompleteAndGrounded(Module):
    """F1 of completeness (against ``example.response``) and groundedness (in ``pred.context``)."""

    def __init__(self, threshold: float = 0.66) -> None:
        super().__init__()
        self.threshold = threshold
        self.completeness_module = ChainOfThought(AnswerCompleteness)
        self.groundedness_module = ChainOfThought(AnswerGroundedness)

    def forward(self, example: Any, pred: Any, trace: Any = None) -> Prediction:
        completeness = self.completeness_module(question=example.question, ground_truth=example.response,
                                                system_response=pred.response)
        context = pred.context if isinstance(pred.context, str) else "\n".join(map(str, pred.context))
        groundedness = self.groundedness_module(question=example.question, retrieved_context=context,
                                                system_response=pred.response)
        score = f1_score(groundedness.groundedness, completeness.completeness)
        return Prediction(score=score if trace is None else score >= self.threshold)
