"""The torch.nn surface of Module: containers, registries, apply/register/get_*, zero_grad, parameter assignment."""

from __future__ import annotations

import copy
from collections import OrderedDict

import cloudpickle
import pytest

import textgrad_like as dspy
from textgrad_like import nn
from textgrad_like.utils import DummyLM


class Stack(dspy.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([dspy.Predict("q -> a"), dspy.ChainOfThought("a -> b")])
        self.experts = nn.ModuleDict({"math": dspy.Predict("x -> y")})
        self.note = nn.Variable("a draft")

    def forward(self, q):
        return self.layers[1](a=self.layers[0](q=q).a)


def test_containers_register_children_with_torch_names():
    m = Stack()
    assert [n for n, _ in m.named_modules()] == ["", "layers", "layers.0", "layers.1", "layers.1.predict",
                                                  "experts", "experts.math"]
    names = [n for n, _ in m.named_parameters()]
    assert names == ["note", "layers.0.instruction", "layers.0.demos", "layers.1.predict.instruction",
                     "layers.1.predict.demos", "experts.math.instruction", "experts.math.demos"]
    assert set(m.state_dict()) == set(names)
    assert [n for n, _ in m.named_predictors()] == ["layers.0", "layers.1.predict", "experts.math"]
    # the registries are the store, as in torch
    assert m._modules["layers"] is m.layers and m._parameters["note"] is m.note and "layers" not in m.__dict__
    assert m.get_submodule("layers.1.predict") is m.layers[1].predict
    assert m.get_parameter("experts.math.demos") is m.experts["math"].demos
    with pytest.raises(AttributeError, match="nothing"):
        m.get_submodule("layers.nothing")


def test_module_list_and_dict_behave_like_torchs():
    ml = nn.ModuleList()
    a, b, c = dspy.Predict("q -> a"), dspy.Predict("q -> b"), dspy.Predict("q -> c")
    ml.append(a)
    ml.extend([b])
    ml.insert(0, c)
    assert list(ml) == [c, a, b] and len(ml) == 3 and ml[-1] is b
    assert list(ml._modules) == ["0", "1", "2"]
    del ml[0]
    assert list(ml) == [a, b] and [n for n, _ in ml.named_children()] == ["0", "1"]
    assert isinstance(ml[:1], nn.ModuleList) and list(ml[:1]) == [a]
    with pytest.raises(IndexError):
        ml[5]
    with pytest.raises(TypeError):
        ml.append("not a module")
    md = nn.ModuleDict([("x", a)])
    md["y"] = b
    assert list(md) == ["x", "y"] and "y" in md and md.pop("x") is a and list(md.keys()) == ["y"]
    with pytest.raises(KeyError):
        md["items"] = c  # a name that is already an attribute, as torch refuses it
    with pytest.raises(NotImplementedError):
        ml()


def test_sequential_chains_predictions_by_field_name():
    lm = DummyLM([{"query": "capital France"}, {"reasoning": "r", "answer": "Paris"}])
    seq = nn.Sequential(dspy.Predict("question -> query"), dspy.ChainOfThought("query -> answer"))
    seq.set_lm(lm)
    out = seq(question="What is the capital of France?")
    assert out.answer == "Paris" and len(seq) == 2
    named = nn.Sequential(OrderedDict([("first", dspy.Predict("q -> a"))]))
    assert [n for n, _ in named.named_children()] == ["first"] and named[0] is named.first


def test_apply_register_add_module():
    m = Stack()
    seen = []
    assert m.apply(lambda mod: seen.append(type(mod).__name__)) is m
    assert seen[-1] == "Stack" and seen.count("Predict") == 3
    extra = nn.Instruction("Be brief.")
    m.register_parameter("style", extra)
    assert m.style is extra and m.get_parameter("style") is extra
    with pytest.raises(TypeError):
        m.register_parameter("bad", "text")
    with pytest.raises(KeyError):
        m.register_parameter("a.b", nn.Variable("x"))
    m.add_module("judge", dspy.Predict("a -> ok"))
    assert "judge" in dict(m.named_children())
    m.register_module("judge2", dspy.Predict("a -> ok"))
    m.add_module("judge", None)
    assert "judge" not in dict(m.named_children())
    del m.judge2
    assert "judge2" not in dict(m.named_children())
    assert not hasattr(m, "judge2")


def test_assigning_plain_values_to_parameters():
    p = dspy.Predict("q -> a")
    with pytest.raises(TypeError, match=r"\.value"):
        p.instruction = "rewritten"
    assert isinstance(p.instruction, nn.Instruction)
    # DSPy's idiom: a list assigned to demos fills the parameter
    param = p.demos
    p.demos = [{"q": "1", "a": "2"}]
    assert p.demos is param and p.demos[0].a == "2"
    with pytest.raises(TypeError):
        p.demos = "one demo"
    # a new Parameter replaces the registered one
    new = nn.Instruction("Other.")
    p.instruction = new
    assert p.instruction is new and p._parameters["instruction"] is new


def test_demos_hash_is_consistent_with_equality():
    a, b = dspy.Predict("q -> a"), dspy.Predict("q -> a")
    a.demos = [{"q": "1", "a": "2"}]
    b.demos = [{"q": "1", "a": "2"}]
    assert a.demos == a.demos and a.demos != b.demos  # parameters compare by identity, as torch's
    assert len({a.demos, b.demos, a.demos}) == 2 and {a.demos: 1}[a.demos] == 1
    assert a.demos == [dspy.Example(q="1", a="2")] and b.demos.value == a.demos.value  # contents
    assert dspy.Predict("q -> a").demos == []


def test_zero_grad_set_to_none():
    m = Stack()
    for p in m.parameters():
        p.accumulate(nn.Gradient("feedback"))
    m.zero_grad(set_to_none=False)
    assert all(p.grad == [] for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


class Bare(dspy.Module):
    def __init__(self):  # no super().__init__()
        self.predict = dspy.Predict("q -> a")
        self.helpers = [dspy.Predict("a -> b")]
        self._private = dspy.Predict("x -> y")  # never a child, as before


def test_programs_without_super_init_copies_and_pickles_keep_the_registries():
    m = Bare()
    assert [n for n, _ in m.named_predictors()] == ["predict", "helpers[0]"]
    m.predict.instruction.value = "Changed."
    for other in (copy.deepcopy(m), cloudpickle.loads(cloudpickle.dumps(m))):
        assert other.predict is not m.predict and other.predict.instruction.value == "Changed."
        assert [n for n, _ in other.named_predictors()] == ["predict", "helpers[0]"]
    shallow = copy.copy(m)
    assert shallow.predict is m.predict
    m.map_named_predictors(lambda p: dspy.Predict("q -> a"))
    assert m.predict.instruction.value != "Changed."


class WithClassDefault(dspy.Module):
    judge = None  # a class-level default, replaced per instance

    def __init__(self):
        self.judge = dspy.Predict("a -> ok")


def test_a_class_attribute_does_not_hide_a_registered_module():
    m = WithClassDefault()
    assert isinstance(m.judge, dspy.Predict) and m.judge is m._modules["judge"]
    assert [n for n, _ in m.named_predictors()] == ["judge"]
    c = copy.deepcopy(m)
    assert c.judge is c._modules["judge"] and c.judge is not m.judge
    del m.judge
    assert m.judge is None and list(m.named_predictors()) == []


def test_containers_save_load_and_map_named_predictors(tmp_path):
    m = Stack()
    m.layers[0].instruction.value = "First."
    m.experts["math"].demos = [{"x": "1", "y": "2"}]
    m.note.value = "edited"
    m.save(tmp_path / "s.json")
    fresh = Stack().load(tmp_path / "s.json")
    assert fresh.state_dict() == m.state_dict() and fresh.note.value == "edited"
    m.map_named_predictors(lambda p: dspy.Predict(p.signature.with_instructions("mapped")))
    assert all(p.signature.instructions == "mapped" for p in m.predictors())
    assert isinstance(m.layers, nn.ModuleList) and isinstance(m.experts["math"], dspy.Predict)


def test_deepcopy_shares_what_cannot_be_copied():
    import threading

    m = Bare()
    m.lock = threading.Lock()
    c = m.deepcopy()
    assert c.lock is m.lock and c.predict is not m.predict
