import json
from typing import Literal

import pydantic
import pytest

import textgrad_like as dspy
from textgrad_like.adapters import ChatAdapter, JSONAdapter
from textgrad_like.errors import AdapterParseError
from textgrad_like.utils import DummyLM


class Entity(pydantic.BaseModel):
    name: str
    kind: str


class Extract(dspy.Signature):
    """Extract structured information from text."""

    text: str = dspy.InputField()
    title: str = dspy.OutputField()
    headings: list[str] = dspy.OutputField()
    entities: list[dict[str, str]] = dspy.OutputField()
    people: list[Entity] = dspy.OutputField()


def test_chat_format_has_instructions_fields_and_demos():
    sig = dspy.Signature("question -> answer: int", "Answer the question.")
    demos = [dspy.Example(question="1+1", answer=2)]
    messages = ChatAdapter().format(sig, demos, {"question": "2+2"})
    assert messages[0]["role"] == "system"
    assert "Answer the question." in messages[0]["content"]
    assert "`answer` (int)" in messages[0]["content"]
    assert messages[1] == {"role": "user", "content": "<question>\n1+1\n</question>"}
    assert messages[2]["content"] == "<answer>\n2\n</answer>"
    assert "<question>\n2+2\n</question>" in messages[-1]["content"]


def test_chat_parse_typed_values():
    raw = ('<title>\nApple news\n</title>\n<headings>\n["Intro", "Features"]\n</headings>\n'
           '<entities>\n[{"name": "Apple", "type": "Org"}]\n</entities>\n'
           '<people>\n[{"name": "Tim Cook", "kind": "Person"}]\n</people>')
    out = ChatAdapter().parse(Extract, raw)
    assert out["title"] == "Apple news"
    assert out["headings"] == ["Intro", "Features"]
    assert out["entities"] == [{"name": "Apple", "type": "Org"}]
    assert out["people"][0] == Entity(name="Tim Cook", kind="Person")


@pytest.mark.parametrize("text, annotation, expected", [
    ("0.25", float, 0.25), ("1/36", float, 1 / 36), ("The answer is 42.", int, 42), ("1,000", int, 1000),
    ("true", bool, True), ("No", bool, False), ("'positive'", Literal["positive", "negative"], "positive"),
    ("Positive.", Literal["positive", "negative"], "positive"), ('{"a": ["b"]}', dict[str, list[str]], {"a": ["b"]}),
    ("null", int | None, None),
])
def test_value_parsing(text, annotation, expected):
    from textgrad_like.adapters import parse_value

    assert parse_value(text, annotation) == expected


def test_parse_error_carries_field_and_raw():
    sig = dspy.Signature("q -> label: Literal['a', 'b'], score: float")
    with pytest.raises(AdapterParseError) as info:
        ChatAdapter().parse(sig, "<label>\nc\n</label>\n<score>\n1\n</score>")
    assert info.value.field == "label"
    assert "<label>" in info.value.lm_response
    with pytest.raises(AdapterParseError) as info:
        ChatAdapter().parse(sig, "<label>\na\n</label>")
    assert info.value.field == "score"
    assert info.value.parsed_result == {"label": "a"}


def test_missing_end_tag_tolerated():
    sig = dspy.Signature("q -> reasoning, answer")
    out = ChatAdapter().parse(sig, "<reasoning>\nthink\n<answer>\n7")
    assert out == {"reasoning": "think", "answer": "7"}


def test_json_adapter_parse_and_format():
    sig = dspy.Signature("q -> answer: int, tags: list[str]")
    adapter = JSONAdapter()
    assert adapter.parse(sig, 'Sure: {"answer": "3", "tags": ["x"]}') == {"answer": 3, "tags": ["x"]}
    assert json.loads(adapter.format_outputs(sig, {"answer": 3, "tags": ["x"]})) == {"answer": 3, "tags": ["x"]}
    with pytest.raises(AdapterParseError):
        adapter.parse(sig, '{"tags": []}')


def test_json_adapter_sends_schema_to_capable_lm():
    class SchemaLM(DummyLM):
        supports_response_schema = True

    lm = SchemaLM([{"answer": 1}])
    dspy.Predict("q -> answer: int")(q="x", lm=lm)
    schema = lm.history[-1]["kwargs"]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["answer"]["type"] == "integer"


def test_fallback_to_json_only_on_parse_failure_and_visible_in_history():
    lm = DummyLM(["not tagged at all", {"answer": "4"}])
    # first reply is a raw string that the chat adapter cannot parse; the JSON retry succeeds
    lm.answers = ["not tagged at all", '{"answer": "4"}']
    lm._iter = iter(lm.answers)
    pred = dspy.Predict("q -> answer")(q="2+2", lm=lm)
    assert pred.answer == "4"
    assert lm.history[-1]["tags"] == {"adapter_fallback": "JSONAdapter"}
    assert lm.history[0]["tags"] == {}


def test_fallback_can_be_switched_off():
    lm = DummyLM(["garbage"])
    with dspy.context(adapter=ChatAdapter(use_json_adapter_fallback=False)):
        with pytest.raises(AdapterParseError):
            dspy.Predict("q -> answer")(q="x", lm=lm)
    assert len(lm.history) == 1


def test_no_fallback_on_lm_error():
    from textgrad_like.errors import LMError
    from textgrad_like.lm.base import BaseLM

    class Broken(BaseLM):
        def __init__(self):
            super().__init__("broken", cache=False)
            self.calls = 0

        def _generate(self, messages, **kwargs):
            self.calls += 1
            raise LMError("provider down")

    lm = Broken()
    with pytest.raises(LMError):
        dspy.Predict("q -> a")(q="x", lm=lm)
    assert lm.calls == 1
