"""MIPROv2 and the grounded proposer with a routed scripted LM."""

from __future__ import annotations

import hashlib
import re

import pytest

import textgrad_like as dspy
from textgrad_like.errors import BudgetExceeded, OptimizerError
from textgrad_like.lm.usage import budget
from textgrad_like.optim.mipro import MIPROv2
from textgrad_like.optim.proposer import TIPS, GroundedProposer
from textgrad_like.utils.dummies import DummyLM


class RoutedLM(DummyLM):
    """Proposer calls get scripted replies; proposals mention 'carefully' for some hashes, and the task
    model answers every question right only under an instruction that says 'carefully'."""

    def _next_answer(self, messages):  # type: ignore[override]
        system, last = str(messages[0]["content"]), str(messages[-1]["content"])
        produce = system.split("You must produce these output fields", 1)[-1].split("\n\n", 1)[0]
        if "`proposed_instruction`" in produce:
            h = hashlib.sha256(last.encode()).hexdigest()[:6]
            word = "carefully" if int(h, 16) % 2 else "quickly"
            return {"proposed_instruction": f"Answer {word} (variant {h})."}
        if "`notes`" in produce:
            return {"notes": "Questions are short codes like q12; answers mirror them as a12."}
        if "`summary`" in produce:
            return {"summary": "Short question codes mapped to answer codes."}
        if "`program_description`" in produce:
            return {"program_description": "A single step that answers a question."}
        if "`module_description`" in produce:
            return {"module_description": "Maps a question code to its answer code."}
        n = int(re.search(r"<question>\n q?(\d+)|<question>\nq(\d+)", last).group(2))
        careful = "carefully" in system
        return {"answer": f"a{n}" if (careful or n % 3) else "wrong"}


def data(lo: int, hi: int) -> list[dspy.Example]:
    return [dspy.Example(question=f"q{i}", answer=f"a{i}").with_inputs("question") for i in range(lo, hi)]


def exact(example, pred, trace=None) -> bool:
    return example.answer == pred.answer


def make(**kwargs):
    args = dict(metric=exact, auto=None, num_candidates=4, max_bootstrapped_demos=2, max_labeled_demos=2, num_threads=2)
    args.update(kwargs)
    return MIPROv2(**args)


def test_mipro_finds_the_better_instruction_and_records_state():
    dspy.configure(lm=RoutedLM())
    opt = make()
    best = opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 20), valset=data(20, 32),
                       num_trials=6, minibatch=False)
    state = opt.state_dict()
    instructions = state["instruction_candidates"]["0"]
    assert instructions[0].startswith("Given the fields")
    assert len(instructions) >= 2 and any("carefully" in t for t in instructions)
    assert len(state["demo_candidates"]["0"]) == 4
    assert "carefully" in best.signature.instructions
    assert best.score == 100.0 and state["best"]["score"] == 100.0
    assert state["default_score"] < 100.0
    kinds = [e["kind"] for e in state["events"]]
    assert kinds[0] == "default" and kinds.count("trial") == 6
    rows = opt.history.rows
    assert rows[0]["kind"] == "default" and rows[-1]["best_so_far"] == 100.0
    assert all(b["lm_calls"] >= a["lm_calls"] for a, b in zip(rows, rows[1:], strict=False))


def test_mipro_minibatch_mode_runs_periodic_full_evals():
    dspy.configure(lm=RoutedLM())
    opt = make()
    opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 20), valset=data(20, 40), num_trials=5,
                minibatch_size=6, minibatch_full_eval_steps=2)
    events = opt.state_dict()["events"]
    assert [e["kind"] for e in events].count("minibatch") == 5
    assert all(len(e["batch"]) == 6 for e in events if e["kind"] == "minibatch")
    assert 1 <= [e["kind"] for e in events].count("full") <= 3
    assert all(r["kind"] in ("default", "full") for r in opt.history.rows)


def test_mipro_same_seed_same_result():
    def run(seed):
        dspy.configure(lm=RoutedLM())
        opt = make(seed=seed)
        best = opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 20), valset=data(20, 30),
                           num_trials=5, minibatch=False)
        return best.state_dict(), [(e["params"], e["score"]) for e in opt.state_dict()["events"]]

    assert run(3) == run(3)


def test_mipro_argument_checks():
    dspy.configure(lm=RoutedLM())
    with pytest.raises(OptimizerError, match="num_trials"):
        make().compile(dspy.Predict("question -> answer"), trainset=data(10, 20), valset=data(20, 30))
    with pytest.raises(OptimizerError, match="auto"):
        MIPROv2(metric=exact, auto="huge")
    with pytest.raises(OptimizerError, match="preset"):
        MIPROv2(metric=exact, num_candidates=3).compile(dspy.Predict("question -> answer"), trainset=data(10, 20))
    with pytest.raises(OptimizerError, match="minibatch_size"):
        make().compile(dspy.Predict("question -> answer"), trainset=data(10, 20), valset=data(20, 30), num_trials=2)
    with pytest.raises(OptimizerError, match="confirmation"):
        make().compile(dspy.Predict("question -> answer"), trainset=data(10, 20), num_trials=2,
                       requires_permission_to_run=True)


def test_mipro_auto_light_zero_shot_uses_preset(caplog):
    dspy.configure(lm=RoutedLM())
    opt = MIPROv2(metric=exact, auto="light", max_bootstrapped_demos=0, max_labeled_demos=0, num_threads=2)
    with caplog.at_level("INFO"):
        best = opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 16), valset=data(20, 28))
    assert opt.config["num_instruct_candidates"] == 6 and opt.config["minibatch"] is False
    assert any("projected at most" in r.getMessage() for r in caplog.records)
    assert best.demos == [] and "events" in opt.state_dict()


def test_mipro_budget_exceeded_attaches_best_so_far():
    dspy.configure(lm=RoutedLM())
    opt = make()
    with budget(max_calls=70), pytest.raises(BudgetExceeded) as info:
        opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 20), valset=data(20, 32), num_trials=8,
                    minibatch=False)
    assert info.value.best_program is not None
    assert info.value.search_state["best"]["score"] == info.value.best_score


def test_grounded_proposer_uses_evidence():
    lm = RoutedLM()
    lm.seen = []
    original = lm._next_answer

    def spy(messages):
        lm.seen.append(messages)
        return original(messages)

    lm._next_answer = spy
    dspy.configure(lm=lm)
    program = dspy.Predict("question -> answer")
    proposer = GroundedProposer(prompt_model=lm, program=program, trainset=data(10, 30), view_data_batch_size=5,
                                max_data_batches=2)
    assert proposer.projected_calls(1, 4) == {"data summary": 3, "program description": 2, "instruction proposals": 3}
    demos = {0: [[dspy.Example(question="q1", answer="a1")]]}
    out = proposer.propose_instructions_for_program(data(10, 30), program, demos, N=4)
    assert out[0][0] == program.signature.instructions and len(out[0]) >= 2
    proposal_prompts = [m[-1]["content"] for m in lm.seen if "`proposed_instruction`" in m[0]["content"]]
    assert len(proposal_prompts) == 3
    assert all("Short question codes" in p and "q1" in p and "single step" in p for p in proposal_prompts)
    assert len(lm.seen) == 3 + 2 + 3
    assert all(isinstance(t, str) for t in TIPS.values())
