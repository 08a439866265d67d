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
