"""DSPy's import path ``dspy.teleprompt.knn_fewshot``: KNNFewShot."""

from ..optim.knn_fewshot import KNNFewShot

__all__ = ["KNNFewShot"]
