"""DSPy parity of the adapters: DSPy's field markers, DSPy's public adapter methods, structured
outputs for providers that support them, optional outputs, History and ToolCalls, and a parser
that stays linear on long whitespace runs (issue 18.7)."""

from __future__ import annotations

import inspect
import time
from typing import Optional

import pytest

import textgrad_like as dspy
from textgrad_like.adapters import ChatAdapter, History, JSONAdapter, ToolCalls
from textgrad_like.errors import AdapterParseError
from textgrad_like.utils import DummyLM


def test_chat_adapter_reads_dspy_markers():
    sig = dspy.Signature("question -> reasoning, answer: int")
    reply = "[[ ## reasoning ## ]]\nTwo and two.\n\n[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]"
    assert ChatAdapter().parse(sig, reply) == {"reasoning": "Two and two.", "answer": 4}


def test_dspy_markers_through_predict_without_fallback():
    lm = DummyLM(["[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"])
    pred = dspy.Predict("question -> answer")(question="Capital of France?", lm=lm)
    assert pred.answer == "Paris" and len(lm.history) == 1


def test_public_adapter_methods_have_dspy_signatures():
    expected = {
        "format_system_message": ["signature"],
        "format_field_description": ["signature"],
        "format_field_structure": ["signature"],
        "format_task_description": ["signature"],
        "format_user_message_content": ["signature", "inputs", "prefix", "suffix", "main_request"],
        "format_assistant_message_content": ["signature", "outputs", "missing_field_message"],
        "format_demos": ["signature", "demos"],
        "format_conversation_history": ["signature", "history_field_name", "inputs"],
        "parse": ["signature", "completion"],
        "format": ["signature", "demos", "inputs"],
        "__call__": ["lm", "lm_kwargs", "signature", "demos", "inputs"],
        "acall": ["lm", "lm_kwargs", "signature", "demos", "inputs"],
    }
    for adapter in (ChatAdapter(), JSONAdapter()):
        for name, params in expected.items():
            got = list(inspect.signature(getattr(adapter, name)).parameters)
            assert got == params, (type(adapter).__name__, name, got)


def test_public_methods_compose_the_messages():
    sig = dspy.Signature("question -> answer: int", "Answer the question.")
    adapter = ChatAdapter()
    system = adapter.format_system_message(sig)
    for part in (adapter.format_field_description(sig), adapter.format_field_structure(sig),
                 adapter.format_task_description(sig)):
        assert part in system
    assert "Answer the question." in adapter.format_task_description(sig)
    user = adapter.format_user_message_content(sig, {"question": "2+2"}, prefix="Hi.", suffix="Bye.",
                                               main_request=True)
    assert user.startswith("Hi.") and user.endswith("Bye.") and "2+2" in user
    assistant = adapter.format_assistant_message_content(sig, {}, missing_field_message="Not supplied")
    assert "Not supplied" in assistant
    demos = adapter.format_demos(sig, [dspy.Example(question="1+1", answer=2)])
    assert [m["role"] for m in demos] == ["user", "assistant"]


def test_overriding_a_public_method_changes_the_prompt():
    class Shouting(ChatAdapter):
        def format_task_description(self, signature):
            return "DO THE TASK: " + signature.instructions.upper()

    sig = dspy.Signature("question -> answer", "answer briefly")
    assert "DO THE TASK: ANSWER BRIEFLY" in Shouting().format_system_message(sig)


# --- optional outputs --------------------------------------------------------------------------

class MaybeNote(dspy.Signature):
    question: str = dspy.InputField()
    answer: str = dspy.OutputField()
    note: Optional[str] = dspy.OutputField()  # noqa: UP045 - DSPy programs write it this way
    count: int | None = dspy.OutputField()


def test_optional_outputs_left_out_are_none_without_fallback():
    lm = DummyLM(["<answer>\n42\n</answer>"])
    pred = dspy.Predict(MaybeNote)(question="q", lm=lm)
    assert pred.answer == "42" and pred.note is None and pred.count is None
    assert len(lm.history) == 1  # no JSON fallback call


