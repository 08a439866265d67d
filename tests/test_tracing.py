"""OpenTelemetry export: spans per call, nesting, attributes, errors, trials — against the real SDK."""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import StatusCode  # noqa: E402

import textgrad_like as dspy  # noqa: E402
from textgrad_like.callbacks import with_callbacks  # noqa: E402
from textgrad_like.tracing import TracingCallback, active_tracing, disable_tracing, enable_tracing, trial_span  # noqa: E402
from textgrad_like.utils import DummyLM  # noqa: E402


def _by_name(spans, name):
    return [s for s in spans if s.name == name]


def _children(spans, parent):
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


class TwoStep(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.draft = dspy.Predict("question -> draft")
        self.final = dspy.Predict("question, draft -> answer")

    def forward(self, question: str):
        draft = self.draft(question=question).draft
        return self.final(question=question, draft=draft)


def test_program_spans_nest_and_carry_inputs_outputs_and_tokens(exporter):
    lm = DummyLM([{"draft": "about four"}, {"answer": "4"}])
    dspy.configure(lm=lm)
    TwoStep()(question="2+2?")
    spans = exporter.get_finished_spans()

    root = _by_name(spans, "TwoStep.forward")
    assert len(root) == 1 and root[0].parent is None
    root = root[0]
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    predicts = _children(spans, root)
    assert [s.name for s in predicts] == ["Predict.forward", "Predict.forward"]
    for predict in predicts:
        names = sorted(s.name for s in _children(spans, predict))
        assert "ChatAdapter.format" in names and "DummyLM.__call__" in names

    assert json.loads(root.attributes["textgrad_like.inputs"]) == {"question": "2+2?"}
    assert json.loads(root.attributes["textgrad_like.outputs"]) == {"answer": "4"}
    assert predicts[0].attributes["textgrad_like.signature"] == "question -> draft"

    lm_spans = _by_name(spans, "DummyLM.__call__")
    assert len(lm_spans) == 2
    for span, entry in zip(lm_spans, lm.history, strict=True):
        assert span.attributes["textgrad_like.kind"] == "lm"
        assert span.attributes["gen_ai.request.model"] == "dummy"
        assert span.attributes["gen_ai.usage.input_tokens"] == entry["usage"]["prompt_tokens"]
        assert span.attributes["gen_ai.usage.output_tokens"] == entry["usage"]["completion_tokens"]
        assert span.attributes["textgrad_like.lm.cost"] == 0.0
        assert span.attributes["textgrad_like.lm.cache_hit"] is False
        assert json.loads(span.attributes["textgrad_like.outputs"]) == entry["outputs"]


def test_error_spans_record_the_exception(exporter):
    class Failing(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = dspy.Predict("question -> answer")

        def forward(self, question):
            self.inner(question=question)
            raise RuntimeError("step 2 failed")

    dspy.configure(lm=DummyLM([{"answer": "a"}]))
    with pytest.raises(RuntimeError):
        Failing()(question="q")
    (outer,) = _by_name(exporter.get_finished_spans(), "Failing.forward")
    assert outer.status.status_code is StatusCode.ERROR
    assert "step 2 failed" in outer.status.description
    assert outer.events[0].name == "exception"
    (inner,) = _by_name(exporter.get_finished_spans(), "Predict.forward")
    assert inner.status.status_code is StatusCode.UNSET


def test_multi_step_program_with_tools(exporter):
    class Lookup:
        _callback_kind = "tool"
        name = "lookup"
        callbacks: list = []

        @with_callbacks
        def __call__(self, key: str) -> str:
            return {"paris": "France"}.get(key, "unknown")

    class Agent(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.step = dspy.Predict("question, observations -> next_key")
            self.answer = dspy.Predict("question, observations -> answer")
            self.tool = Lookup()

        def forward(self, question):
            observations = []
            for _ in range(2):
                key = self.step(question=question, observations=str(observations)).next_key
                observations.append(self.tool(key=key))
            return self.answer(question=question, observations=str(observations))

    dspy.configure(lm=DummyLM([{"next_key": "paris"}, {"next_key": "rome"}, {"answer": "France"}]))
    assert Agent()(question="Where is Paris?").answer == "France"
    spans = exporter.get_finished_spans()
    (root,) = _by_name(spans, "Agent.forward")
    assert [s.name for s in sorted(_children(spans, root), key=lambda s: s.start_time)] == [
        "Predict.forward", "Tool.lookup", "Predict.forward", "Tool.lookup", "Predict.forward"]
    tools = _by_name(spans, "Tool.lookup")
    assert [json.loads(t.attributes["textgrad_like.outputs"]) for t in tools] == ["France", "unknown"]
    assert tools[0].attributes["textgrad_like.tool.name"] == "lookup"
    assert len({s.context.trace_id for s in spans}) == 1


def test_react_spans(exporter):
    react_module = pytest.importorskip("textgrad_like.predict.react")

    def search(query: str) -> str:
        """Look something up."""
        return f"{query} is in France"

    dspy.configure(lm=DummyLM([
        {"next_thought": "look it up", "next_tool_name": "search", "next_tool_args": {"query": "Paris"}},
        {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}},
        {"reasoning": "the tool said so", "answer": "France"},
    ]))
    agent = react_module.ReAct("question -> answer", tools=[search], max_iters=3)
    assert agent(question="Where is Paris?").answer == "France"
    spans = exporter.get_finished_spans()
    (root,) = _by_name(spans, "ReAct.forward")
    tools = [s for s in spans if s.attributes.get("textgrad_like.kind") == "tool"]
    assert [t.name for t in sorted(tools, key=lambda s: s.start_time)] == ["Tool.search", "Tool.finish"]
    assert all(t.parent.span_id == root.context.span_id for t in tools)
    assert len(_by_name(spans, "DummyLM.__call__")) == 3
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}


def test_evaluate_threads_nest_under_the_evaluate_span(exporter):
    dspy.configure(lm=DummyLM({"q1": {"answer": "a"}, "q2": {"answer": "b"}, "q3": {"answer": "c"}}))
    devset = [dspy.Example(question=f"q{i}", answer="abc"[i - 1]).with_inputs("question") for i in (1, 2, 3)]
    result = dspy.Evaluate(devset=devset, metric=lambda e, p, t=None: e.answer == p.answer, num_threads=3)(
        dspy.Predict("question -> answer"))
    spans = exporter.get_finished_spans()
    (evaluate,) = _by_name(spans, "Evaluate.__call__")
    assert evaluate.attributes["textgrad_like.evaluate.score"] == result.score == 100.0
    predicts = _by_name(spans, "Predict.forward")
    assert len(predicts) == 3 and all(p.parent.span_id == evaluate.context.span_id for p in predicts)


def test_trials_are_separate_traces(exporter):
    dspy.configure(lm=DummyLM([{"answer": "a"}, {"answer": "b"}]))
    program = dspy.Predict("question -> answer")

    class FakeOptimizer:
        _callback_kind = "compile"
        callbacks: list = []

        @with_callbacks
        def compile(self, student):
            for i in range(2):
                with trial_span(f"trial {i}", {"trial.index": i}):
                    student(question=f"q{i}")
            return student

    FakeOptimizer().compile(program)
    spans = exporter.get_finished_spans()
    trials = sorted(_by_name(spans, "trial 0") + _by_name(spans, "trial 1"), key=lambda s: s.name)
    assert [t.attributes["trial.index"] for t in trials] == [0, 1]
    assert all(t.parent is None for t in trials)
    assert trials[0].context.trace_id != trials[1].context.trace_id
    (compile_span,) = _by_name(spans, "FakeOptimizer.compile")
    assert all(t.links[0].context.span_id == compile_span.context.span_id for t in trials)
    for trial in trials:
        in_trace = [s for s in spans if s.context.trace_id == trial.context.trace_id]
        assert {s.name for s in in_trace} >= {trial.name, "Predict.forward", "DummyLM.__call__"}


def test_async_spans_nest(exporter):
    dspy.configure(lm=DummyLM([{"reasoning": "r", "answer": "x"}]))
    cot = dspy.ChainOfThought("question -> answer")
    asyncio.run(cot.acall(question="q"))
    spans = exporter.get_finished_spans()
    (outer,) = _by_name(spans, "ChainOfThought.forward")
    (inner,) = _by_name(spans, "Predict.forward")
    (lm_span,) = _by_name(spans, "DummyLM.__call__")
    assert inner.parent.span_id == outer.context.span_id
    assert lm_span.parent.span_id == inner.context.span_id


def test_usage_and_cache_hits_on_spans(exporter):
    lm = DummyLM([{"answer": "once"}], cache=True)
    dspy.configure(lm=lm, track_usage=True)
    predict = dspy.Predict("question -> answer")
    predict(question="same")
    predict(question="same")
    lm_spans = _by_name(exporter.get_finished_spans(), "DummyLM.__call__")
    assert [s.attributes["textgrad_like.lm.cache_hit"] for s in lm_spans] == [False, True]
    module_spans = _by_name(exporter.get_finished_spans(), "Predict.forward")
    usage = json.loads(module_spans[0].attributes["textgrad_like.lm_usage"])
    assert usage["dummy"]["prompt_tokens"] == lm.history[0]["usage"]["prompt_tokens"]  # DSPy's usage shape
    assert module_spans[0].attributes["gen_ai.usage.input_tokens"] == lm.history[0]["usage"]["prompt_tokens"]


def test_enable_disable_and_noop_trial():
    with trial_span("no tracing") as span:
        assert span is None
    provider = TracerProvider()
    first = enable_tracing(provider)
    second = enable_tracing(provider, capture_content=False)
    callbacks = dspy.settings.get("callbacks")
    assert active_tracing() is second and first not in callbacks
    assert sum(isinstance(cb, TracingCallback) for cb in callbacks) == 1
    disable_tracing()
    assert active_tracing() is None


def test_capture_content_off_and_truncation():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    enable_tracing(provider, capture_content=False)
    dspy.configure(lm=DummyLM([{"answer": "secret"}]))
    dspy.Predict("question -> answer")(question="private")
    assert all("textgrad_like.inputs" not in s.attributes for s in exporter.get_finished_spans())
    exporter.clear()
    enable_tracing(provider, max_attribute_length=40)
    dspy.configure(lm=DummyLM([{"answer": "y" * 200}]))
    dspy.Predict("question -> answer")(question="x" * 200)
    for span in exporter.get_finished_spans():
        assert len(span.attributes["textgrad_like.inputs"]) <= 40
