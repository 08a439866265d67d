"""LoRA parameters: peft adapters on the shared local model, save/load, isolation, torch training via SFTLoss."""

from __future__ import annotations

import json
import os
import sys
import threading

import pytest

import textgrad_like as dspy
from textgrad_like.errors import BackwardError, ConfigurationError, StateDictError
from textgrad_like.lm import LM
from textgrad_like.primitives import Prediction
from textgrad_like.utils import DummyLM

sys.path.insert(0, os.path.dirname(__file__))
from test_constrained import build_tiny_model_dir  # noqa: E402  (the shared tiny-model builder)


class Classify(dspy.Module):
    def __init__(self) -> None:
        self.predict = dspy.Predict("text -> label")

    def forward(self, text: str) -> dspy.Prediction:
        return self.predict(text=text)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    path = build_tiny_model_dir(str(tmp_path_factory.mktemp("tiny-lora")), max_positions=4096)
    return LM(f"local/{path}", temperature=0.0, max_tokens=6)


def _program(lm, seed=0, **kwargs):
    from textgrad_like.nn.lora import LoRA

    program = Classify()
    program.predict.lm = lm
    LoRA(lm, r=4, alpha=8, seed=seed, **kwargs).attach(program.predict)
    return program


def _perturb(lora, scale=0.05, seed=0):
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in lora.tensors():
            t.add_(scale * torch.randn(t.shape, generator=gen))


STEPS_TEXT = [("I lost my card yesterday", "lost_card"), ("What is my balance?", "check_balance")]


def _steps(program):
    return [(program.predict, {"text": t}, Prediction(label=y)) for t, y in STEPS_TEXT]


# -- bad input (no model needed) ---------------------------------------------------------------------
def test_lora_needs_an_in_process_model():
    from textgrad_like.lm.adapted import AdaptedLocalLM
    from textgrad_like.nn.lora import LoRA

    with pytest.raises(ConfigurationError, match="in-process"):
        LoRA(DummyLM([]))
    with pytest.raises(ConfigurationError, match="in-process"):
        LoRA(LM("openai/gpt-4o-mini"))
    with pytest.raises(ConfigurationError, match="in-process"):
        AdaptedLocalLM(LM("openai/gpt-4o-mini"), None)


def test_sft_loss_on_empty_traces_is_a_typed_error():
    from textgrad_like.autograd.sft import SFTLoss

    with pytest.raises(BackwardError, match="no trace"):
        SFTLoss()([])
    program = Classify()
    program.predict.lm = DummyLM([])
    with pytest.raises(BackwardError, match="LoRA"):  # a trace, but no predictor has a LoRA
        SFTLoss()([(program.predict, {"text": "x"}, Prediction(label="y"))])


# -- tiny model: mechanics ----------------------------------------------------------------------------
def test_lora_is_a_registered_parameter_with_torch_tensors(tiny_lm):
    import torch

    from textgrad_like.lm.adapted import AdaptedLocalLM
    from textgrad_like.nn.lora import LoRA

    program = _program(tiny_lm)
    names = dict(program.named_parameters())
    assert "predict.lora" in names and names["predict.lora"].kind == "lora"
    assert isinstance(program.predict.lm, AdaptedLocalLM)
    tensors = list(program.parameters(kind="lora"))
    assert tensors and all(isinstance(t, torch.nn.Parameter) and t.requires_grad for t in tensors)
    assert sum(t.numel() for t in tensors) == names["predict.lora"].num_parameters()
    assert list(program.named_parameters(kind="lora"))[0][1] is program.predict.lora
    program.requires_grad_(False)
    assert not any(t.requires_grad for t in program.parameters(kind="lora"))
    program.requires_grad_(True)
    # deep copies share the weights (like the loaded model); clone() makes an independent adapter
    copy = program.deepcopy()
    assert copy.predict.lora is program.predict.lora
    clone = program.predict.lora.clone()
    assert isinstance(clone, LoRA) and clone.adapter_name != program.predict.lora.adapter_name
    assert clone.digest() == program.predict.lora.digest()


