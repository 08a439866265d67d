"""Weights as a small model's lever: gold-label fine-tuning, early stopping, a validated settings search,
BetterTogether choosing its order, and the offline tabular/counting tasks of the learning benchmark."""

from __future__ import annotations

import os
import sys
from collections import Counter

import pytest

import textgrad_like as dspy
from textgrad_like.errors import OptimizerError
from textgrad_like.lm import LM
from textgrad_like.primitives import Example

sys.path.insert(0, os.path.dirname(__file__))
from test_constrained import build_tiny_model_dir  # noqa: E402
from test_finetune import DATA, Classify, SwapLM, TwoStep, _with_lm, exact, oracle, trainset  # noqa: E402  # noqa: E402


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    path = build_tiny_model_dir(str(tmp_path_factory.mktemp("tiny-levers")), max_positions=4096)
    return LM(f"local/{path}", temperature=0.0, max_tokens=6)


# -- bundled tasks ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "field", "sizes"), [
    ("wine", "label", (40, 48, 90)), ("breast_cancer", "label", (40, 60, 90)), ("counting", "count", (60, 30, 90)),
])
def test_learning_tasks_ship_offline_with_disjoint_splits(name, field, sizes):
    task = dspy.datasets.load_bundled(name)
    assert (len(task.train), len(task.dev), len(task.test)) == sizes
    texts = [tuple(sorted(ex.inputs().items())) for ex in task.train + task.dev + task.test]
    assert len(set(texts)) == len(texts)  # no example is in two splits
    assert all(field in ex.labels() for ex in task.test)
    if task.labels:  # stratified: every label is in every split
        for split in (task.train, task.dev, task.test):
            assert set(Counter(ex.label for ex in split)) == set(task.labels)


def test_count_match_reads_integers():
    from textgrad_like.datasets import count_match

    gold = Example(words="fig, fig", word="fig", count="2")
    assert count_match(gold, dspy.Prediction(count=2)) and count_match(gold, dspy.Prediction(count=" 2 "))
    assert not count_match(gold, dspy.Prediction(count="two")) and not count_match(gold, dspy.Prediction(count=3))


# -- gold targets ---------------------------------------------------------------------------------------------
def test_gold_targets_train_on_labels_with_no_teacher_call(tiny_lm):
    from textgrad_like.optim.finetune import BootstrapFinetune

    calls_before = len(tiny_lm.history)
    optimizer = BootstrapFinetune(targets="gold", train_kwargs={"epochs": 2, "lr": 2e-2, "batch_size": 2, "r": 4})
    tuned = optimizer.compile(_with_lm(Classify(), tiny_lm), trainset=trainset(), disable_progress=True)
    assert len(tiny_lm.history) == calls_before  # no teacher run: the records are the gold labels
    assert optimizer.search_state["accepted"] == len(DATA) and optimizer.search_state["targets"] == "gold"
    (losses,) = optimizer.losses.values()
    assert len(losses) == 4
    assert tuned.predict.lora is not None


def test_gold_targets_refuse_a_teacher_and_uncovered_programs(tiny_lm):
    from textgrad_like.optim.finetune import BootstrapFinetune

    with pytest.raises(OptimizerError, match="takes no teacher"):
        BootstrapFinetune(targets="gold").compile(_with_lm(Classify(), tiny_lm), trainset=trainset(),
                                                  teacher=_with_lm(Classify(), oracle()))
    unlabeled = [Example(text=t, other=y).with_inputs("text") for t, y in DATA]
    with pytest.raises(OptimizerError, match="no predictor has all its input and output fields"):
        BootstrapFinetune(targets="gold").compile(_with_lm(Classify(), tiny_lm), trainset=unlabeled)
    # a two-step program: only the step whose fields are all in the examples is trained
    optimizer = BootstrapFinetune(targets="gold", multitask=False, train_kwargs={"epochs": 1, "r": 2})
    tuned = optimizer.compile(_with_lm(TwoStep(), tiny_lm), trainset=trainset(), disable_progress=True)
    assert getattr(tuned.draft, "lora", None) is not None and getattr(tuned.check, "lora", None) is None


