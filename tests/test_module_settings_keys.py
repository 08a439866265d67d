"""Settings keys with DSPy's meaning: ``trace``/``max_trace_size``, per-module ``history`` capped by
``max_history_size`` (``disable_history``), the ``caller_modules`` stack, the direct ``forward`` warning,
unknown settings names, and pickling a ``Prediction``."""

from __future__ import annotations

import asyncio
import logging
import pickle
import threading

import pytest

import textgrad_like as dspy
from textgrad_like.settings import settings
from textgrad_like.utils import DummyLM


def _lm(n: int = 20) -> DummyLM:
    return DummyLM([{"answer": "Paris"}] * n)


def test_trace_records_predictor_calls_capped_by_max_trace_size() -> None:
    program = dspy.Predict("question -> answer")
    dspy.configure(lm=_lm(), max_trace_size=3)
    for _ in range(5):
        program(question="q?")
    trace = dspy.settings.trace
    assert len(trace) == 3
    predictor, inputs, prediction = trace[-1]
    assert predictor is program and inputs == {"question": "q?"} and prediction.answer == "Paris"


def test_trace_none_disables_tracing() -> None:
    dspy.configure(lm=_lm(), trace=None)
    dspy.Predict("question -> answer")(question="q?")
    assert dspy.settings.trace is None


def test_context_trace_list_collects_the_block() -> None:
    dspy.configure(lm=DummyLM([{"reasoning": "r", "answer": "Paris"}]))
    program = dspy.ChainOfThought("question -> answer")
    with dspy.context(trace=[]):
        program(question="q?")
        assert len(dspy.settings.trace) == 1
        assert dspy.settings.trace[0][0] is program.predict


def test_trace_is_per_thread() -> None:
    dspy.configure(lm=_lm())
    dspy.Predict("question -> answer")(question="q?")
    seen: list[int] = []
    t = threading.Thread(target=lambda: seen.append(len(dspy.settings.trace)))
    t.start()
    t.join()
    assert seen == [0] and len(dspy.settings.trace) == 1


def test_trace_is_per_task() -> None:
    dspy.configure(lm=_lm())

    async def one() -> int:
        await dspy.Predict("question -> answer").acall(question="q?")
        return len(dspy.settings.trace)

    async def main() -> list[int]:
        return list(await asyncio.gather(one(), one()))

    assert asyncio.run(main()) == [1, 1]


class _Outer(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cot = dspy.ChainOfThought("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.cot(question=question)


def test_module_history_shared_with_callers() -> None:
    dspy.configure(lm=DummyLM([{"reasoning": "r", "answer": "Paris"}] * 5))
    program = _Outer()
    program(question="q?")
    program.cot(question="q?")
    assert len(program.history) == 1 and len(program.cot.history) == 2 and len(program.cot.predict.history) == 2
    assert program.history[0] is program.cot.history[0]
    dspy.configure(disable_history=True)
    program(question="q?")
    assert len(program.history) == 1


def test_module_history_async_and_capped() -> None:
    dspy.configure(lm=_lm(), max_history_size=2)
    program = dspy.Predict("question -> answer")

    async def run() -> None:
        for _ in range(4):
            await program.acall(question="q?")

    asyncio.run(run())
    assert len(program.history) == 2


def test_caller_modules_is_the_stack_of_running_modules() -> None:
    seen: list[list[object]] = []

    class Inner(dspy.Module):
        def forward(self) -> int:
            seen.append(list(settings.caller_modules))
            return 1

    class Outer(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Inner()

        def forward(self) -> int:
            return self.inner()

    outer = Outer()
    outer()
    assert seen == [[outer, outer.inner]]
    assert not settings.caller_modules


def test_forward_called_directly_warns(caplog: pytest.LogCaptureFixture) -> None:
    class Echo(dspy.Module):
        def forward(self, x: int) -> int:
            return x

    echo = Echo()
    with caplog.at_level(logging.WARNING):
        assert echo(x=1) == 1
    assert "directly is discouraged" not in caplog.text
    with caplog.at_level(logging.WARNING):
        assert echo.forward(x=2) == 2
    assert "directly is discouraged" in caplog.text


def test_super_forward_inside_forward_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    class Base(dspy.Module):
        def forward(self, x: int) -> int:
            return x

    class Child(Base):
        def forward(self, x: int) -> int:
            return super().forward(x) + 1

    with caplog.at_level(logging.WARNING):
        assert Child()(x=1) == 2
    assert "directly is discouraged" not in caplog.text


def test_unknown_setting_raises_attribute_error() -> None:
    with pytest.raises(AttributeError):
        _ = settings.no_such_setting_name
    assert settings.get("no_such_setting_name") is None


def test_prediction_pickles() -> None:
    pred = dspy.Prediction(answer="Paris")
    again = pickle.loads(pickle.dumps(pred))
    assert again.answer == "Paris"
    ex = dspy.Example(question="q", answer="a").with_inputs("question")
    assert pickle.loads(pickle.dumps(ex)).inputs().toDict() == {"question": "q"}
