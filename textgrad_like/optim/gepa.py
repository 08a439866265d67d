"""``GEPA``: reflective prompt evolution with a Pareto-frontier candidate pool (DSPy's interface).

``GEPA(metric, auto="light", reflection_lm=lm).compile(student, trainset=..., valset=...)`` evolves
the instruction of each predictor. Each iteration picks a candidate (sampled by how many
validation instances it is best on, among candidates on the Pareto frontier — or the current best),
runs it on a training minibatch under :func:`~textgrad_like.nn.record`, turns the metric's
per-predictor feedback into textual gradients (:mod:`textgrad_like.optim.feedback`, the same
``Gradient`` items ``loss.backward()`` writes), builds the reflective dataset from them and asks the
reflection LM for a new instruction. A proposal that beats its parent on the minibatch is scored on
the whole validation set and joins the pool. With ``use_merge`` two candidates that improved
different predictors from a common ancestor are merged predictor by predictor.

Engine choice, by measurement. The installed ``gepa`` package can drive the same search through an
adapter (``engine="gepa"``, :mod:`~textgrad_like.optim.gepa_package`); the native loop in
:mod:`~textgrad_like.optim.gepa_engine` is the default. Measured on the scripted four-category task
of ``tests/test_gepa.py`` (8 validation / 12 training examples, minibatch 3), both engines find each
improved candidate at the same metric-call count (the search is the same: 1.0 validation score
after 64 calls), so score per metric call is equal; but the package passes ``max_metric_calls``
(budgets 30 / 45 / 60 were spent as 36 / 50 / 64 calls: it checks the budget between iterations),
while the native loop never does (22 / 36 / 50). Only the native loop also (a) resumes from
``log_dir`` through the call journal of :func:`~textgrad_like.optim.checkpoint.maybe_checkpoint`
from JSON state (no pickle), making no LM call twice, and (b) can take its feedback from
``loss.backward()`` (``feedback_source="backward"``), and (c) spends nothing on a rejected proposal: both
engines screen each proposed instruction (a label name, a copy of an input or of the current
instruction, empty text: counted in ``search_state["proposals"]``), but the package still runs the
unchanged candidate on its minibatch. Hence native by default; the package stays optional.

A proposal is run on the parent's training minibatch first and scored on the whole validation set only
if it beats the parent there. When no candidate beats the seed program on the validation set, a
WARNING says so and the seed program is returned (``search_state["instruction_improved"] = False``).
The reflection prompt is :class:`~textgrad_like.prompts.ReflectOnInstruction`; pass a subclass as
``reflection_signature=`` (or set the class attribute) to change it. ``reflection_lm`` writes the
proposals only; the program runs with its own or the configured LM. ``benchmarks/reflective.py --compare-engines`` repeats the comparison with the embedded model.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import prompts
from ..errors import OptimizerError
from ..settings import settings
from .checkpoint import maybe_checkpoint
from .gepa_engine import NativeGEPAEngine, SearchState, auto_budget, instance_fronts, non_dominated
from .screening import InstructionScreen
from .teleprompter import ModuleT, Teleprompter

logger = logging.getLogger(__name__)

__all__ = ["GEPA", "GEPADetailedResults", "AUTO_RUN_SETTINGS"]

AUTO_RUN_SETTINGS = {"light": {"n": 6}, "medium": {"n": 12}, "heavy": {"n": 18}}


@dataclass
class GEPADetailedResults:
    """What ``track_stats=True`` attaches to the optimized program as ``detailed_results``.

    DSPy's ``DspyGEPAResult`` attributes with their shapes: ``candidates`` (programs), ``parents``,
    ``val_aggregate_scores``, ``val_subscores`` (per candidate, ``{val index: score}``),
    ``per_val_instance_best_candidates`` (``{val index: {candidate indices}}``), ``discovery_eval_counts``,
    ``best_outputs_valset``, ``total_metric_calls``, ``num_full_val_evals``, ``log_dir``, ``seed``, the
    multi-objective fields (``None``: one objective here), ``best_idx``, ``best_candidate``,
    ``highest_score_achieved_per_val_task``. Ours besides: ``candidate_instructions``, ``pareto_frontier``,
    ``feedback_calls``, ``iterations`` (the run's event log) and ``stop_reason``.
    """

    candidates: list[Any]
    parents: list[list[int | None]]
    val_aggregate_scores: list[float]
    val_subscores: list[dict[int, float]]
    per_val_instance_best_candidates: dict[int, set[int]]
    discovery_eval_counts: list[int]
    best_outputs_valset: dict[int, list[tuple[int, Any]]] | None = None
    total_metric_calls: int | None = None
    num_full_val_evals: int | None = None
    log_dir: str | None = None
    seed: int | None = None
    val_aggregate_subscores: list[dict[str, float]] | None = None
    per_objective_best_candidates: dict[str, set[int]] | None = None
    objective_pareto_front: dict[str, float] | None = None
    candidate_instructions: list[dict[str, str]] = field(default_factory=list)
    pareto_frontier: list[int] = field(default_factory=list)
    feedback_calls: int = 0
    iterations: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = ""

    @property
    def best_idx(self) -> int:
        scores = self.val_aggregate_scores
        return max(range(len(scores)), key=lambda i: (scores[i], -i))

    @property
    def best_candidate(self) -> Any:
        return self.candidates[self.best_idx]

    @property
    def highest_score_achieved_per_val_task(self) -> dict[int, float]:
        return {j: max(s[j] for s in self.val_subscores) for j in self.per_val_instance_best_candidates}

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidates": self.candidate_instructions, "parents": self.parents,
            "val_aggregate_scores": self.val_aggregate_scores, "val_subscores": self.val_subscores,
            "per_val_instance_best_candidates": {k: sorted(s) for k, s in self.per_val_instance_best_candidates.items()},
            "pareto_frontier": self.pareto_frontier, "discovery_eval_counts": self.discovery_eval_counts,
            "total_metric_calls": self.total_metric_calls, "feedback_calls": self.feedback_calls,
            "num_full_val_evals": self.num_full_val_evals, "log_dir": self.log_dir, "seed": self.seed,
            "best_idx": self.best_idx, "stop_reason": self.stop_reason,
        }


class GEPA(Teleprompter):
    """Reflective evolution of predictor instructions. Exactly one of ``auto`` ("light", "medium",
    "heavy"), ``max_full_evals`` or ``max_metric_calls`` sets the budget (in metric calls: one per
    example run and scored).

    The metric is ``metric(gold, pred, trace=None, pred_name=None, pred_trace=None)`` returning a
    float or ``Prediction(score=..., feedback=...)``; plain DSPy metrics work too (feedback is then
    written from the gold labels). ``reflection_lm`` defaults to ``settings.backward_lm`` or ``settings.lm``.

    Extra options: ``instruction_proposer(candidate=, reflective_dataset=, components_to_update=)``
    replaces the reflection LM call; ``component_selector`` is "round_robin" or "all";
    ``feedback_source="backward"`` takes the reflective dataset from ``loss.backward()`` gradients
    instead of per-predictor metric calls; ``engine="gepa"`` runs the installed ``gepa`` package;
    ``reflection_signature`` replaces the reflection prompt (a subclass of ``prompts.ReflectOnInstruction``).
    """

    reflection_signature: Any = prompts.ReflectOnInstruction

    def __init__(self, metric: Callable[..., Any], *, auto: Literal["light", "medium", "heavy"] | None = None,
                 max_full_evals: int | None = None, max_metric_calls: int | None = None,
                 reflection_minibatch_size: int = 3,
                 candidate_selection_strategy: Literal["pareto", "current_best"] = "pareto",
                 reflection_lm: Any = None, skip_perfect_score: bool = True,
                 add_format_failure_as_feedback: bool = False,
                 instruction_proposer: Callable[..., Any] | None = None,
                 component_selector: Literal["round_robin", "all"] = "round_robin",
                 use_merge: bool = True, max_merge_invocations: int | None = 5, merge_subsample_size: int = 5,
                 num_threads: int | None = None, failure_score: float = 0.0, perfect_score: float = 1.0,
                 log_dir: str | None = None, track_stats: bool = False, track_best_outputs: bool = False,
                 feedback_source: Literal["metric", "backward"] = "metric",
                 engine: Literal["native", "gepa"] = "native", seed: int | None = 0,
                 reflection_signature: Any = None, **kwargs: Any) -> None:
        super().__init__()
        self.reflection_signature = prompts.check_override(reflection_signature, type(self).reflection_signature,
                                                           "reflection_signature")
        if metric is None or not callable(metric):
            raise OptimizerError("GEPA needs a metric: metric(gold, pred, trace, pred_name, pred_trace) -> float or "
                                 "Prediction(score=..., feedback=...).")
        chosen = (auto is not None) + (max_full_evals is not None) + (max_metric_calls is not None)
        if chosen != 1:
            raise OptimizerError(
                "GEPA needs exactly one of auto=, max_full_evals=, max_metric_calls= to set its budget; got "
                f"auto={auto!r}, max_full_evals={max_full_evals!r}, max_metric_calls={max_metric_calls!r}.")
        if auto is not None and auto not in AUTO_RUN_SETTINGS:
            raise OptimizerError(f"auto must be one of {sorted(AUTO_RUN_SETTINGS)}, got {auto!r}.")
        if candidate_selection_strategy not in ("pareto", "current_best"):
            raise OptimizerError("candidate_selection_strategy must be 'pareto' or 'current_best'.")
        if component_selector not in ("round_robin", "all"):
            raise OptimizerError("component_selector must be 'round_robin' or 'all'.")
        if feedback_source not in ("metric", "backward"):
            raise OptimizerError("feedback_source must be 'metric' or 'backward'.")
        if engine not in ("native", "gepa"):
            raise OptimizerError("engine must be 'native' or 'gepa'.")
        if max_metric_calls is not None and int(max_metric_calls) < 1:
            raise OptimizerError("max_metric_calls must be a positive number of metric calls.")
        if max_full_evals is not None and int(max_full_evals) < 1:
            raise OptimizerError("max_full_evals must be at least 1.")
        if reflection_minibatch_size < 1:
            raise OptimizerError("reflection_minibatch_size must be at least 1.")
        if track_best_outputs and not track_stats:
            raise OptimizerError("track_best_outputs=True needs track_stats=True.")
        if track_best_outputs:
            logger.warning("GEPA: track_best_outputs=True is accepted, but the best outputs per validation example are "
                           "not recorded: detailed_results.best_outputs_valset stays None. Re-run the best candidate "
                           "(detailed_results.best_candidate) on the valset to see its outputs.")
        unknown = set(kwargs) - {"use_wandb", "wandb_api_key", "wandb_init_kwargs", "warn_on_score_mismatch",
                                 "use_mlflow", "gepa_kwargs"}
        if unknown:
            raise OptimizerError(f"GEPA got unknown argument(s) {sorted(unknown)}.")
        self.metric = metric
        self.metric_fn = metric
        self.auto = auto
        self.max_full_evals = max_full_evals
        self.max_metric_calls = max_metric_calls
        self.reflection_minibatch_size = int(reflection_minibatch_size)
        self.candidate_selection_strategy = candidate_selection_strategy
        self.reflection_lm = reflection_lm
        self.skip_perfect_score = skip_perfect_score
        self.add_format_failure_as_feedback = add_format_failure_as_feedback
        self.instruction_proposer = instruction_proposer
        self.component_selector = component_selector
        self.use_merge = use_merge
        self.max_merge_invocations = int(max_merge_invocations or 0)
        self.merge_subsample_size = int(merge_subsample_size)
        self.num_threads = num_threads
        self.failure_score = float(failure_score)
        self.perfect_score = float(perfect_score)
        self.log_dir = log_dir
        self.track_stats = track_stats
        self.track_best_outputs = track_best_outputs
        self.feedback_source = feedback_source
        self.engine = engine
        self.seed = seed
        self.gepa_kwargs = dict(kwargs.get("gepa_kwargs") or {})

    # --- budget ---------------------------------------------------------------------------------------
    def auto_budget(self, num_preds: int, num_candidates: int, valset_size: int, minibatch_size: int = 3) -> int:
        return auto_budget(num_preds, num_candidates, valset_size, minibatch_size)

    def _budget(self, num_preds: int, trainset: list[Any], valset: list[Any] | None) -> int:
        if self.auto is not None:
            return self.auto_budget(max(num_preds, 1), AUTO_RUN_SETTINGS[self.auto]["n"],
                                    len(valset if valset is not None else trainset), self.reflection_minibatch_size)
        if self.max_full_evals is not None:
            return int(self.max_full_evals) * (len(trainset) + (len(valset) if valset is not None else 0))
        return int(self.max_metric_calls or 0)

    # --- compile ----------------------------------------------------------------------------------------
    def compile(self, student: ModuleT, *, trainset: list[Any], teacher: Any = None, valset: list[Any] | None = None,
                **kwargs: Any) -> ModuleT:
        if not trainset:
            raise OptimizerError("GEPA.compile needs a non-empty trainset.")
        if teacher is not None:
            raise OptimizerError("GEPA does not use a teacher; call compile(student, trainset=..., valset=...).")
        predictors = student.named_predictors()
        if not predictors:
            raise OptimizerError("The student has no predictors to optimize (no Predict modules found).")
        reflection_lm = self.reflection_lm or settings.get("backward_lm") or settings.get("lm")
        if reflection_lm is None and self.instruction_proposer is None:
            raise OptimizerError("GEPA needs a reflection LM: pass reflection_lm=LM(...) or configure(lm=...), or "
                                 "an instruction_proposer.")
        budget = self._budget(len(predictors), trainset, valset)
        if valset is None:
            logger.warning("GEPA: no valset given; the trainset is used for the Pareto scores too (this fits the "
                           "prompts to the trainset).")
        val = list(valset) if valset is not None else list(trainset)
        logger.info("GEPA: budget of %d metric calls (%.2f full evaluations of the validation set).", budget,
                    budget / max(1, len(val)))
        if self.engine == "gepa":
            from .gepa_package import run_with_gepa_package

            state = run_with_gepa_package(self, student, list(trainset), val, budget, reflection_lm)
            return self._finish(student, state, val)
        with maybe_checkpoint(self.log_dir) as ckpt:
            engine = NativeGEPAEngine(
                student=student, trainset=trainset, valset=val, metric=self.metric, max_metric_calls=budget,
                reflection_lm=reflection_lm, instruction_proposer=self.instruction_proposer,
                reflection_minibatch_size=self.reflection_minibatch_size,
                candidate_selection_strategy=self.candidate_selection_strategy,
                component_selector=self.component_selector, skip_perfect_score=self.skip_perfect_score,
                perfect_score=self.perfect_score, failure_score=self.failure_score,
                add_format_failure_as_feedback=self.add_format_failure_as_feedback, use_merge=self.use_merge,
                max_merge_invocations=self.max_merge_invocations, merge_subsample_size=self.merge_subsample_size,
                num_threads=self.num_threads, feedback_source=self.feedback_source,
                seed=self.seed if self.seed is not None else 0,
                save=(ckpt.save if ckpt is not None else None), history=self.history,
                reflection_signature=self.reflection_signature)
            state = engine.new_state()
            saved = ckpt.load() if ckpt is not None else None
            if saved is not None:
                restored = SearchState.from_dict(saved)
                if restored.fingerprint != state.fingerprint:
                    raise OptimizerError(
                        f"log_dir {self.log_dir!r} holds a GEPA run of another program or dataset; pass a new "
                        "log_dir (or delete this one) to start over.")
                state = restored
                logger.info("GEPA: resuming from %s at iteration %d (%d candidates, %d metric calls).",
                            self.log_dir, state.iteration, len(state.candidates), state.total_metric_calls)
            state = engine.run(state)
        return self._finish(student, state, val)

    def _finish(self, student: Any, state: SearchState, valset: list[Any]) -> Any:
        self.search_state = state.to_dict()
        best = state.best_index()
        # best_index breaks ties toward the lower index, so best != 0 means a strictly higher validation score
        improved = best != 0
        self.search_state["instruction_improved"] = improved
        screen = InstructionScreen()
        screen.restore(state.proposals)
        self.search_state["proposals"] = screen.stats()
        summary = screen.summary("GEPA")
        logger.info("%s", summary)
        if not improved and state.candidates:
            logger.warning("GEPA: the reflection LM produced no instruction that beats the start instruction on the "
                           "validation set (%s); returning the start program. A stronger reflection_lm= usually "
                           "helps.", summary)
        programs = [self._build(student, c) for c in state.candidates] if self.track_stats else []
        optimized = programs[best] if programs else self._build(student, state.candidates[best])
        optimized._compiled = True
        if self.track_stats:
            fronts = instance_fronts(state.val_subscores)
            optimized.detailed_results = GEPADetailedResults(
                candidates=programs, candidate_instructions=[dict(c) for c in state.candidates],
                parents=[list(p) for p in state.parents], val_aggregate_scores=state.mean_scores(),
                val_subscores=[dict(enumerate(s)) for s in state.val_subscores],
                per_val_instance_best_candidates=dict(enumerate(fronts)),
                pareto_frontier=sorted(non_dominated(state.val_subscores)),
                discovery_eval_counts=list(state.discovery_eval_counts),
                total_metric_calls=state.total_metric_calls, feedback_calls=state.feedback_calls,
                num_full_val_evals=state.num_full_val_evals, log_dir=self.log_dir, seed=self.seed,
                iterations=list(state.log), stop_reason=state.stop_reason)
        logger.info("GEPA: best candidate %d of %d, validation score %.4f, %d metric calls.", best,
                    len(state.candidates), state.mean_scores()[best] if state.candidates else math.nan,
                    state.total_metric_calls)
        return optimized

    @staticmethod
    def _build(student: Any, candidate: dict[str, str]) -> Any:
        prog = student.deepcopy()
        originals = dict(student.named_predictors())
        for name, predictor in prog.named_predictors():
            predictor.lm = originals[name].lm
            if name in candidate:
                predictor.instruction.value = candidate[name]
            predictor.instruction.zero_grad()
        return prog
