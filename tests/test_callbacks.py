"""Callbacks: hook order and arguments, registration, errors inside callbacks."""

from __future__ import annotations

import asyncio
import logging

import pytest

import textgrad_like as dspy
from textgrad_like.adapters import ChatAdapter
from textgrad_like.callbacks import (
    ACTIVE_CALL_ID,
    BaseCallback,
    active_calls,
    flat_inputs,
    with_callbacks,
    wrap_methods,
)
from textgrad_like.utils import DummyLM


class Recorder(BaseCallback):
    """Records every hook with its arguments."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def _start(self, hook: str, call_id: str, instance, inputs) -> None:
        self.calls.append({"hook": hook, "call_id": call_id, "instance": instance, "inputs": inputs,
                           "parent": ACTIVE_CALL_ID.get()})

    def _end(self, hook: str, call_id: str, outputs, exception) -> None:
        self.calls.append({"hook": hook, "call_id": call_id, "outputs": outputs, "exception": exception})

    def on_module_start(self, call_id, instance, inputs):
        self._start("module_start", call_id, instance, inputs)

    def on_module_end(self, call_id, outputs, exception=None):
        self._end("module_end", call_id, outputs, exception)

    def on_lm_start(self, call_id, instance, inputs):
        self._start("lm_start", call_id, instance, inputs)

    def on_lm_end(self, call_id, outputs, exception=None):
        self._end("lm_end", call_id, outputs, exception)

    def on_adapter_format_start(self, call_id, instance, inputs):
        self._start("format_start", call_id, instance, inputs)

    def on_adapter_format_end(self, call_id, outputs, exception=None):
        self._end("format_end", call_id, outputs, exception)

    def on_adapter_parse_start(self, call_id, instance, inputs):
        self._start("parse_start", call_id, instance, inputs)

    def on_adapter_parse_end(self, call_id, outputs, exception=None):
        self._end("parse_end", call_id, outputs, exception)

    def on_tool_start(self, call_id, instance, inputs):
        self._start("tool_start", call_id, instance, inputs)

    def on_tool_end(self, call_id, outputs, exception=None):
        self._end("tool_end", call_id, outputs, exception)

    def on_evaluate_start(self, call_id, instance, inputs):
        self._start("evaluate_start", call_id, instance, inputs)

    def on_evaluate_end(self, call_id, outputs, exception=None):
        self._end("evaluate_end", call_id, outputs, exception)

    def hooks(self, skip_parse: bool = False) -> list[str]:
        return [c["hook"] for c in self.calls if not (skip_parse and c["hook"].startswith("parse"))]


class TwoStep(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.draft = dspy.Predict("question -> draft")
        self.final = dspy.Predict("question, draft -> answer")

    def forward(self, question: str):
        draft = self.draft(question=question).draft
        return self.final(question=question, draft=draft)


def _parse_is_hooked() -> bool:
    return getattr(ChatAdapter.parse, "__textgrad_like_callbacks__", False)


PER_PREDICT = ["module_start", "format_start", "format_end", "lm_start", "lm_end", "module_end"]


def test_two_module_program_order_and_arguments():
    lm = DummyLM([{"draft": "about four"}, {"answer": "4"}])
    rec = Recorder()
    dspy.configure(lm=lm, callbacks=[rec])
    program = TwoStep()

    result = program(question="2+2?")

    assert result.answer == "4"
    assert rec.hooks(skip_parse=True) == ["module_start", *PER_PREDICT, *PER_PREDICT, "module_end"]
    calls = [c for c in rec.calls if not c["hook"].startswith("parse")]

    # the outer module: its instance and its inputs, in DSPy's shape (the arguments of __call__)
    assert calls[0]["instance"] is program
    assert calls[0]["inputs"] == {"args": (), "kwargs": {"question": "2+2?"}}
    assert flat_inputs(calls[0]["inputs"]) == {"question": "2+2?"}
    assert calls[0]["parent"] is None
    # first predictor, its adapter and LM calls nest under the outer call
    assert calls[1]["instance"] is program.draft
    assert flat_inputs(calls[1]["inputs"]) == {"question": "2+2?"}
    assert calls[1]["parent"] == calls[0]["call_id"]
    assert isinstance(calls[2]["instance"], ChatAdapter)
    assert calls[2]["inputs"]["inputs"] == {"question": "2+2?"}
    assert calls[2]["parent"] == calls[1]["call_id"]
    messages = calls[3]["outputs"]
    assert messages[-1]["role"] == "user" and "2+2?" in messages[-1]["content"]
    assert calls[4]["instance"] is lm
    assert calls[4]["inputs"]["messages"] == messages
    assert calls[5]["outputs"] == [lm.history[0]["outputs"][0]]
    assert calls[5]["exception"] is None
    assert calls[6]["outputs"].draft == "about four"
    # second predictor gets the draft
    assert calls[7]["instance"] is program.final
    assert calls[7]["inputs"]["kwargs"] == {"question": "2+2?", "draft": "about four"}
    # the outer end has the final prediction; every start pairs with an end of the same id
    assert calls[-1]["outputs"] is result
    starts = [c["call_id"] for c in rec.calls if c["hook"].endswith("_start")]
    ends = [c["call_id"] for c in rec.calls if c["hook"].endswith("_end")]
    assert sorted(starts) == sorted(ends) and len(set(starts)) == len(starts)
    assert ACTIVE_CALL_ID.get() is None and active_calls() == ()



def test_adapter_parse_hooks():
    lm = DummyLM([{"draft": "about four"}, {"answer": "4"}])
    rec = Recorder()
    dspy.configure(lm=lm, callbacks=[rec])
    TwoStep()(question="2+2?")
    per_predict = ["module_start", "format_start", "format_end", "lm_start", "lm_end", "parse_start", "parse_end",
                   "module_end"]
    assert rec.hooks() == ["module_start", *per_predict, *per_predict, "module_end"]
    parse_start = rec.calls[6]
    assert parse_start["inputs"]["completion"] == lm.history[0]["outputs"][0]
    assert rec.calls[7]["outputs"] == {"draft": "about four"}


def test_exception_inside_a_callback_is_logged_and_ignored(caplog):
    class Broken(BaseCallback):
        def on_module_start(self, call_id, instance, inputs):
            raise RuntimeError("start hook broke")

        def on_lm_end(self, call_id, outputs, exception=None):
            raise KeyError("end hook broke")

    rec = Recorder()
    dspy.configure(lm=DummyLM([{"draft": "d"}, {"answer": "ok"}]), callbacks=[Broken(), rec])
    with caplog.at_level(logging.WARNING, logger="textgrad_like.callbacks"):
        result = TwoStep()(question="q")
    assert result.answer == "ok"
    # the broken callback did not stop the others
    assert rec.hooks(skip_parse=True) == ["module_start", *PER_PREDICT, *PER_PREDICT, "module_end"]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Broken.on_module_start raised" in m for m in messages) == 3
    assert sum("Broken.on_lm_end raised" in m for m in messages) == 2


def test_exception_in_the_program_reaches_end_hooks():
    class Failing(dspy.Module):
        def forward(self, x):
            raise ValueError("bad input")

    rec = Recorder()
    dspy.configure(callbacks=[rec])
    with pytest.raises(ValueError, match="bad input"):
        Failing()(x=1)
    assert rec.hooks() == ["module_start", "module_end"]
    assert rec.calls[1]["outputs"] is None
    assert isinstance(rec.calls[1]["exception"], ValueError)
    assert ACTIVE_CALL_ID.get() is None


def test_per_instance_callbacks_and_no_duplicates():
    module_rec, lm_rec, both = Recorder(), Recorder(), Recorder()
    lm = DummyLM([{"answer": "a"}, {"answer": "b"}], callbacks=[lm_rec, both])
    dspy.configure(lm=lm, callbacks=[both])
    watched = dspy.Predict("question -> answer", callbacks=[module_rec])
    unwatched = dspy.Predict("question -> answer")
    watched(question="q1")
    unwatched(question="q2")
    assert module_rec.hooks() == ["module_start", "module_end"]
    assert module_rec.calls[0]["instance"] is watched
    assert lm_rec.hooks() == ["lm_start", "lm_end", "lm_start", "lm_end"]
    # registered globally and on the LM: still one call per hook
    assert both.hooks(skip_parse=True) == [*PER_PREDICT, *PER_PREDICT]


def test_with_callbacks_on_user_methods_binds_arguments():
    rec = Recorder()

    class Target(dspy.Module):
        @with_callbacks
        def compute(self, x: int, y: str, z: float = 3.0) -> int:
            return x + int(y) + int(z)

    target = Target(callbacks=[rec])
    assert target.compute(1, y="2") == 6
    assert rec.calls[0]["inputs"] == {"x": 1, "y": "2", "z": 3.0}
    assert rec.calls[1]["outputs"] == 6
    assert Target().compute(1, "2") == 6  # another instance: no callbacks
    assert len(rec.calls) == 2


def test_tool_and_evaluate_hooks():
    class Search:
        _callback_kind = "tool"
        name = "search"

        def __init__(self) -> None:
            self.callbacks: list = []

        @with_callbacks
        def __call__(self, query: str) -> str:
            return f"results for {query}"

    rec = Recorder()
    dspy.configure(callbacks=[rec])
    assert Search()(query="otel") == "results for otel"
    assert rec.hooks() == ["tool_start", "tool_end"]
    assert rec.calls[0]["inputs"] == {"query": "otel"}
    assert rec.calls[1]["outputs"] == "results for otel"

    rec.calls.clear()
    dspy.configure(lm=DummyLM({"q1": {"answer": "a"}, "q2": {"answer": "b"}}))
    devset = [dspy.Example(question=q, answer=a).with_inputs("question") for q, a in (("q1", "a"), ("q2", "x"))]
    evaluate = dspy.Evaluate(devset=devset, metric=lambda ex, pred, trace=None: ex.answer == pred.answer,
                             num_threads=2)
    result = evaluate(dspy.Predict("question -> answer"))
    assert rec.calls[0]["hook"] == "evaluate_start" and rec.calls[-1]["hook"] == "evaluate_end"
    assert rec.calls[-1]["outputs"] is result and result.score == 50.0
    evaluate_id = rec.calls[0]["call_id"]
    module_starts = [c for c in rec.calls if c["hook"] == "module_start"]
    # module calls made in the executor's threads still know their parent
    assert len(module_starts) == 2 and all(c["parent"] == evaluate_id for c in module_starts)


def test_async_calls_fire_the_same_hooks():
    rec = Recorder()
    dspy.configure(lm=DummyLM([{"answer": "async"}]), callbacks=[rec])
    predict = dspy.Predict("question -> answer")
    result = asyncio.run(predict.acall(question="q"))
    assert result.answer == "async"
    assert rec.hooks(skip_parse=True) == PER_PREDICT
    lm_start = next(c for c in rec.calls if c["hook"] == "lm_start")
    assert lm_start["parent"] == rec.calls[0]["call_id"]


def test_duck_typed_callback_and_wrap_methods():
    class OnlyLM:  # not a BaseCallback subclass: missing hooks are skipped
        def __init__(self) -> None:
            self.seen = 0

        def on_lm_start(self, call_id, instance, inputs):
            self.seen += 1

    cb = OnlyLM()
    dspy.configure(lm=DummyLM([{"answer": "a"}]), callbacks=[cb])
    dspy.Predict("question -> answer")(question="q")
    assert cb.seen == 1

    class MyAdapter:
        _callback_kind = "adapter"
        callbacks: list = []

        def parse(self, signature, completion):
            return {"answer": completion}

    wrap_methods(MyAdapter, "parse")
    wrap_methods(MyAdapter, "parse")  # idempotent
    rec = Recorder()
    dspy.configure(callbacks=[rec])
    assert MyAdapter().parse(None, "x") == {"answer": "x"}
    assert rec.hooks() == ["parse_start", "parse_end"]


def test_utils_reexports():
    from textgrad_like.utils import BaseCallback as FromUtils
    from textgrad_like.utils.callback import BaseCallback as FromCallbackModule

    assert FromUtils is BaseCallback and FromCallbackModule is BaseCallback


def test_hook_inputs_have_dspys_shape_for_tools_and_modules():
    """DSPy passes a start hook the decorated method's arguments as bound (``inspect.getcallargs``):
    ``Tool.__call__(**kwargs)`` gives ``{"kwargs": {...}}``, ``Module.__call__`` ``{"args": (), "kwargs": {...}}``."""

    def add(x: int, y: int) -> int:
        """Add two numbers."""
        return x + y

    rec = Recorder()
    dspy.configure(callbacks=[rec], lm=DummyLM([{"answer": "4"}]))
    tool = dspy.Tool(add)
    assert tool(x=1, y=2) == 3
    assert rec.calls[0]["hook"] == "tool_start" and rec.calls[0]["instance"] is tool
    assert rec.calls[0]["inputs"] == {"kwargs": {"x": 1, "y": 2}}
    assert rec.calls[1]["outputs"] == 3 and rec.calls[1]["exception"] is None

    rec.calls.clear()
    dspy.Predict("question -> answer")(question="hi")
    assert rec.calls[0]["inputs"] == {"args": (), "kwargs": {"question": "hi"}}
    lm_start = next(c for c in rec.calls if c["hook"] == "lm_start")
    assert {"prompt", "messages", "kwargs"} <= set(lm_start["inputs"])
