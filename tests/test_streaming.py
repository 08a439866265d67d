"""Streaming: status messages, output fields piece by piece, the final Prediction, errors mid-stream."""

from __future__ import annotations

import asyncio
import threading

import pytest

import textgrad_like as dspy
from textgrad_like.adapters import JSONAdapter
from textgrad_like.errors import ConfigurationError, LMError
from textgrad_like.lm.base import BaseLM, LMResponse
from textgrad_like.primitives import Prediction
from textgrad_like.streaming import (
    StatusMessage,
    StatusMessageProvider,
    StreamChunk,
    StreamListener,
    StreamResponse,
    apply_sync_streaming,
    streamify,
    streaming_response,
)
from textgrad_like.streaming.listener import partial_json_value, partial_tag_value


class ScriptedStreamLM(BaseLM):
    """Replies are lists of pieces; ``stream`` yields them one by one (an Exception piece is raised)."""

    def __init__(self, replies: list[list], cache: bool = False) -> None:
        super().__init__("scripted-stream", cache=cache)
        self.replies = list(replies)
        self.streamed = 0
        self._lock = threading.Lock()

    def _next(self) -> list:
        with self._lock:
            return self.replies.pop(0)

    def _generate(self, messages, **kwargs) -> LMResponse:
        pieces = self._next()
        text = "".join(p for p in pieces if isinstance(p, str))
        return LMResponse(outputs=[text], prompt_tokens=10, completion_tokens=len(pieces), model=self.model)

    def stream(self, messages, **kwargs):
        pieces = self._next()
        self.streamed += 1
        for piece in pieces:
            if isinstance(piece, BaseException):
                raise piece
            yield piece
        return LMResponse(outputs=["".join(pieces)], prompt_tokens=10, completion_tokens=len(pieces),
                          model=self.model)


COT_REPLY = ["<reas", "oning>\nTwo plus", " two", " is four.\n</reasoning>\n<answer>\n4", "2\n</ans", "wer>"]


def _fields(items: list, field: str) -> list[StreamResponse]:
    return [i for i in items if isinstance(i, StreamResponse) and i.signature_field_name == field]


def test_sync_stream_yields_fields_piece_by_piece_then_the_prediction():
    dspy.configure(lm=ScriptedStreamLM([COT_REPLY]))
    program = dspy.ChainOfThought("question -> answer")
    stream = streamify(program, stream_listeners=[StreamListener("reasoning"), StreamListener("answer")],
                       async_streaming=False)

    items = list(stream(question="2+2?"))

    reasoning, answer = _fields(items, "reasoning"), _fields(items, "answer")
    assert [r.chunk for r in reasoning] == ["Two plus", " two", " is four."]
    assert [r.is_last_chunk for r in reasoning] == [False, False, True]
    assert [r.chunk for r in answer] == ["4", "2", ""]
    assert [r.is_last_chunk for r in answer] == [False, False, True]
    assert {r.predict_name for r in reasoning + answer} == {"predict"}
    # field by field, in the order the LM wrote them, and the Prediction last
    assert items.index(reasoning[-1]) < items.index(answer[0])
    assert isinstance(items[-1], Prediction)
    assert items[-1].answer == "42" and items[-1].reasoning == "Two plus two is four."
    assert "".join(r.chunk for r in reasoning) == items[-1].reasoning


def test_async_stream_and_async_program():
    async def consume(is_async_program: bool) -> list:
        dspy.configure(lm=ScriptedStreamLM([["<answer>\nHel", "lo wor", "ld\n</answer>"]]))
        stream = streamify(dspy.Predict("question -> answer"), stream_listeners=[StreamListener("answer")],
                           is_async_program=is_async_program)
        return [item async for item in stream(question="hi")]

    for is_async_program in (False, True):
        items = asyncio.run(consume(is_async_program))
        assert [i.chunk for i in _fields(items, "answer")] == ["Hel", "lo wor", "ld"]
        assert isinstance(items[-1], Prediction) and items[-1].answer == "Hello world"


