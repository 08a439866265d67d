"""COPRO and Ensemble with scripted LMs."""

from __future__ import annotations

import pytest

import textgrad_like as dspy
from tests.test_optim_mipro import RoutedLM, data, exact
from textgrad_like.errors import BudgetExceeded, OptimizerError
from textgrad_like.lm.usage import budget
from textgrad_like.optim.copro import COPRO
from textgrad_like.optim.ensemble import Ensemble


class CoproLM(RoutedLM):
    """First-round proposals are 'quickly'; proposals written from attempts say 'carefully'."""

    def _next_answer(self, messages):  # type: ignore[override]
        system = str(messages[0]["content"])
        if "`proposed_prefix_for_output_field`" in system:
            if "`attempted_instructions`" in system:
                return {"proposed_instruction": "Answer each question carefully.", "proposed_prefix_for_output_field": "Answer:"}
            return {"proposed_instruction": "Answer each question quickly.", "proposed_prefix_for_output_field": "Answer:"}
        return super()._next_answer(messages)


def test_copro_improves_instruction_over_depth():
    dspy.configure(lm=CoproLM())
    opt = COPRO(metric=exact, breadth=3, depth=2, track_stats=True)
    best = opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 19), eval_kwargs={"num_threads": 2})
    assert best.signature.instructions == "Answer each question carefully."
    assert best.signature.output_fields["answer"].prefix == "Answer:"
    state = opt.state_dict()
    assert state["best"]["score"] == 100.0 and state["best"]["depth"] == 1
    assert best.candidate_programs[0]["score"] == 100.0
    assert best.results_best[0]["max"][-1] == 100.0
    assert opt.history.rows[-1]["best_so_far"] == 100.0 and opt.history.rows[0]["score"] < 100.0


def test_copro_arguments_and_budget():
    with pytest.raises(OptimizerError, match="breadth"):
        COPRO(metric=exact, breadth=1)
    dspy.configure(lm=CoproLM())
    with budget(max_calls=12), pytest.raises(BudgetExceeded) as info:
        COPRO(metric=exact, breadth=3, depth=2).compile(dspy.Predict("question -> answer"), trainset=data(10, 19))
    assert info.value.best_program is not None


def test_ensemble_reduces_and_samples():
    class Const(dspy.Module):
        def __init__(self, value: str) -> None:
            super().__init__()
            self.value = value

        def forward(self, question: str):
            return dspy.Prediction(answer=self.value)

    programs = [Const("a"), Const("b"), Const("a")]

    def majority(outputs):
        answers = [o.answer for o in outputs]
        return dspy.Prediction(answer=max(sorted(set(answers)), key=answers.count))

    ensembled = Ensemble(reduce_fn=majority).compile(programs)
    assert ensembled(question="x").answer == "a"
    assert len(Ensemble().compile(programs)(question="x")) == 3
    sampled = Ensemble(size=2, deterministic=True).compile(programs)
    first = [o.answer for o in sampled(question="same")]
    assert len(first) == 2 and all([o.answer for o in sampled(question="same")] == first for _ in range(5))
    with pytest.raises(OptimizerError):
        Ensemble().compile([])


def test_copro_proposer_sees_the_task_fields():
    from typing import Literal

    seen: list[str] = []

    class Recording(CoproLM):
        def _next_answer(self, messages):  # type: ignore[override]
            if "`proposed_instruction`" in str(messages[0]["content"]):
                seen.append(str(messages[-1]["content"]))
            return super()._next_answer(messages)

    dspy.configure(lm=Recording())
    sig = dspy.Signature("question -> answer", "Answer.").with_updated_fields(
        "answer", type_=Literal[tuple(f"a{i}" for i in range(10, 13))], desc="the answer code")
    COPRO(metric=exact, breadth=2, depth=2).compile(dspy.Predict(sig), trainset=data(10, 13))
    assert len(seen) == 1 + 2  # breadth - 1 first proposals, then breadth from the attempts
    assert all("output `answer` (exactly one of: a10, a11, a12): the answer code" in text for text in seen)
    assert "input `question` (text)" in seen[0] and "Score #" in seen[-1]
    # each proposal sees its own seeded sample of trainset examples, with the outputs they should get
    assert all(text.count("Example ") == 3 and "answer: a1" in text for text in seen)
    assert len({text.split("<examples>")[1].split("</examples>")[0] for text in seen}) > 1

    seen.clear()
    COPRO(metric=exact, breadth=2, depth=1, num_examples=0).compile(dspy.Predict(sig), trainset=data(10, 13))
    assert len(seen) == 1 and "<examples>" not in seen[0] and "Example 1" not in seen[0]
    with pytest.raises(OptimizerError, match="num_examples"):
        COPRO(metric=exact, num_examples=-1)


def test_copro_example_sample_covers_distinct_outputs_first():
    import random

    from textgrad_like.optim.copro import diverse_sample

    pool = [dspy.Example(text=f"t{i}", label="rare" if i == 7 else "common").with_inputs("text") for i in range(20)]
    for seed in range(10):
        picked = diverse_sample(pool, 2, random.Random(seed))
        assert sorted(e.label for e in picked) == ["common", "rare"]
    assert len(diverse_sample(pool, 50, random.Random(0))) == 20
    assert diverse_sample(pool, 3, random.Random(4)) == diverse_sample(pool, 3, random.Random(4))
