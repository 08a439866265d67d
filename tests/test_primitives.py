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


# DSPy's printed forms (doctests and logs written against DSPy keep working) ------------------
def test_example_repr_shows_input_keys_like_dspy():
    assert repr(dspy.Example(a=1)) == "Example({'a': 1}) (input_keys=None)"
    assert str(dspy.Example(a=1, dspy_uuid="x").with_inputs("a")) == "Example({'a': 1}) (input_keys={'a'})"


def test_prediction_repr_with_several_completions_like_dspy():
    one = dspy.Prediction.from_completions([{"answer": "a"}])
    assert repr(one) == "Prediction(\n    answer='a'\n)"
    many = dspy.Prediction.from_completions([{"answer": "a"}, {"answer": "b"}, {"answer": "c"}])
    assert repr(many) == (
        "Prediction(\n    answer='a',\n    completions=Completions(...)\n) (2 completions omitted)"
    )


def test_completions_repr_like_dspy():
    c = dspy.Completions([{"answer": "a", "n": 1}, {"answer": "b", "n": 2}])
    assert repr(c) == "Completions(\n    answer=['a', 'b'],\n    n=[1, 2]\n)"
    assert str(c) == repr(c)


def test_example_to_dict_serializes_nested_models_and_examples():
    import pydantic

    class Turns(pydantic.BaseModel):
        messages: list[dict]

    ex = dspy.Example(h=Turns(messages=[{"q": "1"}]), inner=dspy.Example(x=1), rows=[dspy.Example(y=2)])
    assert ex.toDict() == {"h": {"messages": [{"q": "1"}]}, "inner": {"x": 1}, "rows": [{"y": 2}]}


def test_example_equals_a_plain_dict_of_the_same_fields():
    # demos loaded from a saved program compare equal to the Example they were saved from (DSPy keeps dicts)
    ex = dspy.Example(q="x", a="y").with_inputs("q")
    assert ex == {"q": "x", "a": "y"} and {"q": "x", "a": "y"} == ex
    assert ex != {"q": "x"} and ex != ""
