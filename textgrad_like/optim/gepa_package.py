"""``GEPA(..., engine="gepa")``: the same search driven by the installed ``gepa`` package.

Our pieces do the work — rollouts under ``record()``, metric feedback turned into ``Gradient`` items,
the reflective dataset built from them, our reflection prompt — and the package's engine does the
selection, acceptance, merge and budget bookkeeping. Kept for comparison with the native loop (see
the module docstring of :mod:`textgrad_like.optim.gepa`); ``log_dir`` is passed to the package as its
``run_dir`` (its own pickle-based resume), and the package may pass ``max_metric_calls`` by up to
one iteration.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import ConfigurationError
from .feedback import gradients_from_rollouts, reflective_dataset_from_gradients, run_rollouts
from .gepa_engine import NativeGEPAEngine, SearchState, fingerprint

logger = logging.getLogger(__name__)


class _QuietLogger:
    """Sends the package's progress lines to this module's logger instead of stdout."""

    def log(self, message: str) -> None:
        logger.debug("gepa: %s", message)


class _Adapter:
    def __init__(self, engine: NativeGEPAEngine, counter: dict[str, int]) -> None:
        self.engine = engine
        self.counter = counter

    def evaluate(self, batch: list[Any], candidate: dict[str, str], capture_traces: bool = False) -> Any:
        from gepa import EvaluationBatch

        program = self.engine.program(candidate)

        def bump() -> None:
            self.counter["metric_calls"] += 1

        rollouts = run_rollouts(program, batch, self.engine.metric, num_threads=self.engine.num_threads,
                                failure_score=self.engine.failure_score, on_metric_call=bump)
        return EvaluationBatch(outputs=[r.prediction for r in rollouts], scores=[r.score for r in rollouts],
                               trajectories=[(program, r) for r in rollouts] if capture_traces else None)

    def make_reflective_dataset(self, candidate: dict[str, str], eval_batch: Any,
                                components_to_update: list[str]) -> dict[str, list[dict[str, Any]]]:
        trajectories = eval_batch.trajectories or []
        if not trajectories:
            return {}
        program = trajectories[0][0]

        def bump() -> None:
            self.counter["feedback_calls"] += 1

        gradients_from_rollouts(program, [r for _, r in trajectories], self.engine.metric,
                                predictor_names=components_to_update,
                                add_format_failure_as_feedback=self.engine.add_format_failure_as_feedback,
                                on_feedback_call=bump)
        return reflective_dataset_from_gradients(program, components_to_update)

    def propose_new_texts(self, candidate: dict[str, str], reflective_dataset: dict[str, list[dict[str, Any]]],
                          components_to_update: list[str]) -> dict[str, str]:
        updates = self.engine.propose(candidate, reflective_dataset, components_to_update)
        return {**{k: candidate[k] for k in components_to_update}, **updates}


def run_with_gepa_package(opt: Any, student: Any, trainset: list[Any], valset: list[Any], budget: int,
                          reflection_lm: Any) -> SearchState:
    try:
        import gepa
    except ImportError as exc:
        raise ConfigurationError("engine='gepa' needs the gepa package: pip install gepa "
                                 "(or use the default engine='native').") from exc
    engine = NativeGEPAEngine(
        student=student, trainset=trainset, valset=valset, metric=opt.metric, max_metric_calls=budget,
        reflection_lm=reflection_lm, instruction_proposer=opt.instruction_proposer,
        reflection_minibatch_size=opt.reflection_minibatch_size,
        candidate_selection_strategy=opt.candidate_selection_strategy, component_selector=opt.component_selector,
        skip_perfect_score=opt.skip_perfect_score, perfect_score=opt.perfect_score, failure_score=opt.failure_score,
        add_format_failure_as_feedback=opt.add_format_failure_as_feedback, use_merge=opt.use_merge,
        max_merge_invocations=opt.max_merge_invocations, merge_subsample_size=opt.merge_subsample_size,
        num_threads=opt.num_threads, feedback_source="metric", seed=opt.seed or 0, save=None)
    counter = {"metric_calls": 0, "feedback_calls": 0}
    seed_candidate = engine.seed_candidate()
    result = gepa.optimize(
        seed_candidate=seed_candidate, trainset=trainset, valset=valset, adapter=_Adapter(engine, counter),
        candidate_selection_strategy=opt.candidate_selection_strategy, skip_perfect_score=opt.skip_perfect_score,
        reflection_minibatch_size=min(opt.reflection_minibatch_size, len(trainset)), perfect_score=opt.perfect_score,
        module_selector=opt.component_selector, use_merge=opt.use_merge,
        max_merge_invocations=opt.max_merge_invocations, max_metric_calls=budget, run_dir=opt.log_dir,
        seed=opt.seed or 0, raise_on_exception=True, logger=_QuietLogger(), display_progress_bar=False, **opt.gepa_kwargs)
    n_val = len(valset)
    state = SearchState(fingerprint=fingerprint(engine.names, seed_candidate, trainset, valset),
                        predictor_names=list(engine.names))
    state.candidates = [dict(c) for c in result.candidates]
    state.parents = [list(p) for p in result.parents]
    state.val_subscores = [[float(sub.get(k, 0.0)) for k in range(n_val)] for sub in result.val_subscores]
    state.discovery_eval_counts = list(result.discovery_eval_counts)
    state.total_metric_calls = counter["metric_calls"]
    state.feedback_calls = counter["feedback_calls"]
    state.num_full_val_evals = int(result.num_full_val_evals or 0)
    state.proposals = engine.screen.stats()
    state.done = True
    state.stop_reason = "budget"
    return state
