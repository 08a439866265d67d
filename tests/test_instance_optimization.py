"""Instance optimization: free-text Variables, functional LM calls, TextLoss / FunctionLoss /
MultiFieldLoss, backward through them, and TGD steps on the Variables (scripted LMs)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest

from textgrad_like.autograd.text_loss import FunctionLoss, MultiFieldLoss, TextLoss, parse_score
from textgrad_like.errors import BackwardError, ConfigurationError, InputError
from textgrad_like.nn.functional import fill_template, formatted_llm_call, llm_call
from textgrad_like.nn.graph import no_grad, record
from textgrad_like.nn.parameter import Variable
from textgrad_like.optim.tgd import TextualGradientDescent
from textgrad_like.utils.dummies import DummyLM

ROOT = Path(__file__).resolve().parents[1]


def _bw(input_fb: dict[str, str], instruction_fb: str = "make the step more specific") -> dict:
    return {"instruction_feedback": instruction_fb, "input_feedback": input_fb}


def _user_messages(lm: DummyLM) -> list[str]:
    return [str(h["messages"][-1]["content"]) for h in lm.history]


# --- gradients through a chain of LM calls ------------------------------------------------------------

def test_gradient_reaches_variable_through_two_llm_calls():
    lm = DummyLM([
        "an expanded draft",                       # llm_call 1
        "a short summary",                         # llm_call 2
        "The summary misses the number. Score: 3/10",  # TextLoss
        _bw({"input": "the expansion never states the number"}),  # backward of llm_call 2
        _bw({"input": "the draft should give the number 42"}),    # backward of llm_call 1
    ])
    draft = Variable("a draft", role_description="draft to expand")
    expanded = llm_call(draft, system_prompt="Expand the text.", lm=lm, role_description="expanded text")
    summary = llm_call(expanded, system_prompt="Summarize the text.", lm=lm)
    assert summary.value == "a short summary"
    assert summary.requires_grad and summary.graph is expanded.graph
    loss = TextLoss("Evaluate the summary.", lm=lm)(summary)
    assert loss.score == pytest.approx(0.3)
    calls_before = lm.calls
    loss.backward(backward_lm=lm)
    assert lm.calls - calls_before == 2  # one per llm_call node; the evaluation node passes its critique on
    assert draft.grad and "42" in draft.grad[0].feedback
    assert expanded.grad and "never states the number" in expanded.grad[0].feedback  # middle output
    assert summary.grad and "misses the number" in summary.grad[0].feedback
    # the middle node's output feedback was chained from the last node's input feedback (the scratch of the
    # walk lives in the backward call; the gradient's context keeps what reached the node)
    assert not hasattr(expanded.graph.nodes[0], "output_feedback")
    assert "never states the number" in str(draft.grad[0].context["downstream_feedback"])


def test_frozen_variables_receive_no_gradient():
    lm = DummyLM([
        "answer text",
        "Wrong answer.",
        _bw({"question": "unclear", "draft": "too vague"}),
    ])
    question = Variable("What is 6*7?", role_description="question", requires_grad=False)
    draft = Variable("about 40", role_description="draft answer", requires_grad=False)
    system = Variable("Answer precisely.", role_description="system prompt", requires_grad=True)
    out = formatted_llm_call("Q: {question}\nDraft: {draft}\nFinal:", {"question": question, "draft": draft},
                             system_prompt=system, lm=lm)
    assert out.requires_grad  # the system prompt is trainable
    TextLoss("Check the answer.", lm=lm)(out).backward(backward_lm=lm)
    assert question.grad is None and draft.grad is None
    assert system.grad and system.grad[0].feedback == "make the step more specific"


def test_nothing_trainable_records_nothing_and_backward_is_free():
    lm = DummyLM(["reply", "Looks fine."])
    frozen = Variable("text", requires_grad=False)
    out = llm_call(frozen, lm=lm)
    assert not out.requires_grad and getattr(out, "graph", None) is None
    loss = TextLoss("Evaluate.", lm=lm)(out)
    calls = lm.calls
    loss.backward(backward_lm=lm)
    assert lm.calls == calls and out.grad is None and frozen.grad is None


def test_no_grad_disables_recording():
    lm = DummyLM(["reply"])
    var = Variable("text")
    with no_grad():
        out = llm_call(var, lm=lm)
    assert not out.requires_grad and getattr(out, "graph", None) is None


def test_leaf_variable_loss_backward_without_lm_calls():
    lm = DummyLM(["The answer forgets the units. Score: 0.5"])
    answer = Variable("12", role_description="answer with units")
    loss = TextLoss("Evaluate the answer.", lm=lm)(answer)
    assert loss.items[0].graph is not None and len(loss.items[0].graph) == 1
    assert loss.items[0].prediction is answer
    loss.backward(backward_lm=lm)
    assert lm.calls == 1
    assert answer.grad[0].feedback == "The answer forgets the units. Score: 0.5"
    assert answer.grad[0].score == pytest.approx(0.5)
    # the LM saw the evaluation instruction as system prompt and the value as the user message
    messages = lm.history[0]["messages"]
    assert messages[0] == {"role": "system", "content": "Evaluate the answer."}
    assert messages[-1]["content"] == "12"


def test_repeated_losses_do_not_pile_up_evaluation_nodes():
    lm = DummyLM(["draft v1", "bad", _bw({"input": "fb1"}), "still bad", _bw({"input": "fb2"}),
                  "later reply"])
    seed = Variable("seed")
    answer = llm_call(seed, lm=lm)
    loss_fn = TextLoss("Evaluate.", lm=lm)
    loss_fn(answer).backward(backward_lm=lm, retain_graph=True)  # the producer is walked again below
    second = loss_fn(answer)
    assert [n.name for n in second.items[0].graph.nodes][-1] == "TextLoss"
    assert len(second.items[0].graph) == 2  # the producer + this evaluation only
    second.backward(backward_lm=lm)
    assert [g.feedback for g in seed.grad] == ["fb1", "fb2"]
    llm_call(answer, lm=lm)  # a later call on the same graph is not part of an earlier loss's graph
    assert len(second.items[0].graph) == 2


def test_formatted_llm_call_gives_feedback_per_input_and_merges_graphs():
    lm = DummyLM([
        "first branch", "second branch", "combined",
        "Combined text is off.",
        _bw({"a": "branch a is too long", "b": ""}),
        _bw({"input": "x should be shorter"}),
    ])
    x = Variable("x", role_description="text x")
    y = Variable("y", role_description="text y")
    a = llm_call(x, lm=lm)
    b = llm_call(y, lm=lm)
    assert a.graph is not b.graph
    c = formatted_llm_call("A={a} B={b} code: {{not a field}} {'k': 1}", {"a": a, "b": b}, lm=lm)
    assert _user_messages(lm)[-1] == "A=first branch B=second branch code: {{not a field}} {'k': 1}"
    assert c.graph is a.graph and len(c.graph) == 3
    TextLoss("Evaluate.", lm=lm)(c).backward(backward_lm=lm)
    assert a.grad and a.grad[0].feedback == "branch a is too long"
    assert b.grad is None and y.grad is None  # empty feedback: nothing to send
    assert x.grad and x.grad[0].feedback == "x should be shorter"


def test_llm_call_inside_record_uses_the_active_graph():
    lm = DummyLM(["r1"])
    with record() as graph:
        out = llm_call("plain text", lm=lm)
    assert out.graph is graph and len(graph) == 1 and not out.requires_grad


def test_template_errors():
    with pytest.raises(InputError, match="missing|names"):
        fill_template("{a} {b}", {"a": "1"})
    with pytest.raises(InputError, match="do not appear"):
        fill_template("{a}", {"a": "1", "c": "2"})
    with pytest.raises(InputError):
        llm_call(42, lm=DummyLM([]))  # type: ignore[arg-type]


def test_llm_call_without_lm_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="configure"):
        llm_call(Variable("x"))


# --- the optimizer on Variables ------------------------------------------------------------------

def test_tgd_step_rewrites_the_variable_and_zero_grad_clears():
    lm = DummyLM(["The answer is wrong: 6*7 is 42. Score: 0", {"improved_value": "42"}])
    answer = Variable("41", role_description="answer to 6*7")
    TextLoss("Check the arithmetic.", lm=lm)(answer).backward(backward_lm=lm)
    opt = TextualGradientDescent([answer], lm=lm)
    opt.step()
    assert answer.value == "42"
    step_prompt = _user_messages(lm)[-1]
    assert "answer to 6*7" in step_prompt and "6*7 is 42" in step_prompt and "41" in step_prompt
    assert answer.grad
    opt.zero_grad()
    assert answer.grad is None


def test_tgd_unparseable_reply_leaves_value_unchanged_and_logs(caplog):
    lm = DummyLM(["Too short.", "no tags at all", "still not json"])
    answer = Variable("draft", role_description="answer")
    TextLoss("Evaluate.", lm=lm)(answer).backward(backward_lm=lm)
    opt = TextualGradientDescent([answer], lm=lm)
    with caplog.at_level(logging.WARNING):
        opt.step()
    assert answer.value == "draft"
    assert any("unchanged" in r.getMessage() for r in caplog.records)
    assert opt.state[answer]["last_error"]


def test_refinement_loop_with_scripted_lm():
    script: list = []
    for i in range(3):
        script += [f"Critique {i}: add detail. Score: {i + 3}/10", {"improved_value": f"answer v{i + 1}"}]
    lm = DummyLM(script)
    answer = Variable("answer v0", role_description="answer")
    loss_fn = TextLoss("Evaluate the answer.", lm=lm)
    opt = TextualGradientDescent([answer], lm=lm)
    scores = []
    for _ in range(3):
        opt.zero_grad()
        loss = loss_fn(answer)
        scores.append(loss.score)
        loss.backward(backward_lm=lm)
        opt.step()
    assert answer.value == "answer v3"
    assert scores == pytest.approx([0.3, 0.4, 0.5])
    assert len(answer.grad) == 1  # zero_grad each step: only the last critique


# --- FunctionLoss and MultiFieldLoss ------------------------------------------------------------------

def test_function_loss_scores_and_exceptions_become_feedback():
    def tests(code: str) -> tuple[float, str]:
        if "return a + b" not in code:
            raise AssertionError("add(2, 3) returned -1, expected 5")
        return 1.0, "all tests passed"

    code = Variable("def add(a, b):\n    return a - b", role_description="Python code")
    loss = FunctionLoss(tests)(code)
    assert loss.score == 0.0 and loss.items[0].extra["exception"] == "AssertionError"
    assert loss.feedback == ["AssertionError: add(2, 3) returned -1, expected 5"]
    lm = DummyLM([{"improved_value": "def add(a, b):\n    return a + b"}])
    loss.backward(backward_lm=lm)
    assert lm.calls == 0 and "expected 5" in code.grad[0].feedback
    TextualGradientDescent([code], lm=lm).step()
    ok = FunctionLoss(tests)(code)
    assert ok.score == 1.0 and ok.feedback == ["all tests passed"]


def test_function_loss_accepts_bare_scores_and_batches():
    loss = FunctionLoss(lambda text: len(text) <= 5, description="short texts")([Variable("short"), "too long!"])
    assert [i.score for i in loss.items] == [1.0, 0.0]
    assert "scored this 0.00" in loss.items[1].feedback
    custom = FunctionLoss(lambda text: 0.5, feedback_fn=lambda text, s: f"{text}: half ({s})")("x")
    assert custom.feedback == ["x: half (0.5)"]
    with pytest.raises(InputError):
        FunctionLoss("not callable")  # type: ignore[arg-type]


def test_multi_field_loss_sends_feedback_to_trainable_fields_only():
    lm = DummyLM(["The answer disagrees with the reference (42). Score: 0.2"])
    question = Variable("What is 6*7?", role_description="question", requires_grad=False)
    answer = Variable("41", role_description="answer")
    loss_fn = MultiFieldLoss("Compare the answer with the reference.",
                             role_descriptions=["question", "answer", "reference answer"], lm=lm)
    loss = loss_fn([question, answer, "42"])
    assert loss.score == pytest.approx(0.2) and loss.items[0].prediction is answer
    user = _user_messages(lm)[-1]
    assert "### question\nWhat is 6*7?" in user and "### reference answer\n42" in user
    loss.backward(backward_lm=lm)
    assert lm.calls == 1
    assert answer.grad and "disagrees" in answer.grad[0].feedback
    assert question.grad is None
    assert loss_fn.field_names == ["question", "answer", "reference_answer"]
    with pytest.raises(InputError):
        loss_fn([answer])


def test_multi_field_loss_template_instruction():
    lm = DummyLM(["fine"])
    loss_fn = MultiFieldLoss("Q: {q}\nA: {a}\nJudge the answer.", role_descriptions=["question", "answer"],
                             field_names=["q", "a"], lm=lm)
    loss_fn(["2+2?", Variable("4")])
    assert lm.history[0]["messages"] == [{"role": "user", "content": "Q: 2+2?\nA: 4\nJudge the answer."}]


def test_text_loss_over_a_module_prediction_uses_its_graph():
    from textgrad_like.predict import Predict

    lm = DummyLM([{"answer": "Paris"}, "The answer is right but terse. Score: 0.7",
                  _bw({}, "Ask for a full sentence.")])
    program = Predict("question -> answer")
    pred = program(question="Capital of France?", lm=lm)
    loss = TextLoss("Evaluate the answer.", lm=lm)(pred)
    assert loss.items[0].graph is pred.graph
    assert "answer: Paris" in _user_messages(lm)[1]
    loss.backward(backward_lm=lm)
    assert program.instruction.grad and program.instruction.grad[0].feedback == "Ask for a full sentence."


def test_backward_needs_an_lm():
    loss = FunctionLoss(lambda text: 0.0)(Variable("x"))
    with pytest.raises(BackwardError):
        loss.backward()


@pytest.mark.parametrize(("text", "expected"), [
    ("Score: 0.8", 0.8), ("score 7/10", 0.7), ("SCORE: 85 out of 100", 0.85), ("Score: 9", 0.9),
    ("no number here", None), ("score: 120", 1.0),
])
def test_parse_score(text, expected):
    assert parse_score(text) == (pytest.approx(expected) if expected is not None else None)


# --- examples and benchmark run end to end with scripted LMs ------------------------------------------

def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_refine_answer_example_runs_with_a_scripted_lm():
    example = _load(ROOT / "examples" / "refine_answer.py")
    lm = DummyLM({
        "<improved_value>": {"improved_value": "Canberra is the capital of Australia."},
        "capital": "Sydney is the capital of Australia.",
    })
    lm_judge = DummyLM(["Wrong city: the capital is Canberra. Score: 1/10", "Correct. Score: 10/10"])
    result = example.refine(question="What is the capital of Australia?", steps=2, lm=lm, judge_lm=lm_judge)
    assert result["first_answer"] == "Sydney is the capital of Australia."
    assert result["final_answer"] == "Canberra is the capital of Australia."
    assert result["scores"][0] == pytest.approx(0.1) and result["scores"][-1] == pytest.approx(1.0)


def test_optimize_code_example_feedback_from_failing_tests():
    example = _load(ROOT / "examples" / "optimize_code.py")

    seen: list[str] = []

    def fake_runner(code: str, tests: list[str]) -> tuple[float, str]:
        seen.append(code)
        if "a + b" in code:
            return 1.0, "All tests pass."
        return 0.0, "Failing tests:\n- assert add(2, 3) == 5  ->  AssertionError"

    lm = DummyLM([{"improved_value": "def add(a, b):\n    return a + b"}])
    result = example.optimize(code="def add(a, b):\n    return a - b", tests=["assert add(2, 3) == 5"],
                              steps=3, lm=lm, runner=fake_runner)
    assert "AssertionError" in _user_messages(lm)[0]  # the failure reached the rewrite prompt
    assert result["passed"] and "a + b" in result["code"]
    assert result["history"][0]["score"] == 0.0 and result["steps"] == 1 and len(seen) == 2
    assert example.syntax_runner("def f(:\n", [])[0] == 0.0
    assert example.strip_fences("```python\nx = 1\n```") == "x = 1\n"


def test_benchmark_runs_with_a_scripted_lm():
    bench = _load(ROOT / "benchmarks" / "instance_refinement.py")
    task = bench.TASKS[0]
    lm = DummyLM({"<improved_value>": {"improved_value": task["good_example"]}})
    row = bench.run_task(task, steps=2, lm=lm, first_answer="x")
    assert row["first_score"] < 1.0 and row["final_score"] == 1.0 and row["lm_calls"] >= 1


@pytest.mark.integration
def test_llm_call_and_text_loss_with_embedded_model(embedded_lm):
    answer = Variable("Paris is the capital of Germany.", role_description="answer")
    reply = llm_call(answer, system_prompt="Repeat the sentence.", lm=embedded_lm, max_tokens=16)
    assert isinstance(reply.value, str) and reply.value
    loss = TextLoss("Is this sentence true? Answer briefly.", lm=embedded_lm, max_tokens=24)(reply)
    loss.backward(backward_lm=embedded_lm)
    assert reply.grad  # the evaluation itself is the gradient of its input


def test_text_loss_over_a_prediction_without_graph_cannot_backward():
    from textgrad_like.predict import Predict

    lm = DummyLM([{"answer": "Paris"}, "ok"])
    program = Predict("question -> answer").eval()
    loss = TextLoss("Evaluate.", lm=lm)(program(question="Capital of France?", lm=lm))
    with pytest.raises(BackwardError, match="training mode"):
        loss.backward(backward_lm=lm)
