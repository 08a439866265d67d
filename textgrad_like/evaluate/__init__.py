"""Evaluation: the parallel ``Evaluate`` runner and answer metrics."""

from .auto_evaluation import CompleteAndGrounded, SemanticF1
from .evaluate import Evaluate, EvaluationResult, format_table
from .metrics import EM, F1, answer_exact_match, answer_passage_match, f1_score, normalize_text

__all__ = ["Evaluate", "EvaluationResult", "format_table", "answer_exact_match", "answer_passage_match",
           "normalize_text", "f1_score", "EM", "F1", "SemanticF1",
           "CompleteAndGrounded"]
