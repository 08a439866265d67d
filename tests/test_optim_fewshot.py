"""LabeledFewShot, BootstrapFewShot, BootstrapRS and KNNFewShot with scripted LMs."""

from __future__ import annotations

import re

import pytest

import textgrad_like as dspy
from textgrad_like.errors import BudgetExceeded, OptimizerError
from textgrad_like.lm.usage import budget
from textgrad_like.optim.bootstrap import BootstrapFewShot
from textgrad_like.optim.knn_fewshot import HashingEmbedder, KNNFewShot
from textgrad_like.optim.labeled_fewshot import LabeledFewShot
from textgrad_like.optim.random_search import BootstrapFewShotWithRandomSearch, BootstrapRS
from textgrad_like.utils.dummies import DummyLM


class QALM(DummyLM):
    """Answers ``qN`` with ``aN``, except every third question (wrong) unless a demo shows it."""

    def _next_answer(self, messages):  # type: ignore[override]
        last = str(messages[-1]["content"])
        q = re.search(r"<question>\n(.*?)\n</question>", last, re.S).group(1)
        n = int(q[1:])
        return {"answer": f"a{n}" if n % 3 else "wrong"}


def data(lo: int, hi: int) -> list[dspy.Example]:
    return [dspy.Example(question=f"q{i}", answer=f"a{i}").with_inputs("question") for i in range(lo, hi)]


def exact(example, pred, trace=None) -> bool:
    return example.answer == pred.answer


class TwoStep(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = dspy.Predict("question -> answer")
        self.second = dspy.Predict("question -> answer")

    def forward(self, question: str):
        self.first(question=question)
        return self.second(question=question)


def test_labeled_fewshot_sets_demos_parameter():
    train = data(10, 30)
    program = dspy.Predict("question -> answer")
    compiled = LabeledFewShot(k=5).compile(program, trainset=train)
    assert len(compiled.demos) == 5 and all(d in train for d in compiled.demos)
    assert program.demos == []  # the student is not modified
    first = LabeledFewShot(k=3).compile(program, trainset=train, sample=False)
    assert list(first.demos) == train[:3]
    assert compiled.state_dict()["demos"] == [d.toDict() for d in compiled.demos]


def test_bootstrap_keeps_only_passing_traces_per_predictor():
    dspy.configure(lm=QALM())
    train = data(10, 20)
    opt = BootstrapFewShot(metric=exact, max_bootstrapped_demos=3, max_labeled_demos=5)
    compiled = opt.compile(TwoStep(), trainset=train)
    for name in ("first", "second"):
        demos = getattr(compiled, name).demos
        augmented = [d for d in demos if d.get("augmented")]
        assert [d.question for d in augmented] == ["q10", "q11", "q13"]  # q12 fails the metric
        assert all(d.answer == "a" + d.question[1:] for d in augmented)
        assert len(demos) == 5
    assert compiled._compiled is True
    assert opt.history.rows and opt.history.rows[-1]["lm_calls"] == 8  # 4 runs x 2 predictors
    assert opt.state_dict()["bootstrapped_indices"] == [0, 1, 3]


def test_bootstrap_counts_failures_and_stops_after_max_errors():
    class Broken(DummyLM):
        def _generate(self, messages, **kwargs):
            raise RuntimeError("backend down")

    dspy.configure(lm=Broken())
    opt = BootstrapFewShot(metric=exact, max_bootstrapped_demos=2, max_errors=3)
    with pytest.raises(RuntimeError, match="backend down") as info:  # DSPy: the run's own error ends compile()
        opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 20))
    assert opt.error_count >= 3 and "max_errors=3" in " ".join(info.value.__notes__)


def test_bootstrap_rejects_mismatched_teacher():
    dspy.configure(lm=QALM())
    with pytest.raises(OptimizerError, match="same number of predictors"):
        BootstrapFewShot(metric=exact).compile(TwoStep(), trainset=data(10, 12), teacher=dspy.Predict("question -> answer"))


def test_random_search_candidates_and_best_on_valset():
    dspy.configure(lm=QALM())
    opt = BootstrapRS(metric=exact, max_bootstrapped_demos=2, max_labeled_demos=3, num_candidate_programs=2,
                      num_threads=2)
    assert BootstrapRS is BootstrapFewShotWithRandomSearch
    best = opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 20), valset=data(20, 32))
    seeds = [c["seed"] for c in opt.state_dict()["candidates"]]
    assert seeds == [-3, -2, -1, 0, 1]
    scores = [c["score"] for c in opt.state_dict()["candidates"]]
    assert best.candidate_programs[0]["score"] == max(scores)
    assert len(opt.history) == 5 and opt.history.rows[-1]["best_so_far"] == max(scores)
    assert opt.history.rows[-1]["lm_calls"] > opt.history.rows[0]["lm_calls"] > 0


def test_random_search_is_reproducible():
    def run():
        dspy.configure(lm=QALM())
        opt = BootstrapRS(metric=exact, max_bootstrapped_demos=3, max_labeled_demos=4, num_candidate_programs=3)
        best = opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 22), valset=data(22, 30))
        return best.state_dict(), opt.state_dict()

    assert run() == run()


def test_random_search_budget_exceeded_carries_best_program():
    dspy.configure(lm=QALM())
    opt = BootstrapRS(metric=exact, max_bootstrapped_demos=2, max_labeled_demos=2, num_candidate_programs=4)
    with budget(max_calls=20), pytest.raises(BudgetExceeded) as info:
        opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 20), valset=data(20, 28))
    assert info.value.best_program is not None  # zero-shot and labeled candidates were scored (16 calls)
    assert info.value.best_score == opt.state_dict()["best_score"]


def test_knn_fewshot_uses_nearest_examples_as_demos():
    dspy.configure(lm=QALM())
    train = [dspy.Example(question=q, answer=a).with_inputs("question") for q, a in
             [("q1 apples", "a1"), ("q2 pears", "a2"), ("q4 apples apples", "a4"), ("q5 cars", "a5")]]

    class LM(DummyLM):
        def _next_answer(self, messages):  # type: ignore[override]
            self.seen.append(messages)
            return {"answer": "x"}

    lm = LM()
    lm.seen = []
    dspy.configure(lm=lm)
    program = KNNFewShot(2, train, max_bootstrapped_demos=0, max_labeled_demos=2).compile(
        dspy.Predict("question -> answer"))
    program(question="q7 apples")
    demo_text = " ".join(m["content"] for m in lm.seen[-1][1:-1])
    assert "apples" in demo_text and "cars" not in demo_text and "pears" not in demo_text
    assert [n for n, _ in program.named_predictors()] == ["self"]
    vectors = HashingEmbedder(dim=64)(["hello world", "hello world", "other"])
    assert vectors.shape == (3, 64) and float(vectors[0] @ vectors[1]) == pytest.approx(1.0)
