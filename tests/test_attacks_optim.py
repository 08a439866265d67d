"""Attacks on the search optimizers (issue 18, item 8).

- A proposer / reflection / rule LM that raises an *untyped* error (a custom LM's ``RuntimeError``,
  ``KeyError``...) is a failed proposal: counted, logged, and the search goes on.
- When every validation call fails, ``max_errors`` is honoured: a typed ``EvaluationError`` instead of
  a "best" program scored 0.0.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

import textgrad_like as dspy
from tests.test_feedback_bridge import RuleLM, examples, feedback_metric
from tests.test_optim_copro_ensemble import CoproLM
from tests.test_optim_mipro import RoutedLM, data, exact, make
from textgrad_like.errors import EvaluationError
from textgrad_like.optim.copro import COPRO
from textgrad_like.optim.gepa import GEPA
from textgrad_like.optim.simba import SIMBA


class Exploding(Exception):
    """Not one of the library's errors: what a custom LM or a buggy client may raise."""


def _is_task_call(messages: list[dict[str, Any]]) -> bool:
    system = str(messages[0]["content"])
    produce = system.split("You must produce these output fields", 1)[-1].split("\n\n", 1)[0]
    return "`answer`" in produce and "`proposed" not in produce


class BrokenProposer(RoutedLM):
    """Every call that is not the task itself raises an untyped error (``every``: 1 = all of them)."""

    def __init__(self, every: int = 1) -> None:
        super().__init__()
        self.every = every
        self.raised = 0
        self.seen = 0

    def _next_answer(self, messages):  # type: ignore[override]
        if not _is_task_call(messages):
            self.seen += 1
            if self.seen % self.every == 0:
                self.raised += 1
                raise Exploding("the proposer backend blew up")
        return super()._next_answer(messages)


class FailsOnValset(RoutedLM):
    """The task model works on the trainset (q10-q19) and raises on every valset question (q20+)."""

    def __init__(self, exc: type[BaseException] = Exploding) -> None:
        super().__init__()
        self.exc = exc

    def _next_answer(self, messages):  # type: ignore[override]
        if _is_task_call(messages):
            n = re.search(r"q(\d+)", str(messages[-1]["content"]))
            if n and int(n.group(1)) >= 20:
                raise self.exc("the task backend is down")
        return super()._next_answer(messages)


@pytest.mark.parametrize("every", [1, 2])
def test_mipro_survives_an_untyped_error_from_the_proposer(every, caplog):
    caplog.set_level(logging.WARNING)
    proposer_lm = BrokenProposer(every=every)
    dspy.configure(lm=RoutedLM())
    opt = make(prompt_model=proposer_lm)
    best = opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 20), valset=data(20, 32),
                       num_trials=4, minibatch=False)
    assert best is not None and proposer_lm.raised > 0
    assert opt.state_dict()["proposer_failures"] >= 1
    assert any("Exploding" in r.getMessage() for r in caplog.records), "the failed proposal was not logged"


@pytest.mark.parametrize("exc", [Exploding, dspy.LMError if hasattr(dspy, "LMError") else Exploding])
def test_mipro_honours_max_errors_when_every_validation_call_fails(exc):
    dspy.configure(lm=FailsOnValset(exc))
    opt = make(max_errors=2)
    with pytest.raises(EvaluationError, match="max_errors"):
        opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 20), valset=data(20, 32), num_trials=3,
                    minibatch=False)


def test_mipro_minibatch_honours_max_errors_too():
    dspy.configure(lm=FailsOnValset())
    opt = make(max_errors=2)
    with pytest.raises(EvaluationError, match="max_errors"):
        opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 20), valset=data(20, 40), num_trials=3,
                    minibatch_size=6, minibatch_full_eval_steps=2)


class BrokenCoproProposer(CoproLM):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def _next_answer(self, messages):  # type: ignore[override]
        system = str(messages[0]["content"])
        if "`proposed_prefix_for_output_field`" in system and "`attempted_instructions`" not in system:
            self.calls += 1
            raise Exploding("the proposer backend blew up")  # every first-round proposal fails
        return super()._next_answer(messages)


def test_copro_survives_an_untyped_error_from_the_proposer():
    dspy.configure(lm=BrokenCoproProposer())
    opt = COPRO(metric=exact, breadth=4, depth=2)
    best = opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 19), eval_kwargs={"num_threads": 2})
    assert best is not None and opt.state_dict()["proposal_failures"] >= 1


class BrokenReflection(RuleLM):
    """Reflection / rule-writing calls raise an untyped error every other time."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reflections = 0

    def _next_answer(self, messages):  # type: ignore[override]
        user = str(messages[-1]["content"])
        if "<cases_with_feedback>" in user or "<better_run>" in user or "cases_with_feedback" in user:
            self.reflections += 1
            if self.reflections % 2:
                raise Exploding("the reflection backend blew up")
        return super()._next_answer(messages)


def test_simba_survives_an_untyped_error_from_the_rule_lm(caplog):
    caplog.set_level(logging.WARNING)
    lm = BrokenReflection(lucky=True)
    dspy.configure(lm=lm)
    opt = SIMBA(metric=lambda g, p, trace=None: float(p.answer == g.answer), bsize=8, num_candidates=3, max_steps=2,
                max_demos=2, num_threads=2)
    out = opt.compile(dspy.Predict("question -> answer"), trainset=examples(0, 16), seed=0)
    assert out is not None


def test_gepa_survives_an_untyped_error_from_the_reflection_lm():
    lm = BrokenReflection()
    dspy.configure(lm=lm)
    opt = GEPA(feedback_metric, max_metric_calls=80, reflection_lm=lm, num_threads=2)
    out = opt.compile(dspy.Predict("question -> answer"), trainset=examples(0, 12), valset=examples(100, 8))
    assert out is not None and lm.reflections >= 1


class AlwaysFails(RuleLM):
    def _next_answer(self, messages):  # type: ignore[override]
        raise Exploding("the task backend is down")


def test_simba_raises_when_every_run_fails():
    dspy.configure(lm=AlwaysFails(), max_errors=3)
    opt = SIMBA(metric=lambda g, p, trace=None: 1.0, bsize=4, num_candidates=2, max_steps=1, num_threads=2)
    with pytest.raises(EvaluationError, match="max_errors"):
        opt.compile(dspy.Predict("question -> answer"), trainset=examples(0, 8), seed=0)


def test_gepa_raises_when_every_seed_run_fails():
    lm = AlwaysFails()
    dspy.configure(lm=lm, max_errors=3)
    opt = GEPA(feedback_metric, max_metric_calls=60, reflection_lm=lm, num_threads=2)
    with pytest.raises(EvaluationError, match="max_errors"):
        opt.compile(dspy.Predict("question -> answer"), trainset=examples(0, 12), valset=examples(100, 8))
