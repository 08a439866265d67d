import threading

import pytest

import textgrad_like as dspy
from textgrad_like import nn
from textgrad_like.autograd import FeedbackLoss, LMJudgeLoss, MetricLoss
from textgrad_like.errors import BackwardError, OptimizerError
from textgrad_like.optim import TextualGradientDescent
from textgrad_like.utils import DummyLM

BACKWARD = {"instruction_feedback": "State the number only.", "input_feedback": {"draft": "The draft was off by one."}}


def scripted(answer="5", improved="Answer with the exact sum."):
    return DummyLM({
        "<improved_value>": {"improved_value": improved},
        "<instruction_feedback>": BACKWARD,
        "blocks <answer>": {"answer": answer},
        "blocks <draft>": {"draft": "maybe 5"},
        "blocks <note>": {"note": "unused"},
    })


class TwoStage(dspy.Module):
    def __init__(self):
        super().__init__()
        self.first = dspy.Predict("question -> draft")
        self.second = dspy.Predict("question, draft -> answer")
        self.side = dspy.Predict("question -> note")  # runs, but its output never reaches the answer

    def forward(self, question):
        draft = self.first(question=question).draft
        self.side(question=question)
        return self.second(question=question, draft=draft)


EX = dspy.Example(question="2+2?", answer="4").with_inputs("question")


def test_graph_records_nodes_edges_and_params():
    dspy.configure(lm=scripted())
    prog = TwoStage()
    pred = prog(**EX.inputs())
    g = pred.graph
    assert [n.module for n in g.nodes] == [prog.first, prog.side, prog.second]
    second = g.nodes[2]
    assert second.parents == [g.nodes[0]] and second.input_sources["draft"] == [g.nodes[0]]
    assert prog.second.instruction in second.params and prog.second.demos in second.params
    assert second.inputs == {"question": "2+2?", "draft": "maybe 5"}
    assert [n.name for n in g.topological_order()].index("first") < 2


def test_nothing_recorded_in_eval_or_no_grad():
    dspy.configure(lm=scripted())
    prog = TwoStage()
    prog.eval()
    assert prog(**EX.inputs()).graph is None
    prog.train()
    with dspy.no_grad():
        assert prog(**EX.inputs()).graph is None


def test_gradients_reach_exactly_the_influencing_params_in_reverse_order():
    dspy.configure(lm=scripted())
    prog = TwoStage()
    pred = prog(**EX.inputs())
    loss = MetricLoss(dspy.evaluate.answer_exact_match)(pred, EX)
    assert loss.score == 0.0 and loss.value == 1.0
    assert "correct value is '4'" in loss.items[0].feedback
    visited = loss.backward()
    assert [n.name for n in visited[0]] == ["second", "first"]
    assert prog.second.instruction.grad[0].feedback == "State the number only."
    assert prog.first.instruction.grad  # chained through the draft
    assert "off by one" in prog.first.instruction.grad[0].context["downstream_feedback"][0]
    assert prog.side.instruction.grad is None and prog.side.demos.grad is None
    assert prog.second.demos.grad[0].context["trace"][1] == {"answer": "5"}


def test_frozen_params_get_nothing_and_zero_grad_clears():
    dspy.configure(lm=scripted())
    prog = TwoStage()
    prog.first.requires_grad_(False)
    pred = prog(**EX.inputs())
    MetricLoss(dspy.evaluate.answer_exact_match)(pred, EX).backward()
    assert prog.first.instruction.grad is None
    assert prog.second.instruction.grad
    opt = TextualGradientDescent(prog.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in prog.parameters())
    prog.second.instruction.accumulate(nn.Gradient("x"))
    prog.zero_grad()
    assert prog.second.instruction.grad is None


def test_step_changes_instructions_and_state_dict_captures():
    dspy.configure(lm=scripted())
    prog = TwoStage()
    before = prog.state_dict()
    pred = prog(**EX.inputs())
    MetricLoss(dspy.evaluate.answer_exact_match)(pred, EX).backward()
    opt = TextualGradientDescent(prog.parameters(), constraints=["Keep it under 20 words."], momentum=2)
    opt.step()
    after = prog.state_dict()
    assert after["second.instruction"] == "Answer with the exact sum."
    assert after["first.instruction"] == "Answer with the exact sum."
    assert after["side.instruction"] == before["side.instruction"]
    sd = opt.state_dict()
    assert sd["param_groups"][0]["constraints"] == ["Keep it under 20 words."]
    assert any(s.get("steps") == 1 for s in sd["state"].values())
    opt2 = TextualGradientDescent(prog.parameters())
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["momentum"] == 2