def test_missing_target_modules_is_a_configuration_error(tiny_lm):
    from textgrad_like.nn.lora import LoRA

    with pytest.raises(ConfigurationError, match="q_proj"):  # the message lists the model's linear layers
        LoRA(tiny_lm, target_modules=("no_such_layer",))


def test_save_load_round_trip_is_bit_exact(tiny_lm, tmp_path):
    import torch

    program = _program(tiny_lm, seed=1)
    _perturb(program.predict.lora, seed=1)
    path = tmp_path / "program.json"
    program.save(path)
    saved = json.loads(path.read_text())["state_dict"]["predict.lora"]
    assert saved["format"] == "textgrad_like.lora/1" and saved["config"]["r"] == 4
    assert (tmp_path / saved["file"]).is_file() and len(saved["sha256"]) == 64

    other = _program(tiny_lm, seed=2)
    assert other.predict.lora.digest() != program.predict.lora.digest()
    other.load(path)  # reads the .safetensors file
    for a, b in zip(other.predict.lora.tensors(), program.predict.lora.tensors(), strict=True):
        assert torch.equal(a, b)
    assert other.predict.lora.digest() == saved["sha256"]

    # in memory: load_state_dict(state_dict()) restores earlier weights exactly
    state = program.state_dict()
    before = [t.detach().clone() for t in program.predict.lora.tensors()]
    _perturb(program.predict.lora, seed=3)
    program.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(program.predict.lora.tensors(), before, strict=True))


def test_load_detects_changed_or_mismatching_weights(tiny_lm, tmp_path):
    from textgrad_like.nn.lora import LoRA

    program = _program(tiny_lm, seed=4)
    _perturb(program.predict.lora, seed=4)
    path = tmp_path / "p.json"
    program.save(path)
    file = tmp_path / json.loads(path.read_text())["state_dict"]["predict.lora"]["file"]
    other = _program(tiny_lm, seed=5)
    _perturb(other.predict.lora, seed=6)
    other.predict.lora.save_file(file)  # someone overwrote the weights file
    fresh = _program(tiny_lm, seed=7)
    with pytest.raises(StateDictError, match="sha256"):
        fresh.load(path)
    wrong_rank = Classify()
    wrong_rank.predict.lm = tiny_lm
    LoRA(tiny_lm, r=2).attach(wrong_rank.predict)
    with pytest.raises(StateDictError, match="r"):
        wrong_rank.load(path)


def test_keep_best_after_50_snapshots_restores_bit_exactly(tiny_lm):
    import torch

    from textgrad_like import nn

    program = _program(tiny_lm, seed=20)
    lora = program.predict.lora
    assert all(isinstance(p, nn.Parameter) for p in program.parameters())  # LoRA is one kind of parameter
    assert any(p is lora for p in program.parameters())
    assert [id(t) for t in program.parameters(kind="lora")] == [id(t) for t in lora.tensors()]
    snapshots, weights = [], []
    for step in range(50):
        _perturb(lora, scale=0.01, seed=100 + step)
        snapshots.append(program.state_dict())
        weights.append([t.detach().clone() for t in lora.tensors()])
    best = 7
    for step in range(20):  # more training after the keep-best snapshot
        _perturb(lora, scale=0.01, seed=500 + step)
        program.state_dict()
    program.load_state_dict(snapshots[best])
    assert all(torch.equal(a, b) for a, b in zip(lora.tensors(), weights[best], strict=True))
    program.load_state_dict(snapshots[0])
    assert all(torch.equal(a, b) for a, b in zip(lora.tensors(), weights[0], strict=True))
    assert isinstance(program.predict.lm("hi", cache=False)[0], str)  # the next forward still works


