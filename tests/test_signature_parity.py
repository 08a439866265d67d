"""DSPy parity of signatures: the derivation helpers, Enum-typed fields, pydantic constraints on
fields (shown to the LM and checked on parse), and DSPy's signature state format."""

from __future__ import annotations

import enum
import logging

import pytest

import textgrad_like as dspy
from textgrad_like.adapters import ChatAdapter, JSONAdapter
from textgrad_like.errors import AdapterParseError
from textgrad_like.utils import DummyLM


def test_append_instructions_and_with_instructions_do_not_mutate():
    sig = dspy.Signature("text -> translation", "Translate to French.")
    more = sig.append_instructions("Keep names as they are.")
    assert more is not sig and sig.instructions == "Translate to French."
    assert more.instructions == "Translate to French.\n\nKeep names as they are."
    assert list(more.fields) == ["text", "translation"]
    assert sig.with_instructions("x").instructions == "x"


def test_field_helpers_like_dspy():
    sig = dspy.Signature("question -> answer")
    sig2 = sig.prepend("context", dspy.InputField(desc="facts"), type_=list[str])
    assert list(sig2.input_fields) == ["context", "question"]
    assert sig2.input_fields["context"].annotation == list[str]
    sig3 = sig2.append("confidence", dspy.OutputField(), type_=float)
    assert list(sig3.output_fields) == ["answer", "confidence"]
    sig4 = sig3.insert(0, "reasoning", dspy.OutputField())
    assert list(sig4.output_fields) == ["reasoning", "answer", "confidence"]
    assert list(sig4.delete("confidence").output_fields) == ["reasoning", "answer"]
    sig5 = sig4.with_updated_fields("answer", type_=int, desc="a number")
    assert sig5.output_fields["answer"].annotation is int and sig5.output_fields["answer"].desc == "a number"
    assert sig5.fields.keys() == sig4.fields.keys()


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Paint(dspy.Signature):
    """Pick a colour for the object."""

    thing: str = dspy.InputField()
    base: Color = dspy.InputField()
    color: Color = dspy.OutputField()


def test_enum_fields_parse_to_members_and_format_by_value():
    for reply, member in (("green", Color.GREEN), ("GREEN", Color.GREEN), ("Color.RED", Color.RED), ("'red'", Color.RED)):
        assert ChatAdapter().parse(Paint, f"<color>\n{reply}\n</color>")["color"] is member
    assert JSONAdapter().parse(Paint, '{"color": "red"}')["color"] is Color.RED
    messages = ChatAdapter().format(Paint, [], {"thing": "grass", "base": Color.RED})
    assert "<base>\nred\n</base>" in messages[-1]["content"]
    assert "red" in messages[0]["content"] and "green" in messages[0]["content"]
    lm = DummyLM([{"color": "green"}])
    assert dspy.Predict(Paint)(thing="grass", base=Color.RED, lm=lm).color is Color.GREEN
    with pytest.raises(AdapterParseError):
        ChatAdapter().parse(Paint, "<color>\nblue\n</color>")


class Rate(dspy.Signature):
    review: str = dspy.InputField()
    stars: int = dspy.OutputField(ge=1, le=5, desc="the rating")
    summary: str = dspy.OutputField(max_length=20)


def test_constraints_are_shown_to_the_lm():
    system = ChatAdapter().format_system_message(Rate)
    assert "greater than or equal to: 1" in system and "less than or equal to: 5" in system
    assert "maximum length: 20" in system


def test_constraints_are_checked_on_parse():
    assert ChatAdapter().parse(Rate, "<stars>\n4\n</stars>\n<summary>\ngood\n</summary>") == {"stars": 4,
                                                                                            "summary": "good"}
    with pytest.raises(AdapterParseError) as info:
        ChatAdapter().parse(Rate, "<stars>\n9\n</stars>\n<summary>\ngood\n</summary>")
    assert info.value.field == "stars"
    with pytest.raises(AdapterParseError):
        JSONAdapter().parse(Rate, '{"stars": 3, "summary": "' + "x" * 50 + '"}')


def test_constraint_violation_takes_the_retry_path():
    lm = DummyLM([{"stars": 9, "summary": "ok"}, '{"stars": 5, "summary": "ok"}'])
    pred = dspy.Predict(Rate)(review="great", lm=lm)
    assert pred.stars == 5 and len(lm.history) == 2


def test_input_constraints_and_type_mismatch_warn(caplog):
    sig = dspy.Signature({"n": (int, dspy.InputField(ge=0)), "answer": (str, dspy.OutputField())})
    with caplog.at_level(logging.WARNING):
        dspy.Predict(sig)(n="three", lm=DummyLM([{"answer": "x"}]))
    assert "Type mismatch for field 'n'" in caplog.text


def test_dspy_signature_state_loads():
    sig = dspy.Signature("question -> answer")
    dspy_state = {"instructions": "Be brief.",
                  "fields": [{"prefix": "Question:", "description": "the question"},
                             {"prefix": "Answer:", "description": "a short answer"}]}
    loaded = sig.load_state(dspy_state)
    assert loaded.instructions == "Be brief."
    assert loaded.input_fields["question"].desc == "the question"
    assert loaded.output_fields["answer"].desc == "a short answer"
    ours = loaded.dump_state()
    assert ours["fields"][1]["description"] == "a short answer" and ours["fields"][1]["prefix"] == "Answer:"
    assert sig.load_state(ours).equals(loaded)
