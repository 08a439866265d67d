"""The recorded graph: provenance instead of guessed edges, the generic backward walk, torch's contracts,
explicit reduction in TGD, overridable prompts, and one backward for text + LoRA (scripted LMs)."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
import zlib
from typing import Any

import pydantic
import pytest

import textgrad_like as dspy
from textgrad_like import autograd, nn, prompts
from textgrad_like.autograd import MetricLoss
from textgrad_like.errors import ConfigurationError, GraphFreedError
from textgrad_like.nn.graph import FunctionNode
from textgrad_like.nn.traced import TracedStr, grad_fn
from textgrad_like.optim import TextualGradientDescent
from textgrad_like.utils import DummyLM


def block(text: str, name: str) -> str | None:
    m = re.search(rf"<{name}>\n(.*?)\n</{name}>", text, re.S)
    return m.group(1) if m else None


class ScriptLM(DummyLM):
    """Answers with ``respond(system, user)``; an optional delay per call (fixed, or per prompt)."""

    def __init__(self, respond: Any, delay: Any = 0.0) -> None:
        super().__init__([])
        self.respond = respond
        self.delay = delay
        self.prompts: list[str] = []
        self._plock = threading.Lock()

    def _next_answer(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        system, user = str(messages[0]["content"]), str(messages[-1]["content"])
        with self._plock:
            self.prompts.append(user)
        delay = self.delay(user) if callable(self.delay) else self.delay
        if delay:
            time.sleep(delay)
        return self.respond(system, user)

    def backward_prompts(self) -> list[str]:
        return [p for p in self.prompts if block(p, "upstream_inputs") is not None]


def backward_echo(user: str) -> dict[str, Any]:
    """A backward LM: the instruction feedback quotes the feedback it got; every upstream input is told
    which step blamed it."""
    fb = (block(user, "feedback") or "").replace("\n", " ")
    upstream = re.findall(r"\[\d+\] (\w+)", block(user, "upstream_inputs") or "")
    return {"instruction_feedback": f"FIX: {fb}", "input_feedback": {n: f"{n} was bad ({fb[:60]})" for n in upstream}}


# --- 1. provenance, recorded ------------------------------------------------------------------------------
class CountThenUse(dspy.Module):
    def __init__(self) -> None:
        self.count = dspy.Predict("text -> n: int")
        self.use = dspy.Predict("n: int -> verdict")

    def forward(self, text: str) -> dspy.Prediction:
        return self.use(n=self.count(text=text).n)


def respond_count(system: str, user: str) -> dict[str, Any]:
    if block(user, "upstream_inputs") is not None:
        return backward_echo(user)
    if "blocks <n>" in user:
        return {"n": 3}  # an interned small int: only recorded provenance can link it
    return {"verdict": "three"}


def test_typed_pass_through_value_keeps_its_edge():
    lm = ScriptLM(respond_count)
    dspy.configure(lm=lm)
    prog = CountThenUse()
    pred = prog(text="a b c")
    count_node, use_node = pred.graph.nodes
    assert use_node.parents == [count_node] and use_node.input_sources == {"n": [count_node]}
    assert type(count_node.outputs["n"]).__name__ == "TracedInt" and count_node.outputs["n"] == 3
    MetricLoss(lambda ex, p, trace=None: 0.0)(pred, dspy.Example(text="a b c", verdict="3")).backward()
    assert prog.count.instruction.grad and prog.use.instruction.grad
    assert "n was bad" in prog.count.instruction.grad[0].context["downstream_feedback"][0]


class Branches(dspy.Module):
    def __init__(self) -> None:
        self.side = dspy.Predict("question -> short")
        self.ask = dspy.Predict("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        self.side(question=question)  # answers "yes"; its output is never used
        return self.ask(question="Is it yes or no?")


def test_coincidental_text_makes_no_edge_and_costs_no_lm_call():
    def respond(system, user):
        if block(user, "upstream_inputs") is not None:
            return backward_echo(user)
        return {"short": "yes"} if "blocks <short>" in user else {"answer": "no"}

    lm = ScriptLM(respond)
    dspy.configure(lm=lm)
    prog = Branches()
    pred = prog(question="q")
    side, ask = pred.graph.nodes
    assert ask.parents == [] and side.parents == []
    visited = MetricLoss(lambda ex, p, trace=None: 0.0)(pred, dspy.Example(answer="yes")).backward()
    assert [n.name for n in visited[0]] == ["ask"]
    assert len(lm.backward_prompts()) == 1
    assert prog.side.instruction.grad is None


def passages_for(query: str) -> list[str]:
    return [f"Passage about {query}: the capital is Paris.", f"Another passage on {query}."]


class RAG(dspy.Module):
    def __init__(self, search: Any) -> None:
        self.generate_query = dspy.Predict("question -> query")
        self.answer = dspy.Predict("context: list[str], question -> answer")
        self.search = search

    def forward(self, question: str) -> dspy.Prediction:
        query = self.generate_query(question=question).query
        return self.answer(context=self.search(query), question=question)


def respond_rag(system: str, user: str) -> dict[str, Any]:
    if block(user, "upstream_inputs") is not None:
        return backward_echo(user)
    if "blocks <query>" in user:
        return {"query": "French capital city"}
    return {"answer": "Lyon"}


def test_autograd_function_bridges_a_retriever_to_the_query_generator():
    lm = ScriptLM(respond_rag)
    dspy.configure(lm=lm)
    prog = RAG(autograd.function(passages_for))
    pred = prog(question="What is the capital of France?")
    query_node, answer_node = pred.graph.nodes[0], pred.graph.nodes[-1]
    bridge = answer_node.input_sources["context"][0]
    assert isinstance(bridge, FunctionNode) and bridge.parents == [query_node]
    assert grad_fn(answer_node.inputs["context"][0]) is bridge
    MetricLoss(dspy.evaluate.answer_exact_match)(pred, dspy.Example(question="q", answer="Paris")).backward()
    grads = prog.generate_query.instruction.grad
    assert grads and "context was bad" in grads[0].context["downstream_feedback"][0]


def test_missing_bridge_is_diagnosed_once_and_makes_no_edge(caplog):
    lm = ScriptLM(respond_rag)
    dspy.configure(lm=lm)
    prog = RAG(passages_for)  # a plain Python step: the chain is cut
    with caplog.at_level(logging.WARNING, logger="textgrad_like.nn.graph"):
        pred = prog(question="q")
        prog(question="q")
    assert pred.graph.nodes[-1].parents == []
    warnings = [r.getMessage() for r in caplog.records if "carries no provenance" in r.getMessage()]
    assert len(warnings) == 1
    assert "`generate_query` (question -> query)" in warnings[0] and "`answer`" in warnings[0]
    assert "@textgrad_like.autograd.function" in warnings[0]


def test_custom_function_backward_and_derived_text():
    class Shorten(autograd.Function):
        @staticmethod
        def forward(ctx, text):
            ctx.save_for_backward(text)
            return text[:5]

        @staticmethod
        def backward(ctx, feedback):
            return {"text": f"only '{ctx.saved_values[0][:5]}' was used; {feedback}"}

    class Prog(dspy.Module):
        def __init__(self):
            self.draft = dspy.Predict("question -> draft")
            self.final = dspy.Predict("short, question -> answer")

        def forward(self, question):
            draft = self.draft(question=question).draft
            return self.final(short=Shorten.apply(draft.strip()), question=question)

    def respond(system, user):
        if block(user, "upstream_inputs") is not None:
            return backward_echo(user)
        return {"draft": "  Paris is it  "} if "blocks <draft>" in user else {"answer": "Paris"}

    dspy.configure(lm=ScriptLM(respond))
    prog = Prog()
    pred = prog(question="q")
    final = pred.graph.nodes[-1]
    assert final.inputs["short"] == "Paris" and isinstance(final.inputs["short"], TracedStr)
    MetricLoss(lambda ex, p, trace=None: 0.5)(pred, dspy.Example(answer="Paris")).backward()
    fed = prog.draft.instruction.grad[0].context["downstream_feedback"][0]
    assert "only 'Paris' was used" in fed


def test_pydantic_list_and_dict_outputs_carry_provenance_and_bool_is_documented():
    class Facts(pydantic.BaseModel):
        city: str

    def respond(system, user):
        if "blocks <facts>" in user:
            return {"facts": {"city": "Paris"}, "names": ["a", "b"], "table": {"k": "v"}, "ok": True}
        return {"answer": "x"}

    dspy.configure(lm=ScriptLM(respond))
    step = dspy.Predict(dspy.Signature("question -> facts: Facts, names: list[str], table: dict[str, str], ok: bool"))
    with nn.record() as graph:
        out = step(question="q")
    node = graph.nodes[0]
    assert out.facts == Facts(city="Paris") and grad_fn(out.facts) is node
    assert grad_fn(out.names) is node and grad_fn(out.names[1]) is node and grad_fn(out.table["k"]) is node
    assert out.ok is True and grad_fn(out.ok) is None  # bool cannot carry provenance (documented limit)
    assert nn.detach(out.names) == ["a", "b"] and type(nn.detach(out.names)) is list


# --- 2. the walk: scratch per call, deterministic, one node once ----------------------------------------
class TwoStage(dspy.Module):
    def __init__(self) -> None:
        self.first = dspy.Predict("question -> draft")
        self.second = dspy.Predict("question, draft -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.second(question=question, draft=self.first(question=question).draft)


def respond_two(system: str, user: str) -> dict[str, Any]:
    if block(user, "upstream_inputs") is not None:
        return backward_echo(user)
    question = block(user, "question") or ""
    if "blocks <draft>" in user:
        return {"draft": f"draft for {question}"}
    return {"answer": f"answer to {question}"}


def test_two_losses_on_one_prediction_never_duplicate_upstream_feedback():
    f1 = lambda ex, p, trace=None: dspy.Prediction(score=0.0, feedback="F1: too long")  # noqa: E731
    f2 = lambda ex, p, trace=None: dspy.Prediction(score=0.5, feedback="F2: wrong unit")  # noqa: E731
    ex = dspy.Example(question="q", answer="a").with_inputs("question")
    for _ in range(20):
        lm = ScriptLM(respond_two, delay=0.02)
        dspy.configure(lm=lm, num_threads=8)
        prog = TwoStage()
        pred = prog(question="q")
        (MetricLoss(f1)(pred, ex) + MetricLoss(f2)(pred, ex)).backward()
        assert len(lm.backward_prompts()) == 2  # each node once, with both feedbacks
        second, first = prog.second.instruction.grad, prog.first.instruction.grad
        assert len(second) == 1 and len(first) == 1
        assert second[0].context["downstream_feedback"] == ["F1: too long", "F2: wrong unit"]
        upstream = first[0].context["downstream_feedback"]
        assert len(upstream) == 1 and upstream[0].count("F1: too long") == 1 and upstream[0].count("F2") == 1


def _batch_gradients(num_threads: int) -> tuple[list[str], list[str]]:
    # the delay depends on the prompt, so threads finish in a different order than they start
    lm = ScriptLM(respond_two, delay=lambda user: (zlib.crc32(user.encode()) % 5) * 0.004)
    dspy.configure(lm=lm, num_threads=num_threads)
    prog = TwoStage()
    batch = [dspy.Example(question=f"q{i}", answer="x").with_inputs("question") for i in range(6)]
    preds = prog.batch(batch, num_threads=num_threads, disable_progress_bar=True)
    MetricLoss(lambda ex, p, trace=None: dspy.Prediction(score=0.0, feedback=f"wrong for {ex.question}"))(
        preds, batch).backward(num_threads=num_threads)
    return ([g.feedback for g in prog.second.instruction.grad], [g.feedback for g in prog.first.instruction.grad])


def test_same_gradients_in_the_same_order_with_1_and_8_threads():
    one = _batch_gradients(1)
    eight = _batch_gradients(8)
    assert one == eight
    assert [re.search(r"q\d", f).group(0) for f in one[0]] == [f"q{i}" for i in range(6)]  # by example index
    assert len(one[1]) == 6


def test_backward_twice_raises_unless_retain_graph():
    dspy.configure(lm=ScriptLM(respond_two))
    prog = TwoStage()
    ex = dspy.Example(question="q", answer="a")
    pred = prog(question="q")
    loss = MetricLoss(dspy.evaluate.answer_exact_match)(pred, ex)
    loss.backward(retain_graph=True)
    loss.backward()
    assert len(prog.second.instruction.grad) == 2
    with pytest.raises(GraphFreedError, match="retain_graph=True"):
        loss.backward()
    other = MetricLoss(dspy.evaluate.answer_exact_match)(pred, ex)  # a second loss on the same freed graph
    with pytest.raises(GraphFreedError):
        other.backward()
    assert len(prog.second.instruction.grad) == 2  # the refused call spent nothing


# --- 3./4. the optimizer: validation, state, explicit reduction -------------------------------------------
def test_optimizer_hyperparameters_are_validated_and_state_is_keyed_by_parameter():
    v = nn.Variable("text")
    opt = TextualGradientDescent([v], constraints="be brief")
    assert opt.param_groups[0]["constraints"] == ["be brief"]
    for kwargs, name in [({"momentum": -3}, "momentum"), ({"momentum": 1.5}, "momentum"),
                         ({"reduce": "lowest", "max_feedback_items": 0}, "max_feedback_items"),
                         ({"max_feedback_items": 4}, "max_feedback_items"), ({"reduce": "first"}, "reduce"),
                         ({"constraints": [1, 2]}, "constraints")]:
        with pytest.raises(ValueError, match=name):
            TextualGradientDescent([v], **kwargs)
    with pytest.raises(ValueError, match="momentum"):
        TextualGradientDescent([{"params": [v], "momentum": -1}])
    assert opt.state[v] == {} and v in opt.state
    opt.state[v]["x"] = 1
    assert opt.state_dict()["state"] == {0: {"x": 1}}
    v.accumulate(nn.Gradient("fb"))
    opt.zero_grad(set_to_none=False)
    assert v.grad == []
    opt.zero_grad()
    assert v.grad is None


def _step_lm(calls: list[str]) -> ScriptLM:
    def respond(system, user):
        calls.append(user)
        if block(user, "feedback_items") is not None:
            return {"summary": "MERGED: be shorter"}
        return {"improved_value": "new value"}

    return ScriptLM(respond)


def _ten_items(v: nn.Variable) -> None:
    for i in range(10):
        v.accumulate(nn.Gradient(f"item{i}", {"node": "n"}, score=[0.9, 0.1, 0.5, 0.1, 0.8, 0.0, 1.0, 0.7, 0.3, 0.6][i]))


def test_reduction_is_explicit_logged_and_reproducible(caplog):
    calls: list[str] = []
    v = nn.Variable("old")
    _ten_items(v)
    TextualGradientDescent([v], lm=_step_lm(calls)).step()
    assert all(f"item{i}" in calls[-1] for i in range(10))  # reduce="all": every item reaches the step

    for _ in range(2):  # the same items kept every time
        v = nn.Variable("old")
        _ten_items(v)
        opt = TextualGradientDescent([v], lm=_step_lm(calls), reduce="lowest", max_feedback_items=3)
        with caplog.at_level(logging.INFO, logger="textgrad_like.optim.tgd"):
            opt.step()
        assert opt.state[v]["last_reduction"]["kept"] == [1, 3, 5]
        assert [f"item{i}" in calls[-1] for i in (1, 3, 5, 0)] == [True, True, True, False]
    assert "reduce='lowest' keeps the 3 lowest-scoring" in caplog.text

    v = nn.Variable("old")
    _ten_items(v)
    before = len(calls)
    opt = TextualGradientDescent([v], lm=_step_lm(calls), reduce="summarize")
    opt.step()
    assert len(calls) - before == 2  # one merge, one step
    assert "MERGED: be shorter" in calls[-1] and "item3" not in calls[-1]
    assert v.value == "new value" and opt.state[v]["last_reduction"]["kept"] == "summary"


# --- 6. prompts as signatures, overridable ------------------------------------------------------------------
def test_prompts_are_signature_classes_and_can_be_overridden():
    class TerseStep(prompts.TextualStep):
        """Rewrite the text. TERSE-MARKER."""

    calls: list[str] = []

    def respond(system, user):
        calls.append(system)
        return {"improved_value": "v2"}

    v = nn.Variable("v1")
    v.accumulate(nn.Gradient("fb"))
    TextualGradientDescent([v], lm=ScriptLM(respond), step_signature=TerseStep).step()
    assert "TERSE-MARKER" in calls[-1] and v.value == "v2"
    with pytest.raises(ConfigurationError, match="improved_value"):
        TextualGradientDescent([v], step_signature=dspy.Signature("a -> b"))

    class LoudBackward(prompts.TextualBackward):
        """LOUD-BACKWARD-MARKER. Critique the step."""

    def respond_bw(system, user):
        calls.append(system)
        return backward_echo(user) if block(user, "upstream_inputs") is not None else respond_two(system, user)

    dspy.configure(lm=ScriptLM(respond_bw))
    prog = TwoStage()
    pred = prog(question="q")
    MetricLoss(dspy.evaluate.answer_exact_match, backward_signature=LoudBackward)(pred, dspy.Example(answer="a")) \
        .backward()
    assert any("LOUD-BACKWARD-MARKER" in c for c in calls)
    assert nn.MetricLoss is MetricLoss and nn.SFTLoss is autograd.SFTLoss


# --- 5. LoRA inside the same autograd ----------------------------------------------------------------------
sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from test_constrained import build_tiny_model_dir  # the shared tiny-model builder

    from textgrad_like.lm import LM

    path = build_tiny_model_dir(str(tmp_path_factory.mktemp("tiny-mixed")), max_positions=4096)
    return LM(f"local/{path}", temperature=0.0, max_tokens=6)


class Classify(dspy.Module):
    def __init__(self, forward_lm: Any) -> None:
        self.predict = dspy.Predict("text -> label")
        self.forward_lm = forward_lm

    def forward(self, text: str) -> dspy.Prediction:
        return self.predict(text=text, lm=self.forward_lm)  # scripted forward; the LoRA trains on the records


@pytest.mark.parametrize("text_first", [True, False])
def test_one_backward_feeds_text_and_lora(tiny_lm, text_first):
    import torch

    from textgrad_like.autograd import SFTLoss
    from textgrad_like.nn.lora import LoRA

    def respond(system, user):
        if block(user, "upstream_inputs") is not None:
            return backward_echo(user)
        if block(user, "improved_value") is not None or "improved_value" in system:
            return {"improved_value": "Name the intent exactly."}
        return {"label": "wrong_label"}

    scripted = ScriptLM(respond)
    dspy.configure(backward_lm=scripted)
    program = Classify(scripted)
    LoRA(tiny_lm, r=4, alpha=8, seed=3).attach(program.predict)
    text_opt = TextualGradientDescent(program.parameters(), lm=scripted)  # LoRA is left to torch, no error
    assert all(p.kind != "lora" for p in text_opt.parameters())
    torch_opt = torch.optim.AdamW(program.parameters(kind="lora"), lr=1e-2)
    ex = dspy.Example(text="I lost my card", label="lost_card").with_inputs("text")
    pred = program(**ex.inputs())
    text_loss = MetricLoss(lambda e, p, trace=None: float(e.label == p.label))(pred, ex)
    sft = SFTLoss()([pred], [ex])
    assert "lost_card" in sft.examples[0].messages[-1]["content"]  # trained towards the gold output
    assert "wrong_label" not in sft.examples[0].messages[-1]["content"]
    loss = text_loss + sft if text_first else sft + text_loss
    assert isinstance(loss, autograd.Loss) and loss.value == pytest.approx(1.0 + sft.value)
    loss.backward()
    assert program.predict.instruction.grad and "FIX:" in program.predict.instruction.grad[0].feedback
    grads = [t.grad for t in program.parameters(kind="lora")]
    assert grads and all(g is not None for g in grads) and any(float(g.abs().sum()) > 0 for g in grads)
    before = [t.detach().clone() for t in program.parameters(kind="lora")]
    text_opt.step()
    torch_opt.step()
    assert program.predict.instruction.value == "Name the intent exactly."
    assert any(not torch.equal(b, t) for b, t in zip(before, program.parameters(kind="lora"), strict=True))
    text_opt.zero_grad()
    program.zero_grad()
    assert program.predict.instruction.grad is None


def test_llm_call_on_a_predictor_output_is_an_edge_and_feedback_reaches_the_predictor():
    from textgrad_like.autograd import TextLoss
    from textgrad_like.nn.functional import llm_call

    def respond(system, user):
        if block(user, "upstream_inputs") is not None:
            return backward_echo(user)
        return {"draft": "a draft about cats"}

    lm = ScriptLM(respond)
    dspy.configure(lm=lm)
    step = dspy.Predict("question -> draft")
    draft = step(question="q").draft
    critic = DummyLM(["polished text", "Too vague. Score: 2/10",
                      {"instruction_feedback": "be concrete", "input_feedback": {"input": "the draft is vague"}}])
    polished = llm_call(draft, system_prompt="Polish the text.", lm=critic)
    assert polished.grad_fn.parents == [grad_fn(draft)]
    TextLoss("Evaluate.", lm=critic)(polished).backward(backward_lm=critic)
    # the critic's backward of llm_call told the predictor its draft was vague; the predictor's own backward ran
    assert step.instruction.grad and "the draft is vague" in step.instruction.grad[0].context["downstream_feedback"][0]


def test_a_proposal_that_echoes_the_template_is_refused(caplog):
    v = nn.Variable("keep me")
    v.accumulate(nn.Gradient("fb"))
    opt = TextualGradientDescent([v], lm=ScriptLM(lambda system, user: {"improved_value": "{{improved_value}}"}))
    with caplog.at_level(logging.WARNING):
        opt.step()
    assert v.value == "keep me" and "echoes the field name" in caplog.text