def test_end_tag_split_across_pieces_is_never_leaked():
    reply = ["<answer>\nx <", " y <", "/ans", "wer>"]
    dspy.configure(lm=ScriptedStreamLM([reply]))
    stream = streamify(dspy.Predict("question -> answer"), stream_listeners=[StreamListener("answer")],
                       async_streaming=False)
    items = list(stream(question="q"))
    chunks = [i.chunk for i in _fields(items, "answer")]
    assert chunks == ["x", " < y", ""]
    assert "".join(chunks) == items[-1].answer == "x < y"


def test_json_adapter_fields_stream_decoded():
    reply = ['{"reasoning": "He said \\"h', 'i\\"\\n', 'ok", "answer": ', "42", "}"]
    dspy.configure(lm=ScriptedStreamLM([reply]), adapter=JSONAdapter())
    program = dspy.Predict("question -> reasoning, answer: int")
    stream = streamify(program, stream_listeners=[StreamListener("reasoning"), StreamListener("answer")],
                       async_streaming=False)
    items = list(stream(question="q"))
    reasoning = _fields(items, "reasoning")
    assert [r.chunk for r in reasoning] == ['He said "h', 'i"\n', "ok"]
    assert reasoning[-1].is_last_chunk
    assert "".join(i.chunk for i in _fields(items, "answer")) == "42"
    assert items[-1].answer == 42 and items[-1].reasoning == 'He said "hi"\nok'


def test_error_mid_stream_reaches_the_consumer_sync_and_async():
    def program_and_stream(async_streaming: bool):
        reply = ["<answer>\npartial ", "text", LMError("connection dropped")]
        dspy.configure(lm=ScriptedStreamLM([reply]))
        return streamify(dspy.Predict("question -> answer"), stream_listeners=[StreamListener("answer")],
                         async_streaming=async_streaming)

    received: list = []
    with pytest.raises(LMError, match="connection dropped"):
        for item in program_and_stream(False)(question="q"):
            received.append(item)
    assert [i.chunk for i in received] == ["partial", " text"]  # what arrived before the failure

    async def consume() -> list:
        out = []
        async for item in program_and_stream(True)(question="q"):
            out.append(item)
        return out

    with pytest.raises(LMError, match="connection dropped"):
        asyncio.run(consume())


def test_status_messages_from_a_provider():
    class Messages(StatusMessageProvider):
        def module_start_status_message(self, instance, inputs):
            return f"Running {type(instance).__name__}"

        def lm_start_status_message(self, instance, inputs):
            return "Asking the LM"

        def lm_end_status_message(self, outputs):
            return "LM answered"

    dspy.configure(lm=ScriptedStreamLM([["<answer>\nfine\n</answer>"]]))
    stream = streamify(dspy.Predict("question -> answer"), status_message_provider=Messages(),
                       stream_listeners=[StreamListener("answer")], async_streaming=False)
    items = list(stream(question="q"))
    statuses = [i.message for i in items if isinstance(i, StatusMessage)]
    assert statuses == ["Running Predict", "Asking the LM", "LM answered"]
    answer = _fields(items, "answer")
    assert items.index(answer[0]) > next(i for i, x in enumerate(items) if getattr(x, "message", "") == "Asking the LM")
    assert isinstance(items[-1], Prediction)
    assert dspy.settings.get("send_stream") is None  # nothing leaks out of the stream


def test_without_listeners_raw_chunks_are_yielded():
    dspy.configure(lm=ScriptedStreamLM([["<answer>\n", "a", "b\n</answer>"]]))
    stream = streamify(dspy.Predict("question -> answer"), async_streaming=False)
    items = list(stream(question="q"))
    raw = [i for i in items if isinstance(i, StreamChunk)]
    assert [c.text for c in raw] == ["<answer>\n", "a", "b\n</answer>"]
    assert items[-1].answer == "ab"