def test_finetune_validates_its_new_arguments():
    from textgrad_like.optim.finetune import BootstrapFinetune

    with pytest.raises(ValueError, match="targets"):
        BootstrapFinetune(targets="labels")
    with pytest.raises(ValueError, match="early_stopping"):
        BootstrapFinetune(early_stopping=0)


def test_early_stopping_keeps_the_best_epoch(tiny_lm):
    from textgrad_like.optim.finetune import BootstrapFinetune

    optimizer = BootstrapFinetune(metric=exact, targets="gold", early_stopping=1,
                                  train_kwargs={"epochs": 4, "lr": 2e-2, "batch_size": 4, "r": 4})
    with pytest.raises(OptimizerError, match="valset"):
        optimizer.compile(_with_lm(Classify(), tiny_lm), trainset=trainset(), disable_progress=True)
    tuned = optimizer.compile(_with_lm(Classify(), tiny_lm), trainset=trainset(), valset=trainset(),
                              disable_progress=True)
    (validation,) = optimizer.search_state["validation"].values()
    scores = validation["scores"]
    assert 1 <= len(scores) <= 4
    assert validation["best_score"] == max(scores) and scores[validation["best_epoch"] - 1] == max(scores)
    if len(scores) < 4:  # it stopped early because an epoch brought no gain
        assert scores[-1] <= validation["best_score"]
    assert tuned.predict.lora is not None


def test_search_finetune_keeps_the_best_trial(tiny_lm):
    from textgrad_like.optim.finetune_search import search_finetune

    with pytest.raises(ValueError, match="n_trials"):
        search_finetune(Classify(), trainset(), trainset(), exact, n_trials=0)
    with pytest.raises(OptimizerError, match="valset"):
        search_finetune(Classify(), trainset(), [], exact)
    result = search_finetune(_with_lm(Classify(), tiny_lm), trainset(), trainset(), exact, n_trials=2,
                             search_space={"epochs": (1, 2), "r": (2, 4)}, train_kwargs={"batch_size": 4})
    assert len(result.trials) == 2 and len(result.study.trials) == 2
    assert result.score == max(score for _, score in result.trials)
    assert result.train_kwargs["r"] in (2, 4) and result.program.predict.lora is not None


# -- BetterTogether picks its order -----------------------------------------------------------------------
def test_better_together_auto_tries_both_orders_and_keeps_the_best():
    from textgrad_like.optim.better_together import BetterTogether

    good, bad = SwapLM(oracle()), SwapLM(dspy.utils.DummyLM({"": {"label": "nope"}}))
    student = _with_lm(Classify(), dspy.utils.DummyLM({"": {"label": "nope"}}))
    optimizer = BetterTogether(metric=exact, prompt_optimizer=bad, weight_optimizer=good, seed=0)
    best = optimizer.compile(student, trainset=trainset() * 3, valset=trainset(), strategy="auto")
    assert good.calls == 2 and bad.calls == 2  # both orders ran, each from the student
    strategies = [s for s, _ in optimizer.search_state["scores"]]
    assert strategies == ["", "p", "p -> w", "w", "w -> p"]
    assert optimizer.search_state["best_strategy"] in ("p -> w", "w")
    assert best(text=DATA[0][0]).label == DATA[0][1]
    with pytest.raises(OptimizerError, match="valset"):
        optimizer.compile(student, trainset=trainset() * 3, strategy="auto", valset_ratio=0)


def test_better_together_gold_targets_reach_the_default_weight_step():
    from textgrad_like.optim.better_together import BetterTogether

    assert BetterTogether(metric=exact, targets="gold").weight_optimizer.targets == "gold"
    assert BetterTogether(metric=exact).weight_optimizer.targets == "teacher"