def test_weights_that_are_not_available_fail_at_load_time(tiny_lm, tmp_path):
    import torch

    program = _program(tiny_lm, seed=21)
    _perturb(program.predict.lora, seed=21)
    as_json = json.loads(json.dumps(program.state_dict()))  # a JSON copy holds only the reference
    other = _program(tiny_lm, seed=22)
    _perturb(other.predict.lora, seed=22)
    before = [t.detach().clone() for t in other.predict.lora.tensors()]
    with pytest.raises(StateDictError, match="not in memory"):
        other.load_state_dict(as_json)
    path = tmp_path / "p.json"
    program.save(path)
    saved = json.loads(path.read_text())["state_dict"]["predict.lora"]
    os.remove(tmp_path / saved["file"])
    other.predict.instruction.value = "unchanged"
    with pytest.raises(StateDictError, match="missing"):
        other.load(path)
    assert other.predict.instruction.value == "unchanged"  # nothing was loaded
    assert all(torch.equal(a, b) for a, b in zip(other.predict.lora.tensors(), before, strict=True))
    assert isinstance(other.predict.lm("hi", cache=False)[0], str)


def test_adapters_on_one_model_do_not_mix(tiny_lm):
    first, second = _program(tiny_lm, seed=8), _program(tiny_lm, seed=9)
    prompt = "the quick brown fox"
    base = tiny_lm(prompt, cache=False)
    assert first.predict.lm(prompt, cache=False) == base  # LoRA B starts at zero: same as the base model
    _perturb(first.predict.lora, scale=0.5, seed=10)
    _perturb(second.predict.lora, scale=0.5, seed=11)
    alone = {name: p.lm(prompt, cache=False) for name, p in (("a", first.predict), ("b", second.predict))}
    alone["base"] = tiny_lm(prompt, cache=False)
    assert alone["base"] == base and alone["a"] != alone["b"]
    # concurrent requests land in one dynamic batch: each row must still use its own adapter
    results: dict[str, list[str]] = {}
    lms = {"a": first.predict.lm, "b": second.predict.lm, "base": tiny_lm}

    def call(key: str) -> None:
        results[key] = lms[key](prompt, cache=False)

    threads = [threading.Thread(target=call, args=(k,)) for k in lms]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == alone


def test_cache_key_follows_the_weights(tiny_lm):
    program = _program(tiny_lm, seed=12)
    lm = program.predict.lm
    first = lm("cached prompt")
    _perturb(program.predict.lora, scale=0.5, seed=13)
    assert lm("cached prompt") != first  # new weights: not answered from the cache


def test_sft_backward_gives_gradients_and_adamw_lowers_the_loss(tiny_lm):
    import torch

    from textgrad_like.autograd.sft import SFTLoss

    program = _program(tiny_lm, seed=14)
    optimizer = torch.optim.AdamW(program.parameters(kind="lora"), lr=1e-2)
    loss_fn = SFTLoss()
    losses = []
    for _ in range(6):
        loss = loss_fn(_steps(program))
        loss.backward()
        grads = [t.grad for t in program.parameters(kind="lora")]
        assert all(g is not None for g in grads) and any(float(g.abs().sum()) > 0 for g in grads)
        optimizer.step()
        program.zero_grad()
        losses.append(loss.item())
    assert all(t.grad is None for t in program.parameters(kind="lora"))
    assert losses[-1] < losses[0]
    assert loss.num_tokens > 0 and len(loss.examples) == 2


