import json

import pytest

import textgrad_like as dspy
from textgrad_like import nn
from textgrad_like.errors import ConfigurationError, InputError, StateDictError
from textgrad_like.utils import DummyLM


class Pipeline(dspy.Module):
    def __init__(self):  # no super().__init__(), as DSPy programs are often written
        self.outline = dspy.ChainOfThought("topic -> title")
        self.drafts = [dspy.Predict("title -> content"), dspy.Predict("content -> summary")]

    def forward(self, topic):
        title = self.outline(topic=topic).title
        content = self.drafts[0](title=title).content
        return self.drafts[1](content=content)


def test_registry_filled_on_assignment():
    p = dspy.Predict("q -> a")
    assert set(p._parameters) == {"instruction", "demos"}
    m = Pipeline()
    assert "outline" in m._modules
    names = [n for n, _ in m.named_parameters()]
    assert names == ["outline.predict.instruction", "outline.predict.demos", "drafts[0].instruction",
                     "drafts[0].demos", "drafts[1].instruction", "drafts[1].demos"]
    assert [n for n, _ in m.named_parameters(kind="demos")] == [n for n in names if n.endswith("demos")]
    assert all(isinstance(p, nn.Instruction) for _, p in m.named_parameters(kind=nn.Instruction))
    assert [n for n, _ in m.named_predictors()] == ["outline.predict", "drafts[0]", "drafts[1]"]
    assert [n for n, _ in m.named_modules()][:2] == ["", "outline"]
    assert len(list(m.children())) == 3


def test_demos_assignment_keeps_parameter_and_signature_setter():
    p = dspy.Predict("q -> a")
    param = p.demos
    p.demos = [dspy.Example(q="1", a="2"), {"q": "3", "a": "4"}]
    assert p.demos is param and len(p.demos) == 2 and p.demos[1].a == "4"
    p.signature = p.signature.with_instructions("Be brief.")
    assert p.instruction.value == "Be brief." and p.signature.instructions == "Be brief."
    p.instruction.value = "Changed."
    assert p.signature.instructions == "Changed."


def test_state_dict_round_trips_through_json():
    m = Pipeline()
    m.outline.predict.instruction.value = "Write a catchy title."
    m.drafts[0].demos = [dspy.Example(title="t", content="c")]
    state = json.loads(json.dumps(m.state_dict()))
    fresh = Pipeline()
    fresh.load_state_dict(state)
    assert fresh.state_dict() == m.state_dict()
    with pytest.raises(StateDictError, match="missing keys"):
        Pipeline().load_state_dict({"outline.predict.instruction": "x"})
    Pipeline().load_state_dict({"outline.predict.instruction": "x"}, strict=False)
    with pytest.raises(StateDictError):
        Pipeline().load_state_dict({**state, "outline.predict.instruction": 5})


def test_save_and_load_json(tmp_path):
    m = Pipeline()
    m.drafts[1].instruction.value = "Summarise in one line."
    m.drafts[1].demos = [dspy.Example(content="long", summary="short")]
    path = tmp_path / "prog.json"
    m.save(path)
    data = json.loads(path.read_text())  # DSPy's layout: predictor name -> state, plus metadata
    assert data["metadata"]["format"].startswith("textgrad_like.program")
    assert "python" in data["metadata"]["dependency_versions"]
    assert data["drafts[1]"]["signature"]["instructions"] == "Summarise in one line."
    assert data["drafts[1]"]["demos"] == [{"content": "long", "summary": "short"}] and "state_dict" not in data
    loaded = Pipeline()
    loaded.load(path)
    assert loaded.state_dict() == m.state_dict()


def test_pickle_needs_explicit_flag(tmp_path):
    m = Pipeline()
    m.save(tmp_path / "p", save_program=True)
    with pytest.raises(StateDictError, match="allow_pickle"):
        dspy.load(tmp_path / "p")
    again = dspy.load(tmp_path / "p", allow_pickle=True)
    assert again.state_dict() == m.state_dict()


def test_dump_and_load_state_dspy_style():
    m = Pipeline()
    m.drafts[0].demos = [dspy.Example(title="t", content="c")]
    state = m.dump_state()
    fresh = Pipeline().load_state(state)
    assert fresh.drafts[0].demos[0].content == "c"


def test_train_eval_freeze_zero_grad():
    m = Pipeline()
    m.eval()
    assert all(not mod.training for mod in m.modules())
    m.train()
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    p = next(iter(m.parameters()))
    p.requires_grad = True
    p.accumulate(nn.Gradient("x"))
    assert p.grad
    m.zero_grad()
    assert p.grad is None


def test_deepcopy_and_reset_copy_share_lm():
    lm = DummyLM([])
    m = Pipeline()
    m.set_lm(lm)
    m.drafts[0].demos = [dspy.Example(title="t", content="c")]
    c = m.deepcopy()
    assert c.drafts[0].lm is lm and c.drafts[0].demos is not m.drafts[0].demos
    assert len(c.drafts[0].demos) == 1
    r = m.reset_copy()
    assert len(r.drafts[0].demos) == 0 and r.drafts[0].lm is None
    assert m.get_lm() is lm


def test_input_errors(caplog):
    # as in DSPy: unknown and missing inputs are logged and the call goes on; positional ones are refused
    dspy.configure(lm=DummyLM([{"a": "x"}, {"a": "y"}]))
    assert dspy.Predict("q -> a")(q="x", question="x").a == "x"
    assert "ignoring ['question']" in caplog.text
    assert dspy.Predict("q, r -> a")(q="x").a == "y"
    assert "Missing: ['r']" in caplog.text
    with pytest.raises(InputError, match="Positional arguments"):
        dspy.Predict("q -> a")("x")


def test_unconfigured_lm_error():
    with pytest.raises(ConfigurationError, match="No LM is loaded"):
        dspy.Predict("q -> a")(q="x")


def test_per_call_lm_config_and_demos():
    lm = DummyLM([{"a": "1"}, {"a": "2"}])
    p = dspy.Predict("q -> a", temperature=0.3)
    p(q="x", lm=lm, config={"max_tokens": 12}, demos=[dspy.Example(q="d", a="e")])
    kwargs = lm.history[-1]["kwargs"]
    assert kwargs["temperature"] == 0.3 and kwargs["max_tokens"] == 12
    assert any("<q>\nd\n</q>" in m["content"] for m in lm.history[-1]["messages"])
    p(q="y", lm=lm)
    assert not any("<q>\nd\n</q>" in m["content"] for m in lm.history[-1]["messages"])


def test_map_named_predictors():
    m = Pipeline()
    m.map_named_predictors(lambda p: dspy.Predict(p.signature.with_instructions("mapped")))
    assert all(p.signature.instructions == "mapped" for p in m.predictors())


def test_module_batch():
    lm = DummyLM({"q": {"a": "ok"}})
    p = dspy.Predict("q -> a")
    p.set_lm(lm)
    out = p.batch([dspy.Example(q=str(i)).with_inputs("q") for i in range(5)], num_threads=3)
    assert [o.a for o in out] == ["ok"] * 5
