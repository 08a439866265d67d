import asyncio
import threading

import textgrad_like as dspy
from textgrad_like.utils import DummyLM


def test_context_is_per_thread():
    results = {}
    barrier = threading.Barrier(8)

    def worker(i):
        lm = DummyLM({"q": {"answer": f"from-{i}"}})
        with dspy.context(lm=lm):
            barrier.wait()
            outs = [dspy.Predict("q -> answer")(q="x").answer for _ in range(5)]
            results[i] = (outs, len(lm.history))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(8):
        assert results[i] == ([f"from-{i}"] * 5, 5)


def test_context_restores_and_configure_inside_context_is_local():
    a, b = DummyLM([]), DummyLM([])
    dspy.configure(lm=a)
    with dspy.context(lm=b):
        assert dspy.settings.lm is b
        dspy.configure(adapter=dspy.JSONAdapter())
        assert isinstance(dspy.settings.adapter, dspy.JSONAdapter)
    assert dspy.settings.lm is a and dspy.settings.adapter is None


def test_context_is_per_async_task():
    async def task(i):
        lm = DummyLM({"q": {"answer": str(i)}})
        with dspy.context(lm=lm):
            await asyncio.sleep(0.01)
            pred = await dspy.Predict("q -> answer").acall(q="x")
            return pred.answer

    async def main():
        return await asyncio.gather(*(task(i) for i in range(5)))

    assert asyncio.run(main()) == ["0", "1", "2", "3", "4"]


def test_evaluate_threads_inherit_context():
    lm = DummyLM({"q": {"answer": "ok"}})
    with dspy.context(lm=lm):
        result = dspy.Evaluate(devset=[dspy.Example(q=str(i), answer="ok").with_inputs("q") for i in range(8)],
                               metric=dspy.evaluate.answer_exact_match, num_threads=4)(dspy.Predict("q -> answer"))
    assert result.score == 100.0 and len(lm.history) == 8
