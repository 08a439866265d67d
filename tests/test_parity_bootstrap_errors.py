"""BootstrapFewShot's max_errors as DSPy documents it: the max_errors-th failed teacher run ends compile()
with that run's own exception (DSPy 3.x ``BootstrapFewShot``)."""

from __future__ import annotations

import pytest

import textgrad_like as dspy
from textgrad_like.optim import BootstrapFewShot
from textgrad_like.utils import DummyLM


class _Simple(dspy.Module):
    def __init__(self):
        super().__init__()
        self.predictor = dspy.Predict("input -> output")

    def forward(self, **kwargs):
        return self.predictor(**kwargs)


class _Buggy(_Simple):
    def forward(self, **kwargs):
        raise RuntimeError("teacher broke")


def _trainset(n: int):
    return [dspy.Example(input=f"q{i}", output="a").with_inputs("input") for i in range(n)]


def test_failed_teacher_run_reaching_max_errors_raises_the_original_error():
    dspy.configure(lm=DummyLM([{"output": "a"}] * 4))
    opt = BootstrapFewShot(metric=lambda e, p, t=None: True, max_bootstrapped_demos=1, max_labeled_demos=1,
                           max_errors=1)
    with pytest.raises(RuntimeError, match="teacher broke"):
        opt.compile(_Simple(), teacher=_Buggy(), trainset=_trainset(1))


def test_failed_teacher_runs_below_max_errors_are_tolerated():
    dspy.configure(lm=DummyLM([{"output": "a"}] * 8))
    opt = BootstrapFewShot(metric=lambda e, p, t=None: True, max_bootstrapped_demos=2, max_labeled_demos=0,
                           max_errors=3)
    compiled = opt.compile(_Simple(), teacher=_Buggy(), trainset=_trainset(2))
    assert compiled.predictor.demos == [] and opt.error_count == 2