def test_final_prediction_can_be_left_out():
    dspy.configure(lm=ScriptedStreamLM([["<answer>\nx\n</answer>"]]))
    stream = streamify(dspy.Predict("question -> answer"), stream_listeners=[StreamListener("answer")],
                       include_final_prediction_in_output_stream=False, async_streaming=False)
    items = list(stream(question="q"))
    assert not any(isinstance(i, Prediction) for i in items)
    assert "".join(i.chunk for i in items) == "x"


def test_listeners_pick_their_predictor_and_reuse():
    class TwoStep(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = dspy.Predict("question -> answer")
            self.second = dspy.Predict("question -> answer")

        def forward(self, question):
            a = self.first(question=question).answer
            return self.second(question=a)

    program = TwoStep()
    with pytest.raises(ConfigurationError, match="Several predictors"):
        streamify(program, stream_listeners=[StreamListener("answer")])
    with pytest.raises(ConfigurationError, match="No predictor"):
        streamify(program, stream_listeners=[StreamListener("missing")])

    dspy.configure(lm=ScriptedStreamLM([["<answer>\none\n</answer>"], ["<answer>\ntwo\n</answer>"]]))
    stream = streamify(program, stream_listeners=[StreamListener("answer", predict=program.second)],
                       async_streaming=False)
    items = list(stream(question="q"))
    got = _fields(items, "answer")
    assert "".join(i.chunk for i in got) == "two" and {i.predict_name for i in got} == {"second"}

    class Loop(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.step = dspy.Predict("question -> answer")

        def forward(self, question):
            for _ in range(2):
                question = self.step(question=question).answer
            return dspy.Prediction(answer=question)

    for allow_reuse, expected in ((False, ["a1"]), (True, ["a1", "a2"])):
        dspy.configure(lm=ScriptedStreamLM([["<answer>\na1\n</answer>"], ["<answer>\na2\n</answer>"]]))
        stream = streamify(Loop(), stream_listeners=[StreamListener("answer", allow_reuse=allow_reuse)],
                           async_streaming=False)
        chunks = [i.chunk for i in stream(question="q") if isinstance(i, StreamResponse) and i.chunk]
        assert chunks == expected


def test_cache_hit_streams_the_cached_field_at_once():
    lm = ScriptedStreamLM([["<answer>\nca", "ched\n</answer>"]], cache=True)
    dspy.configure(lm=lm)
    stream = streamify(dspy.Predict("question -> answer"), stream_listeners=[StreamListener("answer")],
                       async_streaming=False)
    first = list(stream(question="same"))
    second = list(stream(question="same"))
    assert [i.chunk for i in _fields(first, "answer")] == ["ca", "ched"]
    assert [i.chunk for i in _fields(second, "answer")] == ["cached"]
    assert lm.streamed == 1 and lm.history[-1]["cache_hit"] is True
    assert second[-1].answer == "cached"


def test_default_stream_hook_and_usage_of_a_stream():
    from textgrad_like.utils import DummyLM

    lm = DummyLM([{"answer": "whole"}])
    dspy.configure(lm=lm, track_usage=True)
    stream = streamify(dspy.Predict("question -> answer"), stream_listeners=[StreamListener("answer")],
                       async_streaming=False)
    items = list(stream(question="q"))
    assert [i.chunk for i in _fields(items, "answer")] == ["whole"]  # yielded once by the default hook
    usage = items[-1].get_lm_usage()["dummy"]  # DSPy's shape: token totals per LM
    assert usage["prompt_tokens"] == lm.history[-1]["usage"]["prompt_tokens"]


def test_streaming_helpers():
    dspy.configure(lm=ScriptedStreamLM([["<answer>\nok\n</answer>"], ["<answer>\nok\n</answer>"]]))
    program = dspy.Predict("question -> answer")
    async_stream = streamify(program, stream_listeners=[StreamListener("answer")],
                             status_message_provider=type("P", (StatusMessageProvider,), {
                                 "lm_start_status_message": lambda self, i, x: "go"})())

    items = list(apply_sync_streaming(async_stream(question="q")))
    assert isinstance(items[-1], Prediction) and items[-1].answer == "ok"

    async def sse() -> list[str]:
        return [line async for line in streaming_response(async_stream(question="q"))]

    lines = asyncio.run(sse())
    assert lines[0] == 'data: {"status": "go"}\n\n'
    assert lines[-2] == 'data: {"prediction": {"answer": "ok"}}\n\n'
    assert lines[-1] == "data: [DONE]\n\n"


def test_partial_parsers_are_prefix_stable():
    full = "<reasoning>\n a <b> c \n</reasoning>\n<answer>\n 1 < 2 \n</answer>"
    previous = ""
    for end in range(len(full) + 1):
        value, complete = partial_tag_value(full[:end], "answer", ["reasoning"], final=False)
        if value is None:
            continue
        assert value.startswith(previous)
        previous = value
    assert previous == "1 < 2" and complete

    text = '{"a": {"x": [1, "}"]}, "answer": "caf\\u00e9 \\ud83d\\ude00 done"}'
    previous = ""
    for end in range(len(text) + 1):
        value, complete = partial_json_value(text[:end], "answer", final=False)
        if value is None:
            continue
        assert value.startswith(previous)
        previous = value
    assert previous == "café 😀 done" and complete
    # a missing end tag: the next field's tag ends the value
    assert partial_tag_value("<reasoning>\nr\n<answer>\n7", "reasoning", ["answer"], final=False) == ("r", True)


def test_lm_subclass_with_its_own_backend_does_not_stream_through_litellm():
    from textgrad_like.lm.lm import LM

    class Backend(LM):
        def _generate(self, messages, **kwargs):
            return LMResponse(outputs=["<answer>\nlocal\n</answer>"], prompt_tokens=3, completion_tokens=2)

    dspy.configure(lm=Backend("custom/backend", cache=False))
    stream = streamify(dspy.Predict("question -> answer"), stream_listeners=[StreamListener("answer")],
                       async_streaming=False)
    items = list(stream(question="q"))
    assert [i.chunk for i in _fields(items, "answer")] == ["local"]
    assert items[-1].answer == "local"


def test_litellm_lm_streams_pieces(monkeypatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    lm = dspy.LM("openai/gpt-4o-mini", cache=False)
    reply = "<answer>\nhello there friend\n</answer>"
    pieces: list[str] = []
    generator = lm.stream([{"role": "user", "content": "hi"}], mock_response=reply)
    while True:
        try:
            pieces.append(next(generator))
        except StopIteration as stop:
            response = stop.value
            break
    assert len(pieces) > 1 and "".join(pieces) == reply
    assert response.outputs == [reply] and response.completion_tokens > 0


@pytest.mark.integration
def test_embedded_lm_stream(embedded_lm):
    from textgrad_like.lm.lm import LM

    owner = next(c for c in type(embedded_lm).__mro__ if "stream" in c.__dict__)
    if owner in (BaseLM, LM):
        pytest.skip(f"{type(embedded_lm).__name__} has no token streaming of its own (it yields the whole reply "
                    "once), so there is nothing incremental to check.")
    program = dspy.Predict("question -> answer")
    program.lm = embedded_lm
    stream = streamify(program, stream_listeners=[StreamListener("answer")], async_streaming=False)
    items = list(stream(question="What is the capital of France?"))
    assert isinstance(items[-1], Prediction)
    chunks = [i for i in items if isinstance(i, StreamResponse) and i.signature_field_name == "answer"]
    assert len(chunks) >= 2, "the answer should arrive in several pieces"
    assert "".join(c.chunk for c in chunks).strip() == str(items[-1].answer).strip()


