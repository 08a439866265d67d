"""GEPA with scripted LMs: Pareto selection, reflection, merge, exact budget, resume from log_dir."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

import textgrad_like as dspy
from tests.test_feedback_bridge import (
    CATS,
    Crash,
    RuleLM,
    TwoStep,
    examples,
    feedback_metric,
    two_step_examples,
    two_step_metric,
)
from textgrad_like.errors import OptimizerError
from textgrad_like.optim.gepa import GEPA
from textgrad_like.optim.gepa_engine import (
    NativeGEPAEngine,
    SearchState,
    auto_budget,
    instance_fronts,
    merge_candidates,
    non_dominated,
    pareto_frequencies,
    select_pareto,
)


class CountingMetric:
    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self.scoring = 0
        self.feedback = 0
        self._lock = threading.Lock()

    def __call__(self, gold, pred, trace=None, pred_name=None, pred_trace=None):
        with self._lock:
            if pred_name is None:
                self.scoring += 1
            else:
                self.feedback += 1
        return self.metric(gold, pred, trace, pred_name, pred_trace)


def run_gepa(lm: RuleLM, **kwargs: Any) -> Any:
    dspy.configure(lm=lm)
    opts = {"max_metric_calls": 100, "reflection_lm": lm, "track_stats": True, "num_threads": 2, **kwargs}
    metric = opts.pop("metric", feedback_metric)
    opt = GEPA(metric, **opts)
    return opt, opt.compile(dspy.Predict("question -> answer"), trainset=examples(0, 12), valset=examples(100, 8))


# --- arguments ---------------------------------------------------------------------------------------------
def test_exactly_one_budget_is_required() -> None:
    with pytest.raises(OptimizerError, match="exactly one"):
        GEPA(feedback_metric)
    with pytest.raises(OptimizerError, match="exactly one"):
        GEPA(feedback_metric, auto="light", max_metric_calls=10)
    with pytest.raises(OptimizerError):
        GEPA(feedback_metric, auto="huge")
    with pytest.raises(OptimizerError):
        GEPA(feedback_metric, auto="light", candidate_selection_strategy="best")
    assert GEPA(feedback_metric, max_full_evals=2)._budget(1, [1] * 5, [1] * 3) == 16
    assert GEPA(feedback_metric, auto="light")._budget(1, [1] * 5, [1] * 3) == auto_budget(1, 6, 3, 3)
    assert auto_budget(1, 6, 10, 3) < auto_budget(1, 18, 10, 3) < auto_budget(3, 18, 10, 3)


def test_budget_smaller_than_one_val_pass_is_refused() -> None:
    with pytest.raises(OptimizerError, match="smaller than one evaluation"):
        run_gepa(RuleLM(), max_metric_calls=5)


# --- Pareto selection ----------------------------------------------------------------------------------------
def test_pareto_front_and_sampling_by_frequency() -> None:
    scores = [
        [0, 0, 0, 0],  # 0: on no front
        [1, 1, 0, 0],  # 1: best on instances 0, 1
        [1, 0, 0, 1],  # 2: best on 0 and 3
        [0, 0, 1, 0],  # 3: only it wins instance 2
        [1, 0, 0, 1],  # 4: same as 2 (one of the two is redundant)
    ]
    fronts = instance_fronts(scores)
    assert fronts == [{1, 2, 4}, {1}, {3}, {2, 4}]
    kept = non_dominated(scores)
    assert 0 not in kept and {1, 3} <= kept and len(kept & {2, 4}) == 1
    freq = pareto_frequencies(scores)
    assert freq[1] == 2 and freq[3] == 1 and sum(freq.values()) == 2 + 1 + 2
    rng = random.Random(0)
    picks = [select_pareto(scores, rng) for _ in range(3000)]
    share = {i: picks.count(i) / len(picks) for i in set(picks)}
    assert set(share) == kept
    assert share[1] == pytest.approx(0.4, abs=0.04) and share[3] == pytest.approx(0.2, abs=0.04)


def test_pareto_keeps_specialists_that_current_best_ignores() -> None:
    _, pareto = run_gepa(RuleLM(), max_metric_calls=200, use_merge=False)
    d = pareto.detailed_results
    assert max(d.val_aggregate_scores) == 1.0
    _, best = run_gepa(RuleLM(), max_metric_calls=200, candidate_selection_strategy="current_best", use_merge=False)
    parents = [p[0] for p in best.detailed_results.parents[1:]]
    means = best.detailed_results.val_aggregate_scores
    assert all(means[p] == max(means[: i + 1]) for i, p in enumerate(parents))  # always the best so far


# --- reflection ------------------------------------------------------------------------------------------------
def test_reflection_evolves_the_instruction_and_reports_stats() -> None:
    lm = RuleLM()
    opt, optimized = run_gepa(lm, max_metric_calls=120)
    d = optimized.detailed_results
    assert all(f"RULE:{c}" in optimized.instruction.value for c in CATS)
    assert d.val_aggregate_scores[0] == 0.0 and max(d.val_aggregate_scores) == 1.0
    assert d.best_candidate.instruction.value == optimized.instruction.value
    assert d.parents[0] == [None] and all(p[0] is not None for p in d.parents[1:])
    assert d.discovery_eval_counts == sorted(d.discovery_eval_counts) and d.discovery_eval_counts[0] == 8
    assert d.pareto_frontier == [d.best_idx]
    assert d.per_val_instance_best_candidates[0] >= {d.best_idx}
    assert len(d.candidates) == len(d.candidate_instructions) == d.num_full_val_evals
    accepted = [e for e in d.iterations if e["event"] == "accepted"]
    assert len(accepted) == len(d.candidates) - 1
    # the reflection prompt saw inputs, outputs and the metric's feedback
    reflection_prompts = [p for p in lm.prompts if "<cases_with_feedback>" in p]
    assert reflection_prompts and "Wrong:" in reflection_prompts[0] and "unknown" in reflection_prompts[0]
    assert opt.state_dict()["total_metric_calls"] == d.total_metric_calls
    assert d.to_dict()["best_idx"] == d.best_idx
    assert len(opt.history) == len(d.candidates)


def test_skip_perfect_score_skips_reflection() -> None:
    lm = RuleLM()
    dspy.configure(lm=lm)
    student = dspy.Predict("question -> answer")
    student.instruction.value = "Answer. " + " ".join(f"RULE:{c}" for c in CATS)
    opt = GEPA(feedback_metric, max_metric_calls=40, reflection_lm=lm, track_stats=True)
    out = opt.compile(student, trainset=examples(0, 12), valset=examples(100, 8))
    events = {e["event"] for e in out.detailed_results.iterations[1:]}
    assert events == {"skip_perfect", "stop"}
    assert not any("<cases_with_feedback>" in p for p in lm.prompts)


def test_feedback_from_backward_builds_the_reflective_dataset() -> None:
    lm = RuleLM()
    dspy.configure(backward_lm=lm)
    _, out = run_gepa(lm, max_metric_calls=60, feedback_source="backward", num_threads=1)
    d = out.detailed_results
    assert max(d.val_aggregate_scores) > 0 and d.feedback_calls == 0
    reflection_prompts = [p for p in lm.prompts if "<cases_with_feedback>" in p]
    assert reflection_prompts and "BACKWARD says:" in reflection_prompts[0]


def test_custom_instruction_proposer() -> None:
    seen = []

    def proposer(candidate, reflective_dataset, components_to_update):
        seen.append((dict(candidate), {k: len(v) for k, v in reflective_dataset.items()}, components_to_update))
        return {"self": candidate["self"] + " " + " ".join(f"RULE:{c}" for c in CATS)}

    lm = RuleLM()
    _, out = run_gepa(lm, max_metric_calls=40, instruction_proposer=proposer)
    assert seen[0][1] == {"self": 3} and seen[0][2] == ["self"]
    assert max(out.detailed_results.val_aggregate_scores) == 1.0


# --- merge ----------------------------------------------------------------------------------------------------
def test_merge_candidates_takes_each_sides_change() -> None:
    rng = random.Random(0)
    anc = {"first": "A", "second": "B", "third": "C"}
    ci = {"first": "A1", "second": "B", "third": "C1"}
    cj = {"first": "A", "second": "B2", "third": "C2"}
    assert merge_candidates(list(anc), ci, cj, anc, 0.6, 0.5, rng) == {"first": "A1", "second": "B2", "third": "C1"}
    assert merge_candidates(list(anc), ci, cj, anc, 0.4, 0.5, rng)["third"] == "C2"


def _engine(lm: RuleLM, budget: int = 200, **kw: Any) -> NativeGEPAEngine:
    dspy.configure(lm=lm)
    args = dict(student=TwoStep(), trainset=two_step_examples(8), valset=two_step_examples(6), metric=two_step_metric,
                max_metric_calls=budget, reflection_lm=lm, instruction_proposer=None, reflection_minibatch_size=2,
                candidate_selection_strategy="pareto", component_selector="round_robin", skip_perfect_score=True,
                perfect_score=1.0, failure_score=0.0, add_format_failure_as_feedback=False, use_merge=True,
                max_merge_invocations=5, merge_subsample_size=4, num_threads=1, feedback_source="metric", seed=0,
                save=None)
    args.update(kw)
    return NativeGEPAEngine(**args)


def test_merge_step_combines_two_branches_from_a_common_ancestor() -> None:
    lm = RuleLM()
    engine = _engine(lm)
    state = engine.new_state()
    seed = engine.seed_candidate()
    c1 = {**seed, "first": seed["first"] + " RULE:fruit RULE:metal"}
    c2 = {**seed, "second": seed["second"] + " RULE:color RULE:animal"}
    state.candidates = [seed, c1, c2]
    state.parents = [[None], [0], [0]]
    state.val_subscores = [[0.0] * 6, [0.5] * 6, [0.5] * 6]
    state.val_subscores[1][0] = 0.6  # make 1 and 2 each best somewhere
    state.val_subscores[2][1] = 0.6
    state.discovery_eval_counts = [6, 20, 34]
    state.component_cursor = [2, 1, 1]
    state.total_metric_calls = 34
    state.merges_due = 1
    event = engine.step(state)
    assert event["event"] == "merge_accepted" and event["parents"] == [1, 2] and event["ancestor"] == 0
    merged = state.candidates[-1]
    assert merged == {"first": c1["first"], "second": c2["second"]}
    assert state.parents[-1] == [1, 2]
    assert state.val_subscores[-1] == [1.0] * 6
    assert state.total_metric_calls == 34 + 6  # subsample + the rest = one validation pass
    assert state.merges_due == 0 and state.merge_invocations == 1
    # the same triplet is not tried twice
    state.merges_due = 1
    assert engine.find_merge(state) is None or engine.find_merge(state)[:2] != (1, 2)


def _specialising_proposer(candidate, reflective_dataset, components_to_update):
    """Writes the first rule the feedback asks for and drops the old one: branches, not one chain."""
    import re

    out = {}
    for name in components_to_update:
        cats = re.findall(r"RULE:(\w+)", " ".join(r["Feedback"] for r in reflective_dataset[name]))
        if cats:
            out[name] = f"{candidate[name].split(' RULE:')[0]} RULE:{cats[0]}"
    return out


def test_merge_is_attempted_in_a_full_run_with_two_predictors() -> None:
    from textgrad_like.optim.gepa_engine import ancestors

    lm = RuleLM()
    dspy.configure(lm=lm)
    metric = CountingMetric(two_step_metric)
    opt = GEPA(metric, max_metric_calls=150, reflection_lm=lm, track_stats=True, reflection_minibatch_size=2,
               num_threads=1, seed=6, instruction_proposer=_specialising_proposer)
    out = opt.compile(TwoStep(), trainset=two_step_examples(8), valset=two_step_examples(6))
    d = out.detailed_results
    merges = [e for e in d.iterations if e["event"].startswith("merge")]
    assert merges
    for e in merges:
        i, j = e["parents"]
        assert e["ancestor"] in ancestors(d.parents, i) & ancestors(d.parents, j)
        assert i not in ancestors(d.parents, j) and j not in ancestors(d.parents, i)
    assert metric.scoring == d.total_metric_calls <= 150
    assert metric.feedback == d.feedback_calls


# --- budget ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("budget", [8, 21, 22, 35, 57, 100])
def test_max_metric_calls_is_respected_exactly(budget: int) -> None:
    metric = CountingMetric(feedback_metric)
    _, out = run_gepa(RuleLM(), max_metric_calls=budget, metric=metric)
    d = out.detailed_results
    assert metric.scoring == d.total_metric_calls <= budget
    assert metric.feedback == d.feedback_calls
    assert d.stop_reason == "budget"
    # stopped only because one more iteration (two minibatches and a validation pass) would not fit
    assert d.total_metric_calls + 2 * 3 + 8 > budget


# --- resume ---------------------------------------------------------------------------------------------------
def test_resume_from_log_dir_repeats_no_lm_call(tmp_path: Any) -> None:
    reference_lm = RuleLM()  # an uninterrupted run (its journal also answers prompts repeated within the run)
    _, reference = run_gepa(reference_lm, max_metric_calls=100, num_threads=1, log_dir=str(tmp_path / "ref"))
    total_calls = reference_lm.calls

    log_dir = str(tmp_path / "run")
    first = RuleLM(crash_after=total_calls // 2)
    with pytest.raises(Crash):
        run_gepa(first, max_metric_calls=100, log_dir=log_dir, num_threads=1)
    made_before_kill = set(first.prompts[:-1])  # the last prompt raised instead of being answered
    assert 0 < len(made_before_kill) < total_calls

    second = RuleLM()
    _, resumed = run_gepa(second, max_metric_calls=100, log_dir=log_dir, num_threads=1)
    assert not made_before_kill & set(second.prompts), "a paid call was made again"
    assert first.calls - 1 + second.calls == total_calls
    d, ref = resumed.detailed_results, reference.detailed_results
    assert d.candidate_instructions == ref.candidate_instructions
    assert d.val_subscores == ref.val_subscores and d.parents == ref.parents
    assert d.total_metric_calls == ref.total_metric_calls
    assert resumed.instruction.value == reference.instruction.value

    third = RuleLM()  # a finished run: nothing left to do, nothing called
    _, again = run_gepa(third, max_metric_calls=100, log_dir=log_dir, num_threads=1)
    assert third.calls == 0 and again.instruction.value == reference.instruction.value


def test_log_dir_of_another_run_is_refused(tmp_path: Any) -> None:
    log_dir = str(tmp_path / "run")
    run_gepa(RuleLM(), max_metric_calls=30, log_dir=log_dir)
    dspy.configure(lm=RuleLM())
    opt = GEPA(feedback_metric, max_metric_calls=30, reflection_lm=RuleLM(), log_dir=log_dir)
    with pytest.raises(OptimizerError, match="another program or dataset"):
        opt.compile(dspy.Predict("question -> answer"), trainset=examples(0, 5), valset=examples(100, 8))


def test_state_round_trips_through_json() -> None:
    import json

    engine = _engine(RuleLM(), budget=40)
    state = engine.run(engine.new_state())
    restored = SearchState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored == state


def test_gepa_package_engine_runs_the_same_search() -> None:
    pytest.importorskip("gepa")
    metric = CountingMetric(feedback_metric)
    _, out = run_gepa(RuleLM(), max_metric_calls=60, engine="gepa", metric=metric, num_threads=1)
    d = out.detailed_results
    assert max(d.val_aggregate_scores) > 0
    assert d.total_metric_calls == metric.scoring


def test_detailed_results_have_dspys_attribute_names_and_shapes() -> None:
    from textgrad_like.teleprompt.gepa.gepa import DspyGEPAResult

    _, optimized = run_gepa(RuleLM(), max_metric_calls=60)
    d = optimized.detailed_results
    assert isinstance(d, DspyGEPAResult)
    for name in ("candidates", "parents", "val_aggregate_scores", "val_subscores", "per_val_instance_best_candidates",
                 "discovery_eval_counts", "best_outputs_valset", "total_metric_calls", "num_full_val_evals", "log_dir",
                 "seed", "val_aggregate_subscores", "per_objective_best_candidates", "objective_pareto_front",
                 "best_idx", "best_candidate", "highest_score_achieved_per_val_task"):
        assert hasattr(d, name), name
    # DSPy keys the per-instance data by validation index: a dict per candidate, a dict of sets
    assert all(isinstance(s, dict) and sorted(s) == list(range(8)) for s in d.val_subscores)
    assert sorted(d.per_val_instance_best_candidates) == list(range(8))
    assert all(isinstance(v, set) for v in d.per_val_instance_best_candidates.values())
    best = d.highest_score_achieved_per_val_task
    assert sorted(best) == list(range(8))
    assert all(best[j] == max(s[j] for s in d.val_subscores) for j in best)
    assert d.best_candidate is d.candidates[d.best_idx]
