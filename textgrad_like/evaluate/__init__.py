"""Evaluation: the parallel ``Evaluate`` runner and answer metrics (DSPy's ``dspy.evaluate``)."""

from .auto_evaluation import CompleteAndGrounded, SemanticF1
from .evaluate import Evaluate, EvaluationResult, format_table, label_distribution
from .metrics import (
    EM,
    F1,
    answer_exact_match,
    answer_passage_match,
    em_score,
    f1_score,
    normalize_text,
    tool_call_exact_match,
)

__all__ = ["Evaluate", "EvaluationResult", "format_table", "label_distribution", "answer_exact_match",
           "answer_passage_match", "normalize_text", "em_score", "f1_score", "EM", "F1", "SemanticF1",
           "CompleteAndGrounded", "tool_call_exact_match"]
