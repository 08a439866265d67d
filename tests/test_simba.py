"""SIMBA with a scripted LM: high-variance buckets, append-a-demo, append-a-rule, keep the best."""

from __future__ import annotations

from typing import Any

import pytest

import textgrad_like as dspy
from tests.test_feedback_bridge import CATS, RuleLM, TwoStep, examples, two_step_examples
from textgrad_like.errors import OptimizerError
from textgrad_like.optim.simba import SIMBA, _Bucket, _Trajectory


def exact(gold: Any, pred: Any, trace: Any = None) -> float:
    return float(pred.answer == gold.answer)


def test_arguments_are_checked() -> None:
    with pytest.raises(OptimizerError):
        SIMBA(metric=None)
    with pytest.raises(OptimizerError):
        SIMBA(metric=exact, bsize=0)
    dspy.configure(lm=RuleLM())
    with pytest.raises(OptimizerError, match="fewer than bsize"):
        SIMBA(metric=exact, bsize=32).compile(dspy.Predict("question -> answer"), trainset=examples(0, 4))


def test_simba_improves_a_program_and_reports_candidates() -> None:
    lm = RuleLM(lucky=True)
    dspy.configure(lm=lm)
    student = dspy.Predict("question -> answer")
    opt = SIMBA(metric=exact, bsize=8, num_candidates=3, max_steps=3, max_demos=2, num_threads=2)
    out = opt.compile(student, trainset=examples(0, 16), seed=0)
    assert out is not student and student.instruction.value.count("RULE:") == 0 and len(student.demos) == 0
    baseline = sum(exact(e, student(**e.inputs())) for e in examples(0, 16)) / 16
    assert baseline == 0.0
    assert out.score > 0.5
    assert out.candidate_programs[0]["score"] == out.score
    assert [c["score"] for c in out.candidate_programs] == sorted((c["score"] for c in out.candidate_programs),
                                                                   reverse=True)
    strategies = {c["strategy"] for log in out.trial_logs.values() for c in log["candidates"]}
    assert strategies == {"rule", "demo"}
    assert "RULE:" in out.instruction.value or len(out.demos) > 0
    # metric calls: bsize*num_candidates trajectories + candidates on the batch per step + the final evaluation
    per_step = [8 * 3 + 8 * len(log["candidates"]) for log in out.trial_logs.values()]
    finalists = len(out.candidate_programs)
    assert out.metric_calls == sum(per_step) + 16 * finalists
    # rule prompts contrasted a better and a worse run
    rule_prompts = [p for p in lm.prompts if "<better_run>" in p]
    assert rule_prompts and "answer: unknown" in rule_prompts[0]


def test_append_a_demo_uses_the_best_trajectory_and_caps_demos() -> None:
    import random

    program = TwoStep()
    opt = SIMBA(metric=exact, max_demos=1, demo_input_field_maxlen=5)
    good = _Trajectory(0, 0, 1.0, None, [("first", {"q1": "fruit 1234567"}, {"a1": "APPLE"}),
                                          ("second", {"q2": "color 1"}, {"a2": "RED"})])
    bad = _Trajectory(0, 0, 0.0, None, [("first", {"q1": "fruit 1234567"}, {"a1": "unknown"})])
    program.first.demos = [dspy.Example(q1="old", a1="x")]
    assert opt._append_demo(_Bucket(0, [good, bad]), program, random.Random(0), floor=0.0)
    assert len(program.first.demos) == 1 and program.first.demos[0].q1 == "fruit" and program.first.demos[0].a1 == "APPLE"
    assert program.second.demos[0].a2 == "RED"
    assert not opt._append_demo(_Bucket(0, [bad]), TwoStep(), random.Random(0), floor=0.0)


def test_append_a_rule_writes_rules_into_the_named_predictors() -> None:
    lm = RuleLM()
    dspy.configure(lm=lm)
    program = TwoStep()
    trainset = two_step_examples(2)
    better = _Trajectory(0, 0, 1.0, None, [("first", {"q1": "fruit 0"}, {"a1": "APPLE"})], feedback="right")
    worse = _Trajectory(0, 0, 0.0, None, [("first", {"q1": "fruit 0"}, {"a1": "unknown"})], feedback="wrong")
    before = program.first.instruction.value
    assert SIMBA(metric=exact)._append_rule(_Bucket(0, [better, worse]), program, trainset, floor=0.0)
    assert program.first.instruction.value == before + "\n\nRULE:fruit"
    prompt = lm.prompts[-1]
    assert "worse run: wrong" in prompt and "better run: right" in prompt
    # nothing to contrast: no call, no change
    n = lm.calls
    assert not SIMBA(metric=exact)._append_rule(_Bucket(0, [worse, worse]), program, trainset, floor=0.0)
    assert lm.calls == n


def test_same_seed_same_result() -> None:
    results = []
    for _ in range(2):
        dspy.configure(lm=RuleLM(lucky=True))
        out = SIMBA(metric=exact, bsize=4, num_candidates=2, max_steps=2, num_threads=1).compile(
            dspy.Predict("question -> answer"), trainset=examples(0, 8), seed=5)
        results.append((out.instruction.value, [d.toDict() for d in out.demos], out.score))
    assert results[0] == results[1]
    assert set(CATS)  # categories the scripted task uses
