import copy

import pytest

import textgrad_like as dspy
from textgrad_like.errors import InputError


def test_example_inputs_labels():
    ex = dspy.Example(question="q", answer="a", extra=1).with_inputs("question")
    assert ex.inputs().toDict() == {"question": "q"}
    assert ex.labels().toDict() == {"answer": "a", "extra": 1}
    assert ex.question == "q" and ex["answer"] == "a"
    assert set(ex.keys()) == {"question", "answer", "extra"}
    assert len(ex) == 3 and "question" in ex


def test_example_without_inputs_raises():
    with pytest.raises(InputError):
        dspy.Example(a=1).inputs()


def test_example_from_example_base_and_copy():
    base = dspy.Example(text="hi", label=0).with_inputs("text")
    ex = dspy.Example(base, hint="h", label="greeting").with_inputs("text", "hint")
    assert ex.label == "greeting" and ex.text == "hi" and ex.hint == "h"
    assert ex.inputs().keys() == ["text", "hint"]
    c = ex.copy(label="x")
    assert c.label == "x" and ex.label == "greeting"
    assert ex.without("hint").get("hint") is None
    assert copy.deepcopy(ex) == ex


def test_dspy_prefixed_keys_hidden():
    ex = dspy.Example(a=1, dspy_uuid="x")
    assert ex.keys() == ["a"]
    assert "dspy_uuid" in ex.keys(include_dspy=True)


def test_prediction_completions():
    pred = dspy.Prediction.from_completions([{"answer": "a"}, {"answer": "b"}])
    assert pred.answer == "a"
    assert pred.completions.answer == ["a", "b"]
    assert pred.completions[1].answer == "b"
    assert len(pred.completions) == 2


def test_prediction_score_arithmetic():
    p = dspy.Prediction(score=0.5, feedback="ok")
    assert float(p) == 0.5 and p + 1 == 1.5 and p < 0.6
    assert sum([p, p]) == 1.0


def test_completions_dict_form_and_errors():
    c = dspy.Completions({"a": [1, 2]})
    assert len(c) == 2 and c[0].a == 1
    with pytest.raises(ValueError):
        dspy.Completions({"a": [1, 2], "b": [1]})
    with pytest.raises(IndexError):
        c[5]
