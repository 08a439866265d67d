"""Answer metrics: exact match, passage match, token F1, with DSPy's names and arguments."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from ..adapters.types import ToolCalls
from ..primitives.text import normalize_text

__all__ = ["EM", "F1", "answer_exact_match", "answer_passage_match", "em_score", "f1_score", "normalize_text",
           "precision_score", "tool_call_exact_match"]


def EM(prediction: str, answers_list: list[str] | str) -> bool:  # noqa: N802 - DSPy's name
    answers = [answers_list] if isinstance(answers_list, str) else list(answers_list)
    return any(em_score(prediction, a) for a in answers)


def em_score(prediction: str, ground_truth: str) -> bool:
    """Are the two texts equal after :func:`normalize_text`?"""
    return normalize_text(prediction) == normalize_text(ground_truth)


def _overlap(prediction: str, ground_truth: str) -> tuple[int, int, int]:
    pred_tokens = normalize_text(prediction).split()
    gold_tokens = normalize_text(ground_truth).split()
    return sum((Counter(pred_tokens) & Counter(gold_tokens)).values()), len(pred_tokens), len(gold_tokens)


def precision_score(prediction: str, ground_truth: str) -> float:
    """The share of the prediction's tokens found in the ground truth (after normalisation)."""
    overlap, n_pred, n_gold = _overlap(prediction, ground_truth)
    if not n_pred or not n_gold:
        return float(n_pred == n_gold)
    return overlap / n_pred


def f1_score(prediction: str, ground_truth: str) -> float:
    """Token F1 of the prediction against the ground truth (after normalisation)."""
    overlap, n_pred, n_gold = _overlap(prediction, ground_truth)
    if not n_pred or not n_gold:
        return float(n_pred == n_gold)
    if overlap == 0:
        return 0.0
    precision, recall = overlap / n_pred, overlap / n_gold
    return 2 * precision * recall / (precision + recall)


def F1(prediction: str, answers_list: list[str] | str) -> float:  # noqa: N802
    answers = [answers_list] if isinstance(answers_list, str) else list(answers_list)
    return max((f1_score(prediction, a) for a in answers), default=0.0)


def _answers(example: Any) -> list[str]:
    value = example.answer
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def answer_exact_match(example: Any, pred: Any, trace: Any = None, frac: float = 1.0) -> bool:
    """Does ``pred.answer`` equal the example's answer (or one of its answers) after normalisation?
    With ``frac < 1`` a token-F1 of at least ``frac`` counts as a match."""
    prediction = str(pred if isinstance(pred, str) else pred.answer)
    if frac >= 1.0:
        return EM(prediction, _answers(example))
    return F1(prediction, _answers(example)) >= frac


def answer_passage_match(example: Any, pred: Any, trace: Any = None) -> bool:
    """Does any retrieved passage in ``pred.context`` contain the answer?"""
    passages = pred if isinstance(pred, (list, tuple)) else pred.context
    if isinstance(passages, str):
        passages = [passages]
    answers = [normalize_text(a) for a in _answers(example)]
    return any(a and a in normalize_text(str(p)) for p in passages for a in answers)


def _call_counts(value: Any) -> Counter[tuple[str, str]] | None:
    calls = value if isinstance(value, ToolCalls) else ToolCalls.model_validate(value)
    try:
        return Counter((call.name, json.dumps(call.args, sort_keys=True)) for call in calls.tool_calls)
    except (TypeError, ValueError):  # an argument value that is not JSON data (a set, an object)
        return None


def tool_call_exact_match(example: Any, pred: Any, trace: Any = None) -> bool:
    """Did ``pred.tool_calls`` make exactly the calls of ``example.tool_calls``: the same tool names with
    the same argument values (``5`` is not ``"5"``), each as many times? Order and call ids are ignored;
    provider-shaped dicts (``{"function": {"name", "arguments"}}``) are read too. Argument values that
    are not JSON data never match."""
    gold, got = _call_counts(example.tool_calls), _call_counts(pred.tool_calls)
    return gold is not None and got is not None and gold == got
