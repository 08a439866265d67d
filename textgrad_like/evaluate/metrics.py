"""Answer metrics: exact match, passage match, token F1, with DSPy's names and arguments."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..primitives.text import normalize_text

__all__ = ["EM", "F1", "answer_exact_match", "answer_passage_match", "f1_score", "normalize_text"]


def EM(prediction: str, answers_list: list[str] | str) -> bool:  # noqa: N802 - DSPy's name
    answers = [answers_list] if isinstance(answers_list, str) else list(answers_list)
    return any(normalize_text(prediction) == normalize_text(a) for a in answers)


def f1_score(prediction: str, ground_truth: str) -> float:
    pred_tokens = normalize_text(prediction).split()
    gold_tokens = normalize_text(ground_truth).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def F1(prediction: str, answers_list: list[str] | str) -> float:  # noqa: N802
    answers = [answers_list] if isinstance(answers_list, str) else list(answers_list)
    return max((f1_score(prediction, a) for a in answers), default=0.0)


def _answers(example: Any) -> list[str]:
    value = example["answer"]
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def answer_exact_match(example: Any, pred: Any, trace: Any = None, frac: float = 1.0) -> bool:
    """Does ``pred.answer`` equal the example's answer (or one of its answers) after normalisation?
    With ``frac < 1`` a token-F1 of at least ``frac`` counts as a match."""
    prediction = str(pred["answer"] if not isinstance(pred, str) else pred)
    if frac >= 1.0:
        return EM(prediction, _answers(example))
    return F1(prediction, _answers(example)) >= frac


def answer_passage_match(example: Any, pred: Any, trace: Any = None) -> bool:
    """Does any retrieved passage in ``pred.context`` contain the answer?"""
    passages = pred["context"] if not isinstance(pred, (list, tuple)) else pred
    if isinstance(passages, str):
        passages = [passages]
    answers = [normalize_text(a) for a in _answers(example)]
    return any(a and a in normalize_text(str(p)) for p in passages for a in answers)
