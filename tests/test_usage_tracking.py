"""Usage tracking: per-LM totals on predictions, cache hits apart, totals equal to the LM history."""

from __future__ import annotations

import textgrad_like as dspy
from textgrad_like.lm.usage import track_usage
from textgrad_like.utils import DummyLM


def _history_totals(*lms) -> dict[str, dict]:
    """What the LM histories say was spent, per model name, in DSPy's shape (cache hits not counted)."""
    out: dict[str, dict] = {}
    for lm in lms:
        for entry in lm.history:
            if entry["cache_hit"]:
                continue
            row = out.setdefault(entry["model"], {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0,
                                                  "cost": 0.0})
            row["prompt_tokens"] += entry["usage"]["prompt_tokens"]
            row["completion_tokens"] += entry["usage"]["completion_tokens"]
            row["total_tokens"] += entry["usage"]["total_tokens"]
            row["cost"] += entry["cost"] or 0.0
    return out


def _calls(lm) -> int:
    return sum(1 for entry in lm.history if not entry["cache_hit"])


class TwoLMs(dspy.Module):
    def __init__(self, small, big) -> None:
        super().__init__()
        self.draft = dspy.Predict("question -> draft")
        self.draft.lm = small
        self.final = dspy.Predict("question, draft -> answer")
        self.final.lm = big

    def forward(self, question):
        draft = self.draft(question=question).draft
        return self.final(question=question, draft=draft)


def test_prediction_usage_per_lm_matches_history():
    small = DummyLM([{"draft": "a short draft"}])
    big = DummyLM([{"answer": "a much longer final answer here"}])
    big.model = "dummy-big"
    dspy.configure(track_usage=True)

    pred = TwoLMs(small, big)(question="what is up?")

    usage = pred.get_lm_usage()
    assert set(usage) == {"dummy", "dummy-big"}
    assert usage == _history_totals(small, big)
    assert _calls(small) == 1 and _calls(big) == 1
    assert usage["dummy"]["prompt_tokens"] > 0 and usage["dummy-big"]["completion_tokens"] > 0


def test_usage_off_by_default_and_inner_calls_not_double_counted():
    dspy.configure(lm=DummyLM([{"answer": "x"}, {"answer": "y"}]))
    assert dspy.Predict("question -> answer")(question="q").get_lm_usage() is None
    dspy.configure(track_usage=True)
    with track_usage() as outer:  # an enclosing tracker collects; the call adds nothing on top
        pred = dspy.Predict("question -> answer")(question="q")
    assert pred.get_lm_usage() is None
    assert outer.totals()["dummy"]["prompt_tokens"] > 0


def test_cache_hits_are_counted_apart():
    lm = DummyLM([{"answer": "cached answer"}], cache=True)
    dspy.configure(lm=lm, track_usage=True)
    predict = dspy.Predict("question -> answer")

    first = predict(question="same question")
    second = predict(question="same question")

    assert first.get_lm_usage()["dummy"]["prompt_tokens"] > 0
    assert second.get_lm_usage() == {}  # a cache hit costs nothing and is not counted, as in DSPy
    assert [e["cache_hit"] for e in lm.history] == [False, True]
    assert lm.usage.calls == 1 and lm.usage.cache_hits == 1


def test_usage_inside_evaluate_threads_matches_history():
    lm = DummyLM({f"q{i}": {"answer": f"answer number {i}"} for i in range(6)})
    dspy.configure(lm=lm, track_usage=True)
    devset = [dspy.Example(question=f"q{i}", answer=f"answer number {i}").with_inputs("question") for i in range(6)]
    evaluate = dspy.Evaluate(devset=devset, metric=lambda e, p, t=None: e.answer == p.answer, num_threads=3)

    with track_usage() as tracker:
        result = evaluate(dspy.Predict("question -> answer"))

    assert result.score == 100.0
    assert tracker.totals() == _history_totals(lm)
    assert _calls(lm) == 6


def test_each_prediction_in_a_parallel_run_gets_its_own_usage():
    lm = DummyLM({f"q{i}": {"answer": "word " * (i + 1)} for i in range(4)})
    dspy.configure(lm=lm, track_usage=True)
    predict = dspy.Predict("question -> answer")
    preds = predict.batch([dspy.Example(question=f"q{i}").with_inputs("question") for i in range(4)], num_threads=4,
                          disable_progress_bar=True)
    usages = [p.get_lm_usage()["dummy"] for p in preds]
    assert all(u["prompt_tokens"] > 0 for u in usages)
    assert sum(u["completion_tokens"] for u in usages) == _history_totals(lm)["dummy"]["completion_tokens"]


def test_usage_includes_calls_inside_an_optimizer():
    from textgrad_like.optim.bootstrap import BootstrapFewShot

    lm = DummyLM({f"q{i}": {"answer": f"a{i}"} for i in range(4)})
    dspy.configure(lm=lm, track_usage=True)
    trainset = [dspy.Example(question=f"q{i}", answer=f"a{i}").with_inputs("question") for i in range(4)]
    optimizer = BootstrapFewShot(metric=lambda e, p, t=None: e.answer == p.answer, max_bootstrapped_demos=2)

    with track_usage() as tracker:
        compiled = optimizer.compile(dspy.Predict("question -> answer"), trainset=trainset, disable_progress=True)

    assert lm.history, "the optimizer made LM calls"
    assert tracker.totals() == _history_totals(lm)
    # the compiled program is tracked on its own afterwards
    lm.answers["q9"] = {"answer": "a9"}
    before = _calls(lm)
    pred = compiled(question="q9")
    assert _calls(lm) == before + 1 and pred.get_lm_usage()["dummy"]["prompt_tokens"] > 0


def test_async_call_usage():
    import asyncio

    lm = DummyLM([{"answer": "async answer"}])
    dspy.configure(lm=lm, track_usage=True)
    pred = asyncio.run(dspy.Predict("question -> answer").acall(question="q"))
    assert pred.get_lm_usage() == _history_totals(lm)
