"""Predict's handling of call inputs, as DSPy 3.x: extra fields (a label left in the example) and
missing inputs warn and go on, a value of the wrong type warns, positional arguments are refused."""

from __future__ import annotations

import logging

import pytest

import textgrad_like as dspy
from textgrad_like.errors import InputError
from textgrad_like.utils import DummyLM


def test_extra_fields_warn_and_are_ignored(caplog):
    lm = DummyLM([{"answer": "Paris"}])
    dspy.configure(lm=lm)
    example = dspy.Example(question="Capital of France?", answer="Paris")
    with caplog.at_level(logging.WARNING):
        pred = dspy.Predict("question -> answer")(**example)
    assert pred.answer == "Paris"
    assert "answer" in caplog.text and "ignor" in caplog.text
    prompt = lm.history[-1]["messages"][-1]["content"]
    assert "Capital of France?" in prompt and "Paris" not in prompt


def test_missing_input_warns_and_proceeds(caplog):
    lm = DummyLM([{"answer": "42"}])
    dspy.configure(lm=lm)
    with caplog.at_level(logging.WARNING):
        pred = dspy.Predict("context, question -> answer")(question="q")
    assert pred.answer == "42"
    assert "Not all input fields were provided" in caplog.text and "context" in caplog.text


def test_type_mismatch_warns(caplog):
    dspy.configure(lm=DummyLM([{"answer": "x"}, {"answer": "y"}]))
    predict = dspy.Predict("items: list[str], count: int -> answer")
    with caplog.at_level(logging.WARNING):
        predict(items="not a list", count=3)
    assert "Type mismatch for field 'items'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        predict(items=["a"], count=3)
    assert "Type mismatch" not in caplog.text


def test_positional_arguments_raise_a_clear_error():
    dspy.configure(lm=DummyLM([{"answer": "x"}]))
    with pytest.raises(ValueError, match="Positional arguments are not allowed") as info:
        dspy.Predict("question -> answer")("What?")
    assert isinstance(info.value, InputError)
    assert "question=" in str(info.value)


def test_chain_of_thought_with_extra_fields(caplog):
    dspy.configure(lm=DummyLM([{"reasoning": "r", "answer": "a"}]))
    example = dspy.Example(question="q", answer="gold", id=3)
    with caplog.at_level(logging.WARNING):
        assert dspy.ChainOfThought("question -> answer")(**example).answer == "a"


class SpyAdapter(dspy.ChatAdapter):
    def __init__(self):
        super().__init__()
        self.calls = 0
        self.seen_settings = []

    def __call__(self, lm, lm_kwargs, signature, demos, inputs):
        self.calls += 1
        self.seen_settings.append(dspy.settings.adapter)
        return super().__call__(lm, lm_kwargs, signature, demos, inputs)


def test_adapter_precedence_call_over_predictor_over_settings():
    outer, mine, per_call = SpyAdapter(), SpyAdapter(), SpyAdapter()
    with dspy.context(lm=DummyLM([{"answer": "x"}] * 3), adapter=outer):
        predict = dspy.Predict("question -> answer")
        predict(question="q")
        predict.adapter = mine
        predict(question="q")
        predict(question="q", adapter=per_call)
        assert dspy.settings.adapter is outer
    assert (outer.calls, mine.calls, per_call.calls) == (1, 1, 1)
    assert per_call.seen_settings == [per_call]  # the adapter in use is visible in settings during the call
    assert "adapter" not in predict.dump_state()


def test_predicted_outputs_go_to_the_lm_and_config_helpers():
    lm = DummyLM([{"answer": "x"}, {"judgement": "y"}])
    dspy.configure(lm=lm)
    dspy.Predict("question -> answer")(question="q", prediction={"type": "content", "content": "draft"})
    assert lm.history[-1]["kwargs"]["prediction"] == {"type": "content", "content": "draft"}
    judge = dspy.Predict("question, prediction -> judgement")
    judge(question="q", prediction="plain text input")
    assert "prediction" not in lm.history[-1]["kwargs"]
    judge.update_config(temperature=0.3)
    assert judge.get_config() == {"temperature": 0.3}


def test_lm_must_be_an_lm_object():
    with pytest.raises(ValueError, match="No LM is loaded"):
        dspy.Predict("question -> answer")(question="q")
    dspy.configure(lm="openai/gpt-4o-mini")
    with pytest.raises(ValueError, match="not a string"):
        dspy.Predict("question -> answer")(question="q")
    dspy.configure(lm=lambda **kw: ["x"])
    with pytest.raises(ValueError, match="must be an instance of `dspy.BaseLM`"):
        dspy.Predict("question -> answer")(question="q")


def test_untyped_fields_do_not_warn(caplog):
    dspy.configure(lm=DummyLM([{"result": "r"}]))
    with caplog.at_level(logging.WARNING):
        dspy.Predict("name, count -> result")(name=["a", "b"], count=123)
    assert "Type mismatch" not in caplog.text