def test_sft_loss_gathers_reply_logits_as_the_full_forward_computes_them(tiny_lm):
    """The loss (and its LoRA gradients) from the hidden states gathered at the reply positions equal
    a cross-entropy over the full forward's logits, for rows of different lengths (left padding)."""
    import torch

    from textgrad_like.autograd import sft
    from textgrad_like.autograd.sft import SFTLoss

    program = _program(tiny_lm, seed=17)
    steps = _steps(program)
    steps[1] = (steps[1][0], {"text": "What is my balance after the transfer I made on Monday morning?"}, steps[1][2])
    loss = SFTLoss()(steps)
    examples = loss.examples
    assert len({len(e.prompt_ids) + len(e.completion_ids) for e in examples}) == 2
    with examples[0].lora.switch.using(examples[0].lora.adapter_name, train=True) as model:
        assert sft._plain_head_parts(model) is not None  # the tiny model is a llama: the gathered path runs
        loss.backward()
        gathered = [t.grad.clone() for t in examples[0].lora.tensors()]
        program.zero_grad()
        total = None
        for ex in examples:  # one sequence at a time, no padding, every position's logits
            ids = torch.tensor([ex.prompt_ids + ex.completion_ids])
            logits = model(input_ids=ids, use_cache=False).logits[0].float()
            m = len(ex.completion_ids)
            part = torch.nn.functional.cross_entropy(logits[-m - 1:-1], torch.tensor(ex.completion_ids),
                                                     reduction="sum")
            total = part if total is None else total + part
        reference = total / loss.num_tokens
        reference.backward()
    assert abs(loss.item() - reference.item()) < 1e-4 * max(1.0, abs(reference.item()))
    for got, want in zip(gathered, [t.grad for t in examples[0].lora.tensors()], strict=True):
        assert torch.allclose(got, want, rtol=1e-3, atol=1e-6)
    program.zero_grad()


def test_sft_loss_uses_the_adapters_own_format(tiny_lm):
    from textgrad_like.adapters import JSONAdapter
    from textgrad_like.autograd.sft import SFTLoss

    program = _program(tiny_lm, seed=15)
    tokenizer = tiny_lm.backend.tokenizer
    with dspy.context(adapter=JSONAdapter()):
        loss = SFTLoss()(_steps(program)[:1])
    record = loss.examples[0]
    assert record.messages[-1] == {"role": "assistant", "content": '{"label": "lost_card"}'}
    assert tokenizer.decode(record.completion_ids, skip_special_tokens=True) == '{"label": "lost_card"}'
    assert record.prompt_ids == tiny_lm.backend.encode_messages(record.messages[:-1])


def test_sft_loss_keeps_only_traces_the_metric_accepts(tiny_lm):
    from textgrad_like.autograd.sft import SFTLoss
    from textgrad_like.primitives import Example

    program = _program(tiny_lm, seed=16)
    steps = _steps(program)
    gold = [Example(text=t, label=y).with_inputs("text") for t, y in STEPS_TEXT]
    gold[1] = gold[1].copy(label="other")
    loss = SFTLoss(metric=lambda ex, pred, trace=None: ex.label == trace[0][2].label)([[s] for s in steps], gold)
    assert len(loss.examples) == 1


# -- the embedded model ----------------------------------------------------------------------------------
@pytest.mark.integration
def test_a_few_steps_lower_the_training_loss_on_the_embedded_model(embedded_lm):
    import torch

    from textgrad_like.adapters import JSONAdapter
    from textgrad_like.autograd.sft import SFTLoss
    from textgrad_like.nn.lora import LoRA

    program = Classify()
    program.predict.lm = embedded_lm
    LoRA(embedded_lm, r=8, alpha=16, seed=0).attach(program.predict)
    optimizer = torch.optim.AdamW(program.parameters(kind="lora"), lr=2e-3)
    steps = _steps(program)[:1]
    losses = []
    with dspy.context(adapter=JSONAdapter()):
        for _ in range(3):
            loss = SFTLoss(max_length=512)(steps)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
    assert losses[-1] < losses[0], losses


def test_bf16_model_keeps_float32_adapter_weights_and_trains(tiny_lm):
    import torch

    from textgrad_like.autograd.sft import SFTLoss

    lm = LM(f"local/{tiny_lm.source.path}", dtype="bfloat16", temperature=0.0, max_tokens=4)
    program = _program(lm, seed=17)
    assert lm.backend.model.dtype == torch.bfloat16
    assert all(t.dtype == torch.float32 for t in program.parameters(kind="lora"))
    loss = SFTLoss()(_steps(program))
    loss.backward()
    assert all(t.grad is not None and t.grad.dtype == torch.float32 for t in program.parameters(kind="lora"))
    assert isinstance(program.predict.lm("hi", cache=False)[0], str)
