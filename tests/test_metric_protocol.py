"""One metric protocol (issue 19 item 1): every accepted return shape is read the same by Evaluate,
MetricLoss, GEPA's rollouts and BootstrapFewShot; a metric is called once and its errors are typed."""

from __future__ import annotations

import pytest

import textgrad_like as dspy
from textgrad_like.autograd import MetricLoss
from textgrad_like.errors import MetricError
from textgrad_like.optim.bootstrap import BootstrapFewShot
from textgrad_like.optim.feedback import run_rollouts
from textgrad_like.primitives.metric import MetricResult, call_metric, read_metric
from textgrad_like.utils import DummyLM

SHAPES = [
    (True, MetricResult(1.0, None)),
    (False, MetricResult(0.0, None)),
    (1, MetricResult(1.0, None)),
    (0.25, MetricResult(0.25, None)),
    ((0.5, "half right"), MetricResult(0.5, "half right")),
    (dspy.Prediction(score=0.75, feedback="close"), MetricResult(0.75, "close")),
    (dspy.Prediction(score=True), MetricResult(1.0, None)),
    ({"score": 0.5, "feedback": "fb"}, MetricResult(0.5, "fb")),
    ({"score": 0}, MetricResult(0.0, None)),
]
BAD = [None, "0.5", {"feedback": "no score"}, dspy.Prediction(feedback="no score"), (1, 2, 3), object()]


@pytest.mark.parametrize(("value", "expected"), SHAPES)
def test_read_metric_accepts_each_documented_shape(value, expected) -> None:
    assert read_metric(value) == expected


def test_numpy_scalars_are_numbers() -> None:
    np = pytest.importorskip("numpy")
    assert read_metric(np.float32(0.5)) == (0.5, None) and read_metric(np.bool_(True)).score == 1.0


@pytest.mark.parametrize("value", BAD, ids=repr)
def test_unreadable_results_are_errors_not_zero(value) -> None:
    with pytest.raises(MetricError, match="return|score|number"):
        read_metric(value)


def test_feedback_without_score_says_so() -> None:
    with pytest.raises(MetricError, match="feedback but no score"):
        read_metric({"feedback": "only words"})


# --- calling ---------------------------------------------------------------------------------------
def test_call_metric_passes_what_each_form_declares() -> None:
    seen: list[tuple] = []

    def two(example, pred):
        seen.append(("two",))
        return 1

    def dspy_form(example, pred, trace=None):
        seen.append(("dspy", trace))
        return 1

    def gepa_form(gold, pred, trace=None, pred_name=None, pred_trace=None):
        seen.append(("gepa", trace, pred_name, pred_trace))
        return 1

    def keyword_only(example, pred, *, trace=None, pred_name=None):
        seen.append(("kw", trace, pred_name))
        return 1

    def star(*args):
        seen.append(("star", len(args)))
        return 1

    for metric in (two, dspy_form, gepa_form, keyword_only, star):
        call_metric(metric, "ex", "pred", ["t"], "p", ["pt"])
    call_metric(star, "ex", "pred")
    assert seen == [("two",), ("dspy", ["t"]), ("gepa", ["t"], "p", ["pt"]), ("kw", ["t"], "p"), ("star", 5),
                    ("star", 3)]


def test_extra_defaulted_arguments_are_left_alone() -> None:
    def with_frac(example, pred, trace=None, frac=1.0):
        return frac

    assert call_metric(with_frac, 1, 2, None, "name", []) == 1.0
    assert dspy.evaluate.answer_exact_match(dspy.Example(answer="a"), dspy.Prediction(answer="a"))
    assert call_metric(dspy.evaluate.answer_exact_match, dspy.Example(answer="a"), dspy.Prediction(answer="a"),
                       None, "pred", [])


def test_a_metric_that_raises_type_error_is_called_once_and_wrapped() -> None:
    calls = []

    def metric(example, pred, trace=None):
        calls.append(1)
        raise TypeError("bad field")

    with pytest.raises(MetricError, match="TypeError: bad field") as info:
        call_metric(metric, 1, 2)
    assert calls == [1] and isinstance(info.value.__cause__, TypeError)


def test_a_metric_that_cannot_take_example_and_prediction_is_refused() -> None:
    with pytest.raises(MetricError, match=r"accept \(example, prediction\)"):
        call_metric(lambda x: 1, 1, 2)


def test_budget_errors_pass_through() -> None:
    def metric(example, pred):
        raise dspy.BudgetExceeded("out of calls")

    with pytest.raises(dspy.BudgetExceeded):
        call_metric(metric, 1, 2)


def test_a_module_metric_is_read_through_forward() -> None:
    class Judge(dspy.Module):
        def forward(self, example, pred, trace=None):
            return dspy.Prediction(score=1.0 if trace is None else 0.0)

    assert read_metric(call_metric(Judge(), 1, 2, None, "p", [])).score == 1.0


# --- the same reading everywhere ------------------------------------------------------------------------
def _devset(n: int = 3) -> list[dspy.Example]:
    return [dspy.Example(question=f"q{i}", answer=f"a{i}").with_inputs("question") for i in range(n)]


def _metric_returning(value):
    def metric(example, pred, trace=None):
        return value

    return metric


@pytest.mark.parametrize(("value", "expected"), SHAPES, ids=lambda v: repr(v)[:30])
def test_every_shape_reads_the_same_everywhere(value, expected) -> None:
    dspy.configure(lm=DummyLM({"q": {"answer": "x"}}))
    program = dspy.Predict("question -> answer")
    devset = _devset()
    metric = _metric_returning(value)

    evaluated = dspy.Evaluate(devset=devset, metric=metric)(program)
    assert [r[2] for r in evaluated.results] == [expected.score] * 3

    preds = [program(**ex.inputs()) for ex in devset]
    loss = MetricLoss(metric)(preds, devset)
    assert [item.score for item in loss.items] == [expected.score] * 3
    if expected.feedback:
        assert all(item.feedback == expected.feedback for item in loss.items)

    rollouts = run_rollouts(program, devset, metric)
    assert [(r.score, r.feedback) for r in rollouts] == [tuple(expected)] * 3

    compiled = BootstrapFewShot(metric=metric, metric_threshold=0.5, max_bootstrapped_demos=3,
                                max_labeled_demos=0).compile(dspy.Predict("question -> answer"), trainset=devset)
    kept = len(compiled.demos)
    assert kept == (3 if expected.score >= 0.5 else 0)


@pytest.mark.parametrize("value", [{"feedback": "no score"}, None], ids=repr)
def test_an_unreadable_result_fails_the_same_everywhere(value) -> None:
    dspy.configure(lm=DummyLM({"q": {"answer": "x"}}))
    program = dspy.Predict("question -> answer")
    devset = _devset()
    metric = _metric_returning(value)

    result = dspy.Evaluate(devset=devset, metric=metric, max_errors=10, failure_score=0.0)(program)
    assert result.failures == 3 and all(isinstance(e.exception, MetricError) for e in result.errors)

    preds = [program(**ex.inputs()) for ex in devset]
    with pytest.raises(MetricError):
        MetricLoss(metric)(preds, devset)

    assert all(r.failed for r in run_rollouts(program, devset, metric))
