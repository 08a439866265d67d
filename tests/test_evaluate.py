import pytest

import textgrad_like as dspy
from textgrad_like.errors import EvaluationError
from textgrad_like.evaluate import answer_exact_match, answer_passage_match, normalize_text
from textgrad_like.evaluate.metrics import F1, f1_score
from textgrad_like.utils import DummyLM


def devset(n=6):
    return [dspy.Example(question=f"q{i}", answer=str(i % 2)).with_inputs("question") for i in range(n)]


def test_evaluate_score_and_results(capsys):
    lm = DummyLM({"q": {"answer": "0"}})
    dspy.configure(lm=lm)
    ev = dspy.Evaluate(devset=devset(), metric=answer_exact_match, num_threads=3, display_table=2)
    result = ev(dspy.Predict("question -> answer"))
    assert result.score == 50.0 and len(result.results) == 6
    ex, pred, score = result.results[1]
    assert ex.question == "q1" and pred.answer == "0" and score == 0.0
    out = capsys.readouterr().out
    assert "pred_answer" in out and "4 more rows" in out


def test_empty_devset_and_missing_metric():
    with pytest.raises(EvaluationError, match="empty"):
        dspy.Evaluate(devset=[], metric=answer_exact_match)(dspy.Predict("q -> a"))
    with pytest.raises(EvaluationError, match="metric"):
        dspy.Evaluate(devset=devset())(dspy.Predict("q -> a"))


def test_failures_are_counted_and_scored_with_failure_score():
    dspy.configure(lm=DummyLM({"q": {"answer": "0"}}))

    def metric(example, pred, trace=None):
        if example.question == "q2":
            raise ValueError("boom")
        return answer_exact_match(example, pred)

    result = dspy.Evaluate(devset=devset(), metric=metric, max_errors=5, failure_score=0.0)(
        dspy.Predict("question -> answer"))
    assert result.failures == 1 and "boom" in result.errors[0].traceback
    assert result.score == pytest.approx(100 * 2 / 6, abs=0.01)


def test_max_errors_stops_the_run():
    dspy.configure(lm=DummyLM({"q": {"answer": "0"}}))

    def metric(example, pred, trace=None):
        raise RuntimeError("always")

    with pytest.raises(EvaluationError, match="max_errors=1"):
        dspy.Evaluate(devset=devset(), metric=metric, max_errors=1, num_threads=1)(dspy.Predict("question -> answer"))


def test_metrics():
    assert normalize_text("The  Eiffel-Tower!") == "eiffel tower"
    ex = dspy.Example(answer=["Paris", "paris city"])
    assert answer_exact_match(ex, dspy.Prediction(answer="paris"))
    assert not answer_exact_match(ex, dspy.Prediction(answer="Lyon"))
    assert answer_exact_match(dspy.Example(answer="new york city"), dspy.Prediction(answer="new york"), frac=0.7)
    assert answer_passage_match(dspy.Example(answer="Kinnairdy"), dspy.Prediction(context=["He inherited Kinnairdy Castle."]))
    assert f1_score("x y z", "x y w") == pytest.approx(2 / 3)
    assert F1("x", ["y", "x"]) == 1.0


def test_evaluate_uses_no_graph():
    lm = DummyLM({"q": {"answer": "0"}})
    dspy.configure(lm=lm)
    seen = []

    def metric(example, pred, trace=None):
        seen.append(pred.graph)
        return True

    dspy.Evaluate(devset=devset(2), metric=metric)(dspy.Predict("question -> answer"))
    assert seen == [None, None]