def test_unparseable_proposal_leaves_value_unchanged(caplog):
    lm = DummyLM({"<improved_value>": "no tags here", "<instruction_feedback>": BACKWARD,
                  "blocks <answer>": {"answer": "5"}, "blocks <draft>": {"draft": "d"}, "blocks <note>": {"note": "n"}})
    dspy.configure(lm=lm, adapter=dspy.ChatAdapter(use_json_adapter_fallback=False))
    prog = TwoStage()
    old = prog.second.instruction.value
    pred = prog(**EX.inputs())
    MetricLoss(dspy.evaluate.answer_exact_match)(pred, EX).backward()
    opt = TextualGradientDescent([prog.second.instruction])
    with caplog.at_level("WARNING"):
        opt.step()
    assert prog.second.instruction.value == old
    assert "value unchanged" in caplog.text


def test_backward_without_graph_or_lm_errors():
    dspy.configure(lm=scripted())
    prog = TwoStage()
    with dspy.no_grad():
        pred = prog(**EX.inputs())
    with pytest.raises(BackwardError, match="No graph"):
        MetricLoss(dspy.evaluate.answer_exact_match)(pred, EX).backward()
    pred = prog(**EX.inputs())
    dspy.configure(lm=None)
    with pytest.raises(BackwardError, match="backward_lm"):
        MetricLoss(dspy.evaluate.answer_exact_match)(pred, EX).backward()


def test_backward_lm_argument_and_setting():
    forward_lm = scripted()
    backward_lm = scripted()
    dspy.configure(lm=forward_lm, backward_lm=backward_lm)
    prog = TwoStage()
    pred = prog(**EX.inputs())
    n_forward = len(forward_lm.history)
    MetricLoss(dspy.evaluate.answer_exact_match)(pred, EX).backward()
    assert len(forward_lm.history) == n_forward and len(backward_lm.history) == 2


def test_feedback_and_batch_losses():
    dspy.configure(lm=scripted())
    prog = TwoStage()
    preds = [prog(**EX.inputs()), prog(**EX.inputs())]

    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        return dspy.Prediction(score=0.25, feedback="Too vague.")

    loss = FeedbackLoss(metric, reduction="sum")(preds, [EX, EX])
    assert loss.score == 0.5 and loss.value == 1.5 and loss.feedback == ["Too vague.", "Too vague."]
    loss.backward()
    assert len(prog.second.instruction.grad) == 2


def test_lm_judge_loss():
    judge = DummyLM([{"feedback": "Missing units.", "score": 0.3}])
    dspy.configure(lm=scripted())
    prog = TwoStage()
    pred = prog(**EX.inputs())
    loss = LMJudgeLoss("Judge whether the answer is correct and complete.", judge_lm=judge)(pred, EX)
    assert loss.items[0].score == 0.3 and loss.items[0].feedback == "Missing units."
    assert "Judge whether" in judge.history[0]["messages"][0]["content"]


def test_two_threads_training_two_copies_do_not_mix_graphs():
    dspy.configure(lm=scripted())
    progs = [TwoStage(), TwoStage()]
    graphs = {}
    barrier = threading.Barrier(2)

    def run(i):
        barrier.wait()
        for _ in range(5):
            pred = progs[i](**EX.inputs())
            graphs.setdefault(i, []).append(pred.graph)
            MetricLoss(dspy.evaluate.answer_exact_match)(pred, EX).backward()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        for g in graphs[i]:
            assert len(g) == 3
            assert {id(n.module) for n in g.nodes} <= {id(m) for m in progs[i].modules()}
        assert len(progs[i].second.instruction.grad) == 5


def test_optimizer_rejects_empty_params():
    with pytest.raises(OptimizerError):
        TextualGradientDescent([])


def test_tgd_leaves_lora_kind_parameters_and_torch_tensors_to_torch(caplog):
    class FakeLoRA(nn.Parameter):
        kind = "lora"

    class Tensorish:  # looks like a torch tensor to the optimizer (module name starts with "torch")
        requires_grad = True
        grad = None

    Tensorish.__module__ = "torch.fake"
    prog = TwoStage()
    prog.adapter = FakeLoRA("weights")
    with caplog.at_level("INFO"):
        opt = TextualGradientDescent([*prog.parameters(), Tensorish()])
    assert prog.adapter not in opt.parameters() and prog.second.instruction in opt.parameters()
    assert "leaves 2 parameter(s) to another optimizer" in caplog.text
    with pytest.raises(OptimizerError, match="no parameter it can step"):
        TextualGradientDescent([prog.adapter])
