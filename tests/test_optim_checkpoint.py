"""Kill a run mid-way (an exception from the LM), resume from checkpoint_dir, and check that no LM
call that was already paid for is made again and that the result equals an uninterrupted run."""

from __future__ import annotations

import json

import pytest

import textgrad_like as dspy
from tests.test_optim_mipro import RoutedLM, data, exact
from textgrad_like.optim.mipro import MIPROv2
from textgrad_like.optim.random_search import BootstrapRS


class Crash(BaseException):
    """Stands for the process being killed (not an ordinary failure the executor would count)."""


class CountingLM(RoutedLM):
    def __init__(self, crash_after: int | None = None) -> None:
        super().__init__()
        self.crash_after = crash_after
        self.generated: list[str] = []

    def _generate(self, messages, **kwargs):
        if self.crash_after is not None and len(self.generated) >= self.crash_after:
            raise Crash(f"killed after {self.crash_after} calls")
        response = super()._generate(messages, **kwargs)
        self.generated.append(json.dumps([messages, sorted(kwargs.items())], sort_keys=True, default=str))
        return response


def run_rs(lm, ckpt):
    dspy.configure(lm=lm)
    opt = BootstrapRS(metric=exact, max_bootstrapped_demos=2, max_labeled_demos=3, num_candidate_programs=3,
                      num_threads=2)
    best = opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 20), valset=data(20, 28),
                       checkpoint_dir=ckpt)
    return best, opt


def run_mipro(lm, ckpt, minibatch=False):
    dspy.configure(lm=lm)
    opt = MIPROv2(metric=exact, auto=None, num_candidates=4, max_bootstrapped_demos=2, max_labeled_demos=2,
                  num_threads=2, seed=5)
    best = opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 20), valset=data(20, 32), num_trials=6,
                       minibatch=minibatch, minibatch_size=6, minibatch_full_eval_steps=2, checkpoint_dir=ckpt)
    return best, opt


@pytest.mark.parametrize("crash_after", [3, 25, 50])
def test_bootstrap_rs_resumes_without_repeating_calls(tmp_path, crash_after):
    reference, ref_opt = run_rs(CountingLM(), str(tmp_path / "ref"))
    first = CountingLM(crash_after=crash_after)
    with pytest.raises(Crash):
        run_rs(first, str(tmp_path / "ckpt"))
    second = CountingLM()
    best, opt = run_rs(second, str(tmp_path / "ckpt"))
    assert not set(first.generated) & set(second.generated)
    assert best.state_dict() == reference.state_dict()
    assert [c["score"] for c in opt.state_dict()["candidates"]] == [c["score"] for c in ref_opt.state_dict()["candidates"]]
    assert opt.history.column("score") == ref_opt.history.column("score")
    assert opt.history.rows[-1]["lm_calls"] >= len(first.generated)


@pytest.mark.parametrize(("crash_after", "minibatch"), [(4, False), (40, False), (45, True), (60, True), (65, False)])
def test_mipro_resumes_without_repeating_calls(tmp_path, crash_after, minibatch):
    counting = CountingLM()
    reference, ref_opt = run_mipro(counting, str(tmp_path / "ref"), minibatch)
    assert len(counting.generated) > crash_after  # the crash really happens mid-run
    first = CountingLM(crash_after=crash_after)
    with pytest.raises(Crash):
        run_mipro(first, str(tmp_path / "ckpt"), minibatch)
    second = CountingLM()
    best, opt = run_mipro(second, str(tmp_path / "ckpt"), minibatch)
    assert not set(first.generated) & set(second.generated)
    assert best.state_dict() == reference.state_dict()
    assert opt.state_dict()["events"] == ref_opt.state_dict()["events"]
    assert opt.history.rows[-1]["best_so_far"] == ref_opt.history.rows[-1]["best_so_far"]


def test_mipro_checkpoint_refuses_other_settings(tmp_path):
    run_mipro(CountingLM(), str(tmp_path / "c"))
    dspy.configure(lm=CountingLM())
    opt = MIPROv2(metric=exact, auto=None, num_candidates=4, max_bootstrapped_demos=2, max_labeled_demos=2, seed=6)
    with pytest.raises(dspy.errors.OptimizerError, match="other settings"):
        opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 20), valset=data(20, 32), num_trials=6,
                    minibatch=False, checkpoint_dir=str(tmp_path / "c"))


def test_finished_run_resumes_with_zero_calls(tmp_path):
    run_mipro(CountingLM(), str(tmp_path / "c"))
    again = CountingLM()
    run_mipro(again, str(tmp_path / "c"))
    assert again.generated == []
