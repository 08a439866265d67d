"""TextualGradientDescent(num_candidates=k): several rewrites per step, the best on the batch is kept."""

from __future__ import annotations

import pytest

import textgrad_like as dspy
from textgrad_like.nn.parameter import Gradient, Variable
from textgrad_like.optim import TextualGradientDescent
from textgrad_like.utils import DummyLM

SCORES = {"start": 0.5, "worse": 0.2, "better": 0.9, "best": 1.0}


class BatchLoss:
    def __init__(self, score: float) -> None:
        self.score = score


def _param() -> Variable:
    v = Variable("start", role_description="an answer")
    v.accumulate(Gradient(feedback="be more precise", score=0.5))
    return v


def _closure(param: Variable, calls: list[str]):
    def closure() -> BatchLoss:
        calls.append(param.value)
        return BatchLoss(SCORES.get(param.value, 0.0))
    return closure


def test_the_best_rewrite_on_the_batch_is_kept():
    param, calls = _param(), []
    lm = DummyLM([{"improved_value": "worse"}, {"improved_value": "better"}, {"improved_value": "worse"}])
    opt = TextualGradientDescent([param], lm=lm, num_candidates=3)
    loss = opt.step(_closure(param, calls))
    assert param.value == "better" and loss.score == 0.9
    assert calls == ["start", "worse", "better"]  # the current value once, then each distinct rewrite once
    assert opt.state[param]["last_candidates"] == [{"value": "start", "score": 0.5}, {"value": "worse", "score": 0.2},
                                                   {"value": "better", "score": 0.9}]
    assert lm.calls == 3


def test_a_step_never_makes_the_batch_worse():
    param, calls = _param(), []
    lm = DummyLM([{"improved_value": "worse"}, {"improved_value": "nonsense"}])
    opt = TextualGradientDescent([param], lm=lm, num_candidates=2)
    opt.step(_closure(param, calls))
    assert param.value == "start"  # every rewrite scored below the current value
    assert opt.state[param].get("steps", 0) == 0


def test_without_candidates_the_first_rewrite_is_taken_as_before():
    param = _param()
    opt = TextualGradientDescent([param], lm=DummyLM([{"improved_value": "worse"}]))
    opt.step()
    assert param.value == "worse"


def test_candidates_need_a_closure_and_valid_settings():
    param = _param()
    with pytest.raises(ValueError, match="closure"):
        TextualGradientDescent([param], lm=DummyLM([]), num_candidates=2).step()
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="num_candidates"):
            TextualGradientDescent([param], lm=DummyLM([]), num_candidates=bad)
    with pytest.raises(ValueError, match="candidate_temperature"):
        TextualGradientDescent([param], lm=DummyLM([]), num_candidates=2, candidate_temperature=0)


def test_best_of_with_a_real_loss_and_program():
    """End to end: the closure re-runs a program on a batch; the rewrite that makes it right is kept."""
    class InstructionFollower(DummyLM):  # answers right only when the system prompt says so
        def _next_answer(self, messages):
            return {"answer": "Paris" if "Answer in French" in str(messages[0]["content"]) else "paris?"}

    task_lm = InstructionFollower([])
    dspy.configure(lm=task_lm)
    program = dspy.Predict("question -> answer")
    batch = [dspy.Example(question="Capital of France?", answer="Paris").with_inputs("question")]
    loss_fn = dspy.autograd.MetricLoss(lambda ex, pred, trace=None: ex.answer == pred.answer)
    program.train()
    loss = loss_fn([program(**ex.inputs()) for ex in batch], batch)
    loss.backward(backward_lm=DummyLM([{"instruction_feedback": "say the city", "input_feedback": {}}]))
    step_lm = DummyLM([{"improved_value": "Be vague."}, {"improved_value": "Answer in French with the city."}])
    opt = TextualGradientDescent(program.parameters(kind="instruction"), lm=step_lm, num_candidates=2)
    best = opt.step(lambda: loss_fn([program(**ex.inputs()) for ex in batch], batch))
    assert program.instruction.value == "Answer in French with the city."
    assert best.score == 1.0
