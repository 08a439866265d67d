"""Instruction search that knows when its proposer is weak (COPRO, MIPROv2, GEPA, SIMBA).

Scripted LMs only: a proposer that writes label names, empty text or copies gets every proposal
rejected before any evaluation; a candidate worse than the start on the minibatch is never fully
evaluated; when nothing beats the start a WARNING says so and demo gains are kept; ``prompt_model`` /
``reflection_lm`` write proposals and nothing else.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

import textgrad_like as dspy
from tests.test_feedback_bridge import CATS, RuleLM, examples, feedback_metric
from tests.test_optim_mipro import RoutedLM, data, exact
from textgrad_like import prompts
from textgrad_like.errors import ConfigurationError
from textgrad_like.optim.copro import COPRO, minibatch_indices
from textgrad_like.optim.gepa import GEPA
from textgrad_like.optim.mipro import MIPROv2
from textgrad_like.optim.simba import SIMBA
from textgrad_like.utils.dummies import DummyLM

START = "Given the fields `question`, produce the fields `answer`."


def _produces(messages: list[dict[str, Any]]) -> str:
    system = str(messages[0]["content"])
    return system.split("You must produce these output fields", 1)[-1].split("\n\n", 1)[0]


class TaskLM(RoutedLM):
    """The task of tests.test_optim_mipro (right under 'carefully', or when n % 3, or with demos in the prompt;
    wrong for every question under 'badly'); proposals are taken in turn from ``proposals``."""

    def __init__(self, proposals: list[str] | None = None, demos_help: bool = False) -> None:
        super().__init__([])
        self.proposals = list(proposals or ["Answer each question carefully."])
        self.demos_help = demos_help
        self.task_calls = 0
        self.proposal_calls = 0
        self._lock = threading.Lock()

    def _next_answer(self, messages):  # type: ignore[override]
        produce = _produces(messages)
        if "`proposed_instruction`" in produce:
            with self._lock:
                text = self.proposals[self.proposal_calls % len(self.proposals)]
                self.proposal_calls += 1
            out = {"proposed_instruction": text}
            if "`proposed_prefix_for_output_field`" in produce:
                out["proposed_prefix_for_output_field"] = ""
            return out
        if "`answer`" not in produce:  # data notes, summaries, descriptions of MIPROv2's proposer
            return super()._next_answer(messages)
        with self._lock:
            self.task_calls += 1
        if "badly" in str(messages[0]["content"]):
            return {"answer": "wrong"}
        answer = super()._next_answer(messages)
        if self.demos_help and len(messages) > 2:  # demos are the turns between the system and the last message
            answer = {"answer": "a" + str(messages[-1]["content"]).split("<question>\n", 1)[1].split()[0].lstrip("q")}
        return answer


class ProposerOnly(DummyLM):
    """A stand-in for a stronger prompt model: writes a real instruction, records every prompt it gets."""

    def __init__(self, instruction: str = "Answer each question carefully, checking the code.") -> None:
        super().__init__([])
        self.instruction = instruction
        self.produced: list[str] = []
        self._lock = threading.Lock()

    def _next_answer(self, messages):  # type: ignore[override]
        produce = _produces(messages)
        with self._lock:
            self.produced.append(produce)
        if "`proposed_instruction`" in produce:
            return {"proposed_instruction": self.instruction, "proposed_prefix_for_output_field": ""}
        for name in ("notes", "summary", "program_description", "module_description"):
            if f"`{name}`" in produce:
                return {name: "Short question codes mapped to answer codes."}
        raise AssertionError(f"the prompt model was asked for task work: {produce[:200]}")


# --- screening: rejected proposals cost no evaluation ----------------------------------------------------------

WEAK = ["a12", "", "answer", "<question>", START, "  a15 "]


def test_copro_rejects_unusable_proposals_without_evaluating_them(caplog):
    lm = TaskLM(WEAK)
    dspy.configure(lm=lm)
    student = dspy.Predict("question -> answer")
    trainset = data(10, 22)
    opt = COPRO(metric=exact, breadth=6, depth=2)
    with caplog.at_level("INFO"):
        best = opt.compile(student, trainset=trainset)
    assert lm.task_calls == len(trainset)  # the start program's evaluation, nothing else
    stats = opt.state_dict()["proposals"]
    assert stats["tried"] == lm.proposal_calls == 5 + 6 and stats["accepted"] == 0
    assert stats["rejected"] == {"a label name": 3, "empty": 2, "a field name": 4, "a copy of the current instruction": 2}
    assert opt.state_dict()["instruction_improved"] is False
    assert best.signature.instructions == START
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("no instruction that beats the start" in w and "0 of 11" in w for w in warnings)
    assert any("0 of 11 proposed instructions passed screening" in r.getMessage() for r in caplog.records
               if r.levelname == "INFO")


def test_mipro_proposer_rejections_are_never_scored():
    lm = TaskLM(["a12", "", "Answer each question carefully."])
    dspy.configure(lm=lm)
    opt = MIPROv2(metric=exact, auto=None, num_candidates=4, max_bootstrapped_demos=0, max_labeled_demos=0,
                  num_threads=2)
    best = opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 20), valset=data(20, 32),
                       num_trials=4, minibatch=False)
    state = opt.state_dict()
    assert state["instruction_candidates"]["0"] == [START, "Answer each question carefully."]
    assert state["proposals"] == {"tried": 3, "accepted": 1, "rejected": {"a label name": 1, "empty": 1}}
    assert state["instruction_improved"] is True and "carefully" in best.signature.instructions


def test_gepa_screens_reflections_before_running_the_child(caplog):
    task = RuleLM()
    dspy.configure(lm=task)
    weak = DummyLM({"": {"new_instruction": "APPLE"}})  # a label name for every reflection
    opt = GEPA(feedback_metric, max_metric_calls=40, reflection_lm=weak, track_stats=True, num_threads=2)
    with caplog.at_level("INFO"):
        out = opt.compile(dspy.Predict("question -> answer"), trainset=examples(0, 12), valset=examples(100, 8))
    events = [e for e in out.detailed_results.iterations if e["event"] not in ("seed", "stop")]
    assert events and all(e["event"] == "screened" and "child_minibatch_scores" not in e for e in events)
    state = opt.state_dict()
    assert state["proposals"]["accepted"] == 0 and state["proposals"]["rejected"] == {"a label name": len(events)}
    # each screened iteration ran only the parent on the minibatch (3 calls), never the child
    assert state["total_metric_calls"] == 8 + 3 * len(events)
    assert state["instruction_improved"] is False
    assert any(r.levelname == "WARNING" and "no instruction that beats the start" in r.getMessage()
               for r in caplog.records)


def test_simba_drops_rules_that_are_label_names(caplog):
    task = RuleLM(lucky=True)
    dspy.configure(lm=task)
    weak = DummyLM({"": {"analysis": "x", "rules": {"self": "APPLE"}}})
    opt = SIMBA(metric=lambda g, p, t=None: float(p.answer == g.answer), bsize=4, num_candidates=2, max_steps=2,
                max_demos=0, prompt_model=weak, num_threads=1)
    with caplog.at_level("INFO"):
        out = opt.compile(dspy.Predict("question -> answer"), trainset=examples(0, 8), seed=0)
    state = opt.search_state
    assert state["proposals"]["tried"] >= 1 and state["proposals"]["accepted"] == 0
    assert "RULE" not in out.instruction.value and state["instruction_improved"] is False
    assert all(not log["candidates"] for log in state["trial_logs"].values())  # no candidate built, none scored
    assert any(r.levelname == "WARNING" and "SIMBA: no rule" in r.getMessage() for r in caplog.records)


# --- minibatch first ---------------------------------------------------------------------------------------------

def test_copro_minibatch_first_saves_full_evaluations():
    proposals = ["Answer every question badly, version one.", "Answer each question carefully.",
                 "Answer every question badly, version two.", "Answer every question badly, version three."]
    trainset = data(10, 30)

    def run(minibatch_size):
        lm = TaskLM(proposals)
        dspy.configure(lm=lm)
        opt = COPRO(metric=exact, breadth=5, depth=1, minibatch_size=minibatch_size)
        best = opt.compile(dspy.Predict("question -> answer"), trainset=trainset)
        return best, opt.state_dict(), lm.task_calls

    best, state, calls = run(4)
    full_best, full_state, full_calls = run(len(trainset))  # the minibatch is the whole set: nothing to save
    assert best.signature.instructions == full_best.signature.instructions == "Answer each question carefully."
    assert state["full_evaluations_saved"] == 3 and full_state["full_evaluations_saved"] == 0
    # start (20) + the good candidate (4 + 16) + three bad ones stopped after 4 each
    assert calls == 20 + 20 + 3 * 4 and full_calls == 20 + 4 * 20
    stopped = [c for c in state["candidates"] if c["score"] is None]
    assert len(stopped) == 3 and all(c["minibatch_score"] == 0.0 for c in stopped)
    assert state["instruction_improved"] is True and state["start_score"] < state["best"]["score"] == 100.0


def test_minibatch_indices_are_seeded_and_sized():
    assert minibatch_indices(20, 4, 0) == minibatch_indices(20, 4, 0) and len(minibatch_indices(20, 4, 0)) == 4
    assert minibatch_indices(20, 4, 0) != minibatch_indices(20, 4, 1)
    assert len(minibatch_indices(20, 0.25, 0)) == 5
    assert minibatch_indices(8, 8, 0) == [] and minibatch_indices(8, 50, 0) == []
    with pytest.raises(Exception, match="minibatch_size"):
        COPRO(metric=exact, minibatch_size=0)


# --- says so and keeps the gains -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("proposals", "accepted"), [(["a12"], 0), (["Answer every question badly, please."], 3)])
def test_mipro_without_a_better_instruction_warns_and_keeps_the_demos(caplog, proposals, accepted):
    lm = TaskLM(proposals, demos_help=True)
    dspy.configure(lm=lm)
    opt = MIPROv2(metric=exact, auto=None, num_candidates=4, max_bootstrapped_demos=2, max_labeled_demos=2,
                  num_threads=2)
    with caplog.at_level("WARNING"):
        best = opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 20), valset=data(20, 32),
                           num_trials=8, minibatch=False)
    state = opt.state_dict()
    assert state["proposals"]["accepted"] == accepted and state["proposals"]["tried"] == 3
    assert state["instruction_improved"] is False
    assert best.signature.instructions == START
    assert best.demos and state["best"]["score"] == 100.0 > state["default_score"]  # the demo gain is kept
    assert any("no instruction that beats the start instruction" in r.getMessage() for r in caplog.records)


def test_copro_returns_the_start_program_when_proposals_pass_but_do_not_help(caplog):
    lm = TaskLM(["Answer every question badly, please.", "Answer the question badly, thanks."])
    dspy.configure(lm=lm)
    student = dspy.Predict("question -> answer")
    opt = COPRO(metric=exact, breadth=3, depth=2)
    with caplog.at_level("WARNING"):
        best = opt.compile(student, trainset=data(10, 22))
    assert best.signature.instructions == START and opt.state_dict()["instruction_improved"] is False
    assert opt.state_dict()["proposals"]["accepted"] > 0
    assert any("COPRO: the prompt model proposed no instruction" in r.getMessage() for r in caplog.records)


# --- a stronger prompt model writes proposals and nothing else -----------------------------------------------------

def test_copro_prompt_model_only_writes_proposals():
    task, strong = TaskLM(["unused"]), ProposerOnly()
    dspy.configure(lm=task)
    best = COPRO(metric=exact, prompt_model=strong, breadth=3, depth=2).compile(
        dspy.Predict("question -> answer"), trainset=data(10, 22))
    assert task.proposal_calls == 0 and task.task_calls > 0
    assert len(strong.produced) == 2 + 3 and all("`proposed_instruction`" in p for p in strong.produced)
    assert best.signature.instructions == strong.instruction


def test_mipro_prompt_model_only_writes_proposals():
    task, strong = TaskLM(["unused"]), ProposerOnly()
    dspy.configure(lm=task)
    opt = MIPROv2(metric=exact, prompt_model=strong, auto=None, num_candidates=3, max_bootstrapped_demos=0,
                  max_labeled_demos=0)
    best = opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 20), valset=data(20, 30),
                       num_trials=3, minibatch=False)
    assert task.proposal_calls == 0 and task.task_calls > 0 and strong.produced  # ProposerOnly refuses task work
    assert best.signature.instructions == strong.instruction and opt.state_dict()["instruction_improved"] is True


def test_gepa_and_simba_use_the_stronger_model_only_for_proposals():
    task, strong = RuleLM(), RuleLM()
    dspy.configure(lm=task)
    out = GEPA(feedback_metric, max_metric_calls=80, reflection_lm=strong, num_threads=2).compile(
        dspy.Predict("question -> answer"), trainset=examples(0, 12), valset=examples(100, 8))
    assert strong.prompts and all("<cases_with_feedback>" in p for p in strong.prompts)
    assert not any("<cases_with_feedback>" in p for p in task.prompts)
    assert "RULE:" in out.instruction.value

    task, strong = RuleLM(lucky=True), RuleLM()
    dspy.configure(lm=task)
    SIMBA(metric=lambda g, p, t=None: float(p.answer == g.answer), bsize=4, num_candidates=3, max_steps=2,
          max_demos=0, prompt_model=strong, num_threads=1).compile(dspy.Predict("question -> answer"),
                                                                    trainset=examples(0, 8), seed=0)
    assert strong.prompts and all("<better_run>" in p for p in strong.prompts)
    assert not any("<better_run>" in p for p in task.prompts)


# --- meta-prompts are class-based signatures, overridable per optimizer ---------------------------------------------

def test_meta_prompts_are_classes_and_can_be_overridden():
    class Terse(prompts.ProposeInstruction):
        """Write a terse instruction, seven words at most, for the task below."""

    lm = TaskLM(["Answer each question carefully."])
    seen: list[str] = []
    original = lm._next_answer

    def spy(messages):
        seen.append(str(messages[0]["content"]))
        return original(messages)

    lm._next_answer = spy
    dspy.configure(lm=lm)
    opt = COPRO(metric=exact, breadth=2, depth=1, proposal_signature=Terse)
    assert opt.proposal_signature is Terse and COPRO.attempts_signature is prompts.ProposeFromAttempts
    opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 16))
    assert any("seven words at most" in s for s in seen)

    class Missing(dspy.Signature):
        """No fields of the default."""

        text: str = dspy.InputField()
        out: str = dspy.OutputField()

    for make in (lambda: COPRO(metric=exact, attempts_signature=Missing),
                 lambda: GEPA(feedback_metric, max_metric_calls=10, reflection_signature=Missing),
                 lambda: SIMBA(metric=exact, rule_signature=Missing),
                 lambda: MIPROv2(metric=exact, proposal_signature=Missing)):
        with pytest.raises(ConfigurationError, match="lacks the field"):
            make()
    # the same classes on every call: nothing is rebuilt per proposal
    assert GEPA.reflection_signature is prompts.ReflectOnInstruction
    assert SIMBA.rule_signature is prompts.ContrastTrajectories
    assert set(CATS)