def test_json_adapter_optional_outputs_left_out_are_none():
    assert JSONAdapter().parse(MaybeNote, '{"answer": "x"}') == {"answer": "x", "note": None, "count": None}
    with pytest.raises(AdapterParseError):
        JSONAdapter().parse(MaybeNote, '{"note": "x"}')


# --- structured outputs ------------------------------------------------------------------------

def test_json_adapter_sends_response_format_when_litellm_supports_it(monkeypatch):
    from textgrad_like.lm import lm as lm_module

    lm_module._supports_response_schema.cache_clear()
    litellm = lm_module._litellm()
    monkeypatch.setattr(litellm, "supports_response_schema", lambda model, custom_llm_provider=None: True)
    sent = {}

    def fake_completion(**kwargs):
        sent.update(kwargs)
        return litellm.ModelResponse(choices=[{"message": {"role": "assistant", "content": '{"answer": 7}'}}])

    monkeypatch.setattr(litellm, "completion", fake_completion)
    lm = dspy.LM("openai/gpt-4o-mini", cache=False, api_key="x")
    with dspy.context(adapter=JSONAdapter()):
        assert dspy.Predict("question -> answer: int")(question="q", lm=lm).answer == 7
    schema = sent["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["answer"]["type"] == "integer"
    lm_module._supports_response_schema.cache_clear()
    monkeypatch.setattr(litellm, "supports_response_schema", lambda model, custom_llm_provider=None: False)
    sent.clear()
    with dspy.context(adapter=JSONAdapter()):
        dspy.Predict("question -> answer: int")(question="q", lm=lm)
    assert "response_format" not in sent
    lm_module._supports_response_schema.cache_clear()


# --- issue 18.7: linear-time parsing -----------------------------------------------------------
# Bounds are loose (a busy CI machine) but far below what a quadratic scan of these inputs takes (minutes).

def test_one_megabyte_whitespace_run_parses_fast():
    sig = dspy.Signature("question -> answer")
    start = time.perf_counter()
    out = ChatAdapter().parse(sig, "<answer>" + " " * 1_000_000)
    assert out == {"answer": ""}
    assert time.perf_counter() - start < 10.0
    start = time.perf_counter()
    with pytest.raises(AdapterParseError):
        ChatAdapter().parse(dspy.Signature("q -> a, b"), "<a>" + " " * 1_000_000 + "\n" + "\t " * 200_000)
    ChatAdapter().parse(sig, "[[ ## answer ## ]]" + " \n" * 500_000)
    assert time.perf_counter() - start < 15.0


def test_whitespace_reply_through_predict_is_fast():
    lm = DummyLM(["<answer>" + " " * 3000 + "x" + " " * 3000, '{"answer": "y"' + " " * 3000 + "}"])
    start = time.perf_counter()
    pred = dspy.Predict("question -> answer")(question="q", lm=lm)
    assert pred.answer == "x"
    lm2 = DummyLM([" " * 3000, '{"answer": "y"' + " " * 3000 + "}"])
    assert dspy.Predict("question -> answer")(question="q", lm=lm2).answer == "y"
    assert time.perf_counter() - start < 10.0


def test_many_markers_stay_linear():
    sig = dspy.Signature("q -> a, b")
    reply = "<a>" * 50_000 + "x" + "<b>\n1\n</b>"
    start = time.perf_counter()
    ChatAdapter().parse(sig, reply)
    assert time.perf_counter() - start < 10.0


# --- History and ToolCalls ---------------------------------------------------------------------

class Chat(dspy.Signature):
    question: str = dspy.InputField()
    history: History = dspy.InputField()
    answer: str = dspy.OutputField()


def test_history_becomes_conversation_turns():
    history = History(messages=[{"question": "Capital of France?", "answer": "Paris"},
                                {"question": "Of Germany?", "answer": "Berlin"}])
    messages = ChatAdapter().format(Chat, [], {"question": "Of Italy?", "history": history})
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "Capital of France?" in messages[1]["content"] and "Paris" in messages[2]["content"]
    assert "Of Italy?" in messages[-1]["content"] and "`history` (" not in messages[0]["content"]
    lm = DummyLM([{"answer": "Rome"}])
    assert dspy.Predict(Chat)(question="Of Italy?", history=history, lm=lm).answer == "Rome"
    assert "Berlin" in lm.history[-1]["messages"][4]["content"]


def test_history_for_json_adapter_and_empty_history():
    history = History(messages=[{"question": "a", "answer": "b"}])
    messages = JSONAdapter().format(Chat, [], {"question": "c", "history": history})
    assert messages[2]["role"] == "assistant" and '"answer": "b"' in messages[2]["content"]
    assert len(ChatAdapter().format(Chat, [], {"question": "c", "history": History(messages=[])})) == 2


def test_tool_calls_output_parses():
    sig = dspy.Signature({"question": dspy.InputField(), "calls": (ToolCalls, dspy.OutputField())})
    reply = '<calls>\n[{"name": "search", "args": {"query": "x"}}]\n</calls>'
    calls = ChatAdapter().parse(sig, reply)["calls"]
    assert isinstance(calls, ToolCalls) and calls.tool_calls[0].name == "search"
    assert calls.tool_calls[0].execute({"search": lambda query: query.upper()}) == "X"
    as_dict = JSONAdapter().parse(sig, '{"calls": {"tool_calls": [{"name": "f", "args": {}}]}}')["calls"]
    assert as_dict.tool_calls[0].name == "f"
    assert ToolCalls.from_dict_list([{"name": "g", "args": {"a": 1}}]).tool_calls[0].args == {"a": 1}


def test_tool_objects_are_listed_with_their_arguments():
    from textgrad_like.tools import Tool

    def get_weather(city: str) -> str:
        """Get the weather for a city"""
        return city

    sig = dspy.Signature({"question": dspy.InputField(), "tools": (list[Tool], dspy.InputField()),
                          "answer": dspy.OutputField(), "calls": (ToolCalls, dspy.OutputField())})
    messages = ChatAdapter().format(sig, [], {"question": "Weather in Tokyo?", "tools": [Tool(get_weather)]})
    assert "get_weather" in messages[1]["content"] and "{'city': {'type': 'string'}}" in messages[1]["content"]
    assert ToolCalls.description() in messages[0]["content"]


# --- Code and TwoStepAdapter ---------------------------------------------------------------------

def test_code_type_in_and_out():
    from textgrad_like.adapters import Code

    class Analyse(dspy.Signature):
        code: Code = dspy.InputField()
        result: str = dspy.OutputField()

    messages = ChatAdapter().format(Analyse, [], {"code": "print('hi')"})
    assert Code.description() in messages[0]["content"] and "print('hi')" in messages[1]["content"]

    class Write(dspy.Signature):
        question: str = dspy.InputField()
        code: Code["sql"] = dspy.OutputField()  # noqa: F821, UP037 - a language-tagged Code type

    out = ChatAdapter().parse(Write, "[[ ## code ## ]]\n```sql\nSELECT 1\n```")["code"]
    assert out.code == "SELECT 1" and type(out).language == "sql"


def test_two_step_adapter_extracts_with_a_second_lm():
    from textgrad_like.adapters import TwoStepAdapter

    main = DummyLM(["The sum is twelve, so 12."])
    extractor = DummyLM(['{"solution": "5 + 7 = 12", "answer": 12}'])
    sig = dspy.Signature("question -> solution, answer: float")
    with dspy.context(lm=main, adapter=TwoStepAdapter(extraction_model=extractor)):
        pred = dspy.Predict(sig)(question="What is 5 + 7?")
    assert pred.answer == 12.0 and pred.solution == "5 + 7 = 12"
    assert len(main.history) == 1 and len(extractor.history) == 1
    assert "The sum is twelve" in extractor.history[0]["messages"][-1]["content"]
    bad = TwoStepAdapter(DummyLM(["{invalid json}"]))
    with pytest.raises(AdapterParseError, match="Failed to parse response"):
        bad.parse(dspy.Signature("question -> answer: int"), "text")
