"""BootstrapFinetune (LoRA distillation of accepted traces) and BetterTogether (prompt/weight alternation)."""

from __future__ import annotations

import os
import sys
from typing import Literal

import pytest

import textgrad_like as dspy
from textgrad_like.errors import ConfigurationError, OptimizerError
from textgrad_like.lm import LM
from textgrad_like.primitives import Example
from textgrad_like.utils import DummyLM

sys.path.insert(0, os.path.dirname(__file__))
from test_constrained import build_tiny_model_dir  # noqa: E402  (the shared tiny-model builder)

DATA = [("I lost my card yesterday", "lost_card"), ("What is my balance?", "check_balance"),
        ("Send 50 dollars to my sister", "transfer_money"), ("I want a refund from the shop", "request_refund")]


def trainset() -> list[Example]:
    return [Example(text=t, label=y).with_inputs("text") for t, y in DATA]


def exact(example, pred, trace=None) -> bool:
    return example.label == getattr(pred, "label", None)


def oracle() -> DummyLM:
    return DummyLM({t: {"label": y} for t, y in DATA})


class Classify(dspy.Module):
    def __init__(self) -> None:
        self.predict = dspy.Predict("text -> label")

    def forward(self, text: str) -> dspy.Prediction:
        return self.predict(text=text)


class TwoStep(dspy.Module):
    def __init__(self) -> None:
        self.draft = dspy.Predict("text -> label")
        self.check = dspy.Predict("text, draft -> label")

    def forward(self, text: str) -> dspy.Prediction:
        return self.check(text=text, draft=self.draft(text=text).label)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    path = build_tiny_model_dir(str(tmp_path_factory.mktemp("tiny-ft")), max_positions=4096)
    return LM(f"local/{path}", temperature=0.0, max_tokens=6)


def _with_lm(program, lm):
    for p in program.predictors():
        p.lm = lm
    return program


# -- bad input ---------------------------------------------------------------------------------------------
def test_bootstrap_finetune_rejects_bad_arguments():
    from textgrad_like.optim.finetune import BootstrapFinetune

    with pytest.raises(OptimizerError, match="Unknown train_kwargs"):
        BootstrapFinetune(train_kwargs={"epochz": 2})
    with pytest.raises(OptimizerError, match="non-empty trainset"):
        BootstrapFinetune().compile(Classify(), trainset=[])
    with pytest.raises(ConfigurationError, match="in-process"):  # a provider LM cannot carry LoRA weights
        BootstrapFinetune().compile(_with_lm(Classify(), DummyLM([])), trainset=trainset())


def test_bootstrap_finetune_with_no_accepted_trace_is_an_optimizer_error(tiny_lm):
    from textgrad_like.optim.finetune import BootstrapFinetune

    teacher = _with_lm(Classify(), DummyLM({t: {"label": "wrong"} for t, _ in DATA}))
    with pytest.raises(OptimizerError, match="nothing to fine-tune"):
        BootstrapFinetune(metric=exact).compile(_with_lm(Classify(), tiny_lm), trainset=trainset(), teacher=teacher)


# -- training on the tiny model ---------------------------------------------------------------------------
def test_bootstrap_finetune_trains_and_attaches_one_adapter(tiny_lm, tmp_path):
    from textgrad_like.lm.adapted import AdaptedLocalLM
    from textgrad_like.nn.lora import LoRA
    from textgrad_like.optim.finetune import BootstrapFinetune

    student = _with_lm(Classify(), tiny_lm)
    teacher = _with_lm(Classify(), oracle())
    optimizer = BootstrapFinetune(metric=exact, train_kwargs={"epochs": 4, "lr": 2e-2, "batch_size": 2, "r": 4})
    tuned = optimizer.compile(student, trainset=trainset(), teacher=teacher, disable_progress=True)
    assert tuned is not student and tuned._compiled and student.predict.lm is tiny_lm
    assert isinstance(tuned.predict.lora, LoRA) and isinstance(tuned.predict.lm, AdaptedLocalLM)
    assert tuned.predict.lm.lora is tuned.predict.lora
    assert [n for n, _ in tuned.named_parameters(kind="lora")] == ["predict.lora"]
    (losses,) = optimizer.losses.values()
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert optimizer.search_state["accepted"] == 4
    path = tmp_path / "tuned.json"
    tuned.save(path)  # the tuned program saves its adapter beside the JSON
    assert any(f.endswith(".safetensors") for f in os.listdir(tmp_path))


def test_multitask_false_trains_one_adapter_per_predictor(tiny_lm):
    from textgrad_like.optim.finetune import BootstrapFinetune

    teacher = _with_lm(TwoStep(), DummyLM({"text": {"label": "lost_card"}}))

    def ok(example, pred, trace=None):
        return len(trace) == 2

    kwargs = {"epochs": 1, "batch_size": 4, "r": 2}
    separate = BootstrapFinetune(metric=ok, multitask=False, train_kwargs=kwargs).compile(
        _with_lm(TwoStep(), tiny_lm), trainset=trainset()[:2], teacher=teacher, disable_progress=True)
    assert separate.draft.lora is not separate.check.lora
    assert len(list(separate.named_parameters(kind="lora"))) == 2
    shared = BootstrapFinetune(metric=ok, multitask=True, train_kwargs=kwargs).compile(
        _with_lm(TwoStep(), tiny_lm), trainset=trainset()[:2], teacher=teacher, disable_progress=True)
    assert shared.draft.lora is shared.check.lora


