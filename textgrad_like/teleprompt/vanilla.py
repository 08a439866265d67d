"""DSPy's import path ``dspy.teleprompt.vanilla``: LabeledFewShot."""

from ..optim.labeled_fewshot import LabeledFewShot

__all__ = ["LabeledFewShot"]
