"""The feedback bridge in both directions, and the scripted LMs the GEPA / SIMBA tests share (content-based, so thread order never matters)."""

from __future__ import annotations

import re
import threading
from typing import Any

from textgrad_like.lm.base import LMResponse
from textgrad_like.utils.dummies import DummyLM

CATS = {"fruit": "APPLE", "metal": "IRON", "color": "RED", "animal": "CAT"}
OUT_OF = {"question": "answer", "q1": "a1", "q2": "a2"}


class Crash(BaseException):
    """Stands for a kill: not an Exception, so nothing in the library catches it."""


def block(text: str, name: str) -> str | None:
    m = re.search(rf"<{name}>\n(.*?)\n</{name}>", text, re.S)
    return m.group(1) if m else None


class RuleLM(DummyLM):
    """A task model that answers category ``c`` right only when its instruction holds ``RULE:c`` (or a demo
    of that category is in the prompt, or the sample is "lucky": rollout_id divisible by 3); a reflection
    model that adds the first missing rule named in the feedback; a SIMBA rule writer; a backward LM."""

    def __init__(self, crash_after: int | None = None, lucky: bool = False) -> None:
        super().__init__([])
        self.crash_after = crash_after
        self.lucky = lucky
        self.prompts: list[str] = []
        self._local = threading.local()
        self._plock = threading.Lock()

    def _generate(self, messages: list[dict[str, Any]], **kwargs: Any) -> LMResponse:
        self._local.kwargs = kwargs
        return super()._generate(messages, **kwargs)

    def _next_answer(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        system = str(messages[0]["content"])
        user = str(messages[-1]["content"])
        with self._plock:
            self.prompts.append(system + "\n" + user)
            n = len(self.prompts)
        if self.crash_after is not None and n > self.crash_after:
            raise Crash("scripted kill")
        cases = block(user, "cases_with_feedback")
        if cases is not None:
            current = block(user, "current_instruction") or ""
            for cat in re.findall(r"RULE:(\w+)", cases):
                if f"RULE:{cat}" not in current:
                    return {"new_instruction": f"{current} RULE:{cat}"}
            return {"new_instruction": current}
        if block(user, "better_run") is not None:
            cat = (block(user, "task_input") or "").split(":", 1)[-1].split()[0]
            names = re.findall(r"\[\d+\] (\S+)", block(user, "step_names") or "") or ["self"]
            return {"analysis": "the better run knew the category", "rules": {names[0]: f"RULE:{cat}"}}
        if block(user, "upstream_inputs") is not None:  # the backward pass of loss.backward()
            fb = block(user, "feedback") or ""
            return {"instruction_feedback": f"BACKWARD says: {fb.strip('- ')}", "input_feedback": {}}
        if block(user, "improved_value") is not None or "improved_value" in system:
            fb = block(user, "feedback") or ""
            current = block(user, "current_value") or ""
            rules = [r for r in dict.fromkeys(re.findall(r"RULE:\w+", fb)) if r not in current]
            return {"improved_value": " ".join([current, *rules])}
        task = system.split("Your task:")[-1]
        demos = " ".join(str(m["content"]) for m in messages[1:-1])
        rollout = (getattr(self._local, "kwargs", None) or {}).get("rollout_id")
        out = {}
        for field, answer in OUT_OF.items():
            q = block(user, field)
            if q is None:
                continue
            cat = q.split()[0]
            knows = f"RULE:{cat}" in task or f"\n{cat} " in demos
            lucky = self.lucky and isinstance(rollout, int) and rollout % 3 == 0
            out[answer] = CATS[cat] if (knows or lucky) else "unknown"
        return out


def examples(start: int, n: int, field: str = "question") -> list[Any]:
    import textgrad_like as dspy

    cats = list(CATS)
    return [dspy.Example(**{field: f"{cats[i % 4]} {i}", OUT_OF[field]: CATS[cats[i % 4]]}).with_inputs(field)
            for i in range(start, start + n)]


def feedback_metric(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> Any:
    import textgrad_like as dspy

    ok = pred.answer == gold.answer
    cat = gold.question.split()[0]
    return dspy.Prediction(score=float(ok), feedback="Correct." if ok else
                           f"Wrong: {cat} questions need RULE:{cat} in the instruction.")


# --- tests of the bridge -------------------------------------------------------------------------------------
import pytest  # noqa: E402

import textgrad_like as dspy  # noqa: E402
from textgrad_like.nn.parameter import Gradient  # noqa: E402
from textgrad_like.optim.feedback import (  # noqa: E402
    call_metric,
    format_reflective_records,
    gradients_from_metric,
    read_metric,
    reflective_dataset_from_gradients,
)
from textgrad_like.optim.tgd import TextualGradientDescent  # noqa: E402


class TwoStep(dspy.Module):
    def __init__(self) -> None:
        self.first = dspy.Predict("q1 -> a1")
        self.second = dspy.Predict("q2 -> a2")

    def forward(self, q1: str, q2: str) -> Any:
        a = self.first(q1=q1)
        b = self.second(q2=q2)
        return dspy.Prediction(a1=a.a1, a2=b.a2)


def two_step_examples(n: int) -> list[Any]:
    cats = list(CATS)
    return [dspy.Example(q1=f"{cats[i % 2]} {i}", q2=f"{cats[2 + i % 2]} {i}", a1=CATS[cats[i % 2]],
                         a2=CATS[cats[2 + i % 2]]).with_inputs("q1", "q2") for i in range(n)]


def two_step_metric(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> Any:
    ok1, ok2 = pred.a1 == gold.a1, pred.a2 == gold.a2
    score = (ok1 + ok2) / 2
    if pred_name is None:
        return score
    field, ok, q = ("q1", ok1, gold.q1) if pred_name == "first" else ("q2", ok2, gold.q2)
    cat = q.split()[0]
    assert pred_trace and pred_trace[0][1][field] == q  # the predictor's own sub-trace
    return dspy.Prediction(score=score, feedback="fine" if ok else f"{pred_name}: needs RULE:{cat}")


def test_call_metric_adapts_to_the_metric_signature() -> None:
    seen = []

    def five(g, p, trace=None, pred_name=None, pred_trace=None):
        seen.append(pred_name)
        return 1

    assert call_metric(five, 1, 2, None, "x", []) == 1 and seen == ["x"]
    assert call_metric(lambda g, p: 0.5, 1, 2, None, "x", []) == 0.5
    assert call_metric(lambda g, p, trace=None: True, 1, 2) is True
    assert read_metric(dspy.Prediction(score=0.25, feedback="meh")) == (0.25, "meh")
    assert read_metric(True) == (1.0, None)
    assert read_metric((0.5, "half")) == (0.5, "half")


def test_metric_feedback_becomes_gradients_that_tgd_consumes() -> None:
    lm = RuleLM()
    dspy.configure(lm=lm)
    program = TwoStep()
    rollouts = gradients_from_metric(program, two_step_examples(4), two_step_metric, num_threads=2)
    assert [r.score for r in rollouts] == [0.0] * 4
    g1, g2 = program.first.instruction.grad, program.second.instruction.grad
    assert len(g1) == 4 and len(g2) == 4
    assert all(isinstance(g, Gradient) and g.context["source"] == "metric" for g in g1 + g2)
    assert {g.feedback for g in g1} == {"first: needs RULE:fruit", "first: needs RULE:metal"}
    assert {g.feedback for g in g2} == {"second: needs RULE:color", "second: needs RULE:animal"}
    assert {g.context["inputs"]["q1"] for g in g1} == {e.q1 for e in two_step_examples(4)}
    # TGD reads the same gradients and rewrites both instructions from them
    opt = TextualGradientDescent(program.parameters(kind="instruction"), lm=lm)
    opt.step()
    assert "RULE:fruit" in program.first.instruction.value and "RULE:metal" in program.first.instruction.value
    assert "RULE:color" in program.second.instruction.value and "RULE:animal" in program.second.instruction.value
    after = gradients_from_metric(program, two_step_examples(4), two_step_metric)
    assert [r.score for r in after] == [1.0] * 4


def test_predictor_level_feedback_for_only_some_predictors() -> None:
    dspy.configure(lm=RuleLM())
    program = TwoStep()
    gradients_from_metric(program, two_step_examples(2), two_step_metric, predictor_names=["second"])
    assert program.first.instruction.grad is None
    assert len(program.second.instruction.grad) == 2


def test_reflective_dataset_from_backward_gradients() -> None:
    lm = RuleLM()
    dspy.configure(lm=lm, backward_lm=lm)
    program = dspy.Predict("question -> answer")
    exs = examples(0, 3)
    preds = [program(**ex.inputs()) for ex in exs]  # training mode: each prediction carries its graph
    loss = dspy.autograd.FeedbackLoss(feedback_metric)(preds, exs)
    assert loss.score == 0.0
    loss.backward()
    dataset = reflective_dataset_from_gradients(program)
    assert list(dataset) == ["self"]
    records = dataset["self"]
    assert len(records) == 3
    assert all(r["Feedback"].startswith("BACKWARD says:") and "RULE:" in r["Feedback"] for r in records)
    assert all("question:" in r["Inputs"] and "answer: unknown" in r["Generated Outputs"] for r in records)
    assert [r["Score"] for r in records] == [0.0, 0.0, 0.0]
    text = format_reflective_records(records)
    assert "### Case 1" in text and "RULE:fruit" in text


def test_reflective_dataset_from_metric_gradients_matches_gepa_format() -> None:
    dspy.configure(lm=RuleLM())
    program = TwoStep()
    gradients_from_metric(program, two_step_examples(2), two_step_metric)
    dataset = reflective_dataset_from_gradients(program, ["first"], max_records=1)
    assert list(dataset) == ["first"]
    (rec,) = dataset["first"]
    assert set(rec) == {"Inputs", "Generated Outputs", "Feedback", "Score"}
    assert rec["Inputs"] == {"q1": "fruit 0"} and rec["Generated Outputs"]["a1"] == "unknown"


def test_failed_rollouts_give_format_feedback_when_asked() -> None:
    dspy.configure(lm=dspy.utils.DummyLM([{"wrong_field": "x"}] * 4))
    program = dspy.Predict("question -> answer")
    rollouts = gradients_from_metric(program, examples(0, 2), feedback_metric, add_format_failure_as_feedback=True,
                                     failure_score=0.0)
    assert all(r.failed and r.score == 0.0 for r in rollouts)
    grads = program.instruction.grad
    assert len(grads) == 2 and all(g.context["source"] == "format_failure" for g in grads)


def test_metric_errors_are_typed() -> None:
    from textgrad_like.errors import MetricError

    def broken(g, p, trace=None):
        raise KeyError("nope")

    with pytest.raises(MetricError):
        call_metric(broken, 1, 2)
