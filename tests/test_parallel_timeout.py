"""Straggler resubmission (``timeout=``, ``straggler_limit=``) in ParallelExecutor, Parallel, Module.batch
and Evaluate, with DSPy's semantics; failed examples of ``batch`` reported as DSPy does."""

from __future__ import annotations

import inspect
import threading
import time

import pytest

import textgrad_like as dspy
from textgrad_like.parallel import ParallelExecutor
from textgrad_like.settings import settings
from textgrad_like.utils import DummyLM


class Hang:
    """``fn(i)``: the first attempt at ``slow`` blocks until released; every other call returns at once."""

    def __init__(self, slow: int) -> None:
        self.slow = slow
        self.release = threading.Event()
        self.attempts: dict[int, int] = {}
        self.lock = threading.Lock()

    def __call__(self, i: int) -> tuple[int, int]:
        with self.lock:
            self.attempts[i] = self.attempts.get(i, 0) + 1
            attempt = self.attempts[i]
        if i == self.slow and attempt == 1:
            self.release.wait(10)
        return i, attempt


def test_a_straggler_is_resubmitted_and_the_first_copy_to_finish_wins() -> None:
    fn = Hang(slow=2)
    executor = ParallelExecutor(num_threads=4, timeout=0.2, straggler_limit=3, disable_progress_bar=True)
    start = time.monotonic()
    try:
        results = executor.run(fn, range(5))
    finally:
        fn.release.set()
    assert time.monotonic() - start < 5
    assert results == [(0, 1), (1, 1), (2, 2), (3, 1), (4, 1)]
    assert executor.resubmitted == [2] and fn.attempts[2] == 2 and not executor.errors


def test_no_resubmission_without_timeout_or_while_many_remain() -> None:
    fn = Hang(slow=0)
    threading.Timer(0.6, fn.release.set).start()
    executor = ParallelExecutor(num_threads=4, timeout=None, disable_progress_bar=True)
    assert executor.run(fn, range(3))[0] == (0, 1) and executor.resubmitted == []

    fn = Hang(slow=0)
    threading.Timer(0.6, fn.release.set).start()
    executor = ParallelExecutor(num_threads=2, timeout=0.1, straggler_limit=0, disable_progress_bar=True)
    assert executor.run(fn, range(3))[0] == (0, 1) and executor.resubmitted == []


def test_the_second_copy_runs_in_the_callers_context() -> None:
    seen = []
    release = threading.Event()
    lock = threading.Lock()

    def fn(i: int) -> str:
        with lock:
            seen.append(i)
            first = seen.count(i) == 1
        if first and i == 0:
            release.wait(10)
        return settings.get("lm")

    with dspy.context(lm="the-lm"):
        try:
            out = ParallelExecutor(num_threads=2, timeout=0.1, disable_progress_bar=True).run(fn, [0, 1])
        finally:
            release.set()
    assert out == ["the-lm", "the-lm"]


def test_dspy_signatures_and_defaults() -> None:
    for fn in (dspy.Parallel.__init__, dspy.Module.batch, dspy.Evaluate.__init__):
        params = inspect.signature(fn).parameters
        assert params["timeout"].default == 120 and params["straggler_limit"].default == 3
    batch = inspect.signature(dspy.Module.batch).parameters
    assert list(batch)[1:6] == ["examples", "num_threads", "max_errors", "return_failed_examples",
                                "provide_traceback"]


def test_parallel_and_batch_pass_the_options_through(monkeypatch) -> None:
    made = []
    original = ParallelExecutor.__init__

    def spy(self, *args, **kwargs):
        made.append((kwargs.get("timeout"), kwargs.get("straggler_limit")))
        original(self, *args, **kwargs)

    monkeypatch.setattr(ParallelExecutor, "__init__", spy)
    dspy.configure(lm=DummyLM({"q": {"answer": "a"}}))
    program = dspy.Predict("question -> answer")
    examples = [dspy.Example(question=f"q{i}").with_inputs("question") for i in range(2)]
    program.batch(examples, num_threads=2, timeout=7, straggler_limit=1)
    dspy.Parallel(num_threads=2, timeout=8, straggler_limit=2)([(program, ex) for ex in examples])
    dspy.Evaluate(devset=[ex.copy(answer="a") for ex in examples], metric=lambda e, p: 1.0, timeout=9,
                  straggler_limit=0)(program)
    assert made == [(7, 1), (8, 2), (9, 0)]


def test_batch_reports_failed_examples_as_dspy() -> None:
    dspy.configure(lm=DummyLM({"q": {"answer": "a"}}))

    class Flaky(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("question -> answer")

        def forward(self, question: str):
            if question == "q1":
                raise ValueError("no q1")
            return self.predict(question=question)

    examples = [dspy.Example(question=f"q{i}", answer="a").with_inputs("question") for i in range(3)]
    results, failed, exceptions = Flaky().batch(examples, num_threads=2, max_errors=5, return_failed_examples=True)
    assert results[0].answer == "a" and results[1] is None and results[2].answer == "a"
    assert failed == [examples[1].inputs()] and "answer" not in failed[0]
    assert len(exceptions) == 1 and isinstance(exceptions[0], ValueError)


def test_unknown_parallel_arguments_are_refused() -> None:
    with pytest.raises(TypeError):
        dspy.Parallel(num_thread=2)