# -- BetterTogether (no model needed) -----------------------------------------------------------------------
class SwapLM:
    """A stand-in optimizer: gives every predictor ``lm`` (or resets it to None, as some optimizers do)."""

    def __init__(self, lm):
        self.lm = lm
        self.calls = 0

    def compile(self, student, trainset, valset=None):
        self.calls += 1
        program = student.deepcopy()
        for p in program.predictors():
            p.lm = self.lm
        return program


def test_better_together_keeps_the_best_candidate():
    from textgrad_like.optim.better_together import BetterTogether

    good, bad = SwapLM(oracle()), SwapLM(DummyLM({"": {"label": "nope"}}))
    student = _with_lm(Classify(), DummyLM({"": {"label": "nope"}}))
    data = trainset() * 3
    optimizer = BetterTogether(metric=exact, prompt_optimizer=good, weight_optimizer=bad, seed=0)
    best = optimizer.compile(student, trainset=data, strategy="p -> w", valset_ratio=0.25)
    assert good.calls == 1 and bad.calls == 1
    assert [(c["strategy"], c["score"]) for c in best.candidate_programs] == [("p", 100.0), ("", 0.0),
                                                                                ("p -> w", 0.0)]
    assert best(text=DATA[0][0]).label == DATA[0][1]
    assert optimizer.search_state["best_strategy"] == "p"


def test_better_together_restores_lms_an_optimizer_reset():
    from textgrad_like.optim.better_together import BetterTogether

    student = _with_lm(Classify(), oracle())
    reset = SwapLM(None)
    best = BetterTogether(metric=exact, prompt_optimizer=reset, weight_optimizer=reset).compile(
        student, trainset=trainset() * 2, valset=trainset(), strategy="p")
    assert best.predict.lm is not None
    assert [c["score"] for c in best.candidate_programs] == [100.0, 100.0]


def test_better_together_rejects_bad_strategy_and_split():
    from textgrad_like.optim.better_together import BetterTogether

    optimizer = BetterTogether(metric=exact, prompt_optimizer=SwapLM(None), weight_optimizer=SwapLM(None))
    with pytest.raises(OptimizerError, match="Unknown strategy"):
        optimizer.compile(Classify(), trainset=trainset(), strategy="p -> x")
    with pytest.raises(OptimizerError, match="valset_ratio"):
        optimizer.compile(Classify(), trainset=trainset(), valset_ratio=1.5)
    with pytest.raises(OptimizerError, match="compile"):
        BetterTogether(metric=exact, prompt_optimizer=object(), weight_optimizer=SwapLM(None))


def test_better_together_default_optimizers():
    from textgrad_like.optim.better_together import BetterTogether
    from textgrad_like.optim.finetune import BootstrapFinetune
    from textgrad_like.optim.random_search import BootstrapFewShotWithRandomSearch

    optimizer = BetterTogether(metric=exact)
    assert isinstance(optimizer.prompt_optimizer, BootstrapFewShotWithRandomSearch)
    assert isinstance(optimizer.weight_optimizer, BootstrapFinetune)


# -- the embedded model ------------------------------------------------------------------------------------
@pytest.mark.integration
def test_bootstrap_finetune_raises_the_metric_on_the_embedded_model(embedded_lm):
    from textgrad_like.adapters import JSONAdapter
    from textgrad_like.datasets.bundled import label_match, load_bundled
    from textgrad_like.optim._calls import evaluate_program
    from textgrad_like.optim.finetune import BootstrapFinetune
    from textgrad_like.signatures import InputField, OutputField, make_signature

    task = load_bundled("classification")
    data = task.train[:8]
    labels = Literal[tuple(task.labels)]  # type: ignore[valid-type]
    signature = make_signature({"text": (str, InputField()), "label": (labels, OutputField())},
                               "Classify the intent of a banking customer's message.")

    class Intent(dspy.Module):
        def __init__(self) -> None:
            self.predict = dspy.Predict(signature)

        def forward(self, text: str) -> dspy.Prediction:
            return self.predict(text=text)

    dspy.configure(adapter=JSONAdapter(use_response_format=True), num_threads=4)
    student = _with_lm(Intent(), embedded_lm)
    teacher = _with_lm(Intent(), DummyLM({ex.text: {"label": ex.label} for ex in data}))
    before = evaluate_program(student, data, label_match, num_threads=4).score
    tuned = BootstrapFinetune(metric=label_match, train_kwargs={"epochs": 3, "lr": 5e-3, "batch_size": 4}).compile(
        student, trainset=data, teacher=teacher)
    after = evaluate_program(tuned, data, label_match, num_threads=4).score
    assert after > before, (before, after)
