"""``LabeledFewShot``: put up to ``k`` labeled training examples into every predictor's Demos."""

from __future__ import annotations

import logging
import random
from typing import Any

from ..errors import OptimizerError
from .teleprompter import ModuleT, Teleprompter

logger = logging.getLogger(__name__)


class LabeledFewShot(Teleprompter):
    """``LabeledFewShot(k=16).compile(student, trainset=train)``: each predictor gets ``k`` examples of
    ``trainset`` as demos (a seeded random sample, or the first ``k`` with ``sample=False``). It makes
    no LM call and records no history rows (there is nothing to score)."""

    def __init__(self, k: int = 16) -> None:
        super().__init__()
        if k < 0:
            raise OptimizerError(f"LabeledFewShot(k=...) must be >= 0, got {k}.")
        self.k = k

    def compile(self, student: ModuleT, *, trainset: list[Any], teacher: Any = None, valset: list[Any] | None = None,
                sample: bool = True, **kwargs: Any) -> ModuleT:
        if kwargs:
            raise OptimizerError(f"LabeledFewShot.compile got unknown arguments {sorted(kwargs)}.")
        self.student = student.reset_copy()
        self.trainset = list(trainset or [])
        logger.debug("LabeledFewShot: projected 0 LM calls (labeled demos only).")
        if not self.trainset:
            return self.student
        rng = random.Random(0)
        chosen: dict[str, list[int]] = {}
        n = min(self.k, len(self.trainset))
        for name, predictor in self.student.named_predictors():
            indices = rng.sample(range(len(self.trainset)), n) if sample else list(range(n))
            predictor.demos = [self.trainset[i] for i in indices]
            chosen[name] = indices
        self.search_state = {"demo_indices": chosen, "k": self.k, "sample": sample}
        return self.student
