from typing import Literal, Optional

import pydantic
import pytest

import textgrad_like as dspy
from textgrad_like.errors import SignatureError


def test_string_signature_with_types():
    sig = dspy.Signature("context: list[str], question -> answer: float")
    assert list(sig.input_fields) == ["context", "question"]
    assert list(sig.output_fields) == ["answer"]
    assert sig.input_fields["context"].annotation == list[str]
    assert sig.input_fields["question"].annotation is str
    assert sig.output_fields["answer"].annotation is float
    assert "context" in sig.instructions and "answer" in sig.instructions


def test_signature_with_instructions_argument():
    sig = dspy.Signature("a -> b", "Do the thing.")
    assert sig.instructions == "Do the thing."


def test_class_signature_docstring_and_fields():
    class Classify(dspy.Signature):
        """Classify sentiment of a given sentence."""

        sentence: str = dspy.InputField()
        sentiment: Literal["positive", "negative", "neutral"] = dspy.OutputField()
        confidence: float = dspy.OutputField(desc="between 0 and 1")

    assert Classify.instructions == "Classify sentiment of a given sentence."
    assert list(Classify.output_fields) == ["sentiment", "confidence"]
    assert Classify.output_fields["confidence"].desc == "between 0 and 1"
    assert Classify.signature == "sentence -> sentiment, confidence"


@pytest.mark.parametrize("spec, name, expected", [
    ("a -> b: int", "b", int),
    ("a -> b: bool", "b", bool),
    ("a -> b: dict[str, list[str]]", "b", dict[str, list[str]]),
    ("a -> b: Optional[int]", "b", Optional[int]),
    ("a -> b: int | None", "b", Optional[int]),
    ("a -> b: list[dict[str, str]]", "b", list[dict[str, str]]),
])
def test_types(spec, name, expected):
    assert dspy.Signature(spec).fields[name].annotation == expected


def test_literal_in_string():
    sig = dspy.Signature('a -> b: Literal["x", "y"]')
    assert sig.output_fields["b"].annotation == Literal["x", "y"]


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_pydantic_type_from_caller_scope():
    sig = dspy.Signature("text -> person: Person")
    assert sig.output_fields["person"].annotation is Person


def test_derivations_return_new_classes():
    base = dspy.Signature("question -> answer")
    with_r = base.prepend("reasoning", dspy.OutputField(), type_=str)
    assert list(with_r.output_fields) == ["reasoning", "answer"]
    assert list(base.output_fields) == ["answer"]
    appended = base.append("context", dspy.InputField(), type_=list[str])
    assert list(appended.input_fields) == ["question", "context"]
    inserted = base.insert(0, "context", dspy.InputField())
    assert list(inserted.input_fields) == ["context", "question"]
    deleted = with_r.delete("reasoning")
    assert list(deleted.output_fields) == ["answer"]
    updated = base.with_updated_fields("answer", type_=Literal["a", "b"], desc="pick")
    assert updated.output_fields["answer"].annotation == Literal["a", "b"]
    assert updated.output_fields["answer"].desc == "pick"
    assert base.with_instructions("new").instructions == "new"
    assert base.instructions != "new"


@pytest.mark.parametrize("bad", ["question answer", "a -> b -> c", "a ->", "a -> b: Foo", "a -> b: list[", "1a -> b",
                                 "a, a -> b", "a -> _b"])
def test_malformed_signatures_raise_typed_errors(bad):
    with pytest.raises(SignatureError):
        dspy.Signature(bad)


def test_unknown_type_error_names_the_type():
    with pytest.raises(SignatureError, match="Unknown type 'Foo'"):
        dspy.Signature("a -> b: Foo")


def test_class_field_without_field_declaration_errors():
    with pytest.raises(SignatureError):
        class Bad(dspy.Signature):
            a: str = "x"


def test_dump_and_load_state():
    sig = dspy.Signature("q -> a", "Original.")
    state = sig.dump_state()
    loaded = dspy.Signature("q -> a").load_state(state)
    assert loaded.instructions == "Original."
    assert loaded.equals(sig)


def test_dict_signature():
    sig = dspy.Signature({"q": dspy.InputField(), "a": (int, dspy.OutputField())}, "Count.")
    assert sig.output_fields["a"].annotation is int
