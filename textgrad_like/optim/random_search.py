"""``BootstrapFewShotWithRandomSearch`` (alias ``BootstrapRS``): try several demo sets, keep the best.

Candidates, by seed: ``-3`` zero-shot, ``-2`` labeled demos only, ``-1`` an unshuffled
BootstrapFewShot, and ``0..num_candidate_programs-1`` BootstrapFewShot on a shuffled trainset with a
random number of bootstrapped demos (both drawn from the seed). Each is scored on the valset; the
best is returned, with every candidate in ``best.candidate_programs`` (best first).

With ``compile(..., checkpoint_dir=...)`` every LM reply is journaled and the search state is saved
after each candidate, so a run killed at any point resumes where it stopped without paying again
for a call it already made.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from ..errors import BudgetExceeded, OptimizerError
from ..primitives import Example
from ..settings import settings
from ._calls import attach_best, count_calls, demo_to_dict, evaluate_program, progress
from .bootstrap import BootstrapFewShot
from .checkpoint import maybe_checkpoint
from .labeled_fewshot import LabeledFewShot
from .teleprompter import ModuleT, Teleprompter

logger = logging.getLogger(__name__)

STATE_FORMAT = "textgrad_like.bootstrap_rs/1"


def program_demos(program: Any) -> dict[str, list[dict[str, Any]]]:
    """``{predictor name: [demo dicts]}`` of a program (JSON-able)."""
    return {name: [demo_to_dict(d) for d in p.demos] for name, p in program.named_predictors()}


def with_demos(student: Any, demos: dict[str, list[dict[str, Any]]]) -> Any:
    """A reset copy of ``student`` whose predictors hold the saved ``demos``."""
    program = student.reset_copy()
    for name, predictor in program.named_predictors():
        predictor.demos = [Example(**d) for d in demos.get(name, [])]
    return program


def build_candidate(seed: int, student: Any, trainset: list[Any], *, teacher: Any, metric: Any,
                    metric_threshold: float | None, teacher_settings: dict[str, Any], max_bootstrapped_demos: int,
                    max_labeled_demos: int, max_rounds: int, max_errors: int | None, min_num_samples: int = 1,
                    labeled_sample: bool = True, num_threads: int | None = None,
                    rng: random.Random | None = None, skip: bool = False) -> Any:
    """The candidate program for ``seed`` (-3 zero-shot, -2 labeled only, -1 unshuffled bootstrap,
    >= 0 shuffled bootstrap). The random draws for seed >= 0 come from ``rng`` when given (MIPROv2)
    or from ``random.Random(seed)``; ``skip=True`` makes the draws but builds nothing (for resuming)."""
    trainset_copy = list(trainset)
    if seed == -3:
        return None if skip else student.reset_copy()
    if seed == -2:
        return None if skip else LabeledFewShot(k=max_labeled_demos).compile(student, trainset=trainset_copy,
                                                                             sample=labeled_sample)
    size = max_bootstrapped_demos
    if seed >= 0:
        if rng is None:
            random.Random(seed).shuffle(trainset_copy)
            size = random.Random(seed).randint(min_num_samples, max(min_num_samples, max_bootstrapped_demos))
        else:
            rng.shuffle(trainset_copy)
            size = rng.randint(min_num_samples, max(min_num_samples, max_bootstrapped_demos))
    if skip:
        return None
    optimizer = BootstrapFewShot(metric=metric, metric_threshold=metric_threshold, teacher_settings=teacher_settings,
                                 max_bootstrapped_demos=size, max_labeled_demos=max_labeled_demos,
                                 max_rounds=max_rounds, max_errors=max_errors)
    return optimizer.compile(student, teacher=teacher, trainset=trainset_copy, num_threads=num_threads,
                             disable_progress=True)


class BootstrapFewShotWithRandomSearch(Teleprompter):
    """Random search over bootstrapped demo sets (DSPy's arguments and defaults).

    ``compile(student, *, trainset, teacher=None, valset=None, restrict=None, labeled_sample=True,
    checkpoint_dir=None)``; the valset defaults to the trainset. :attr:`history` gets a row per
    candidate (valset score, LM calls so far); :meth:`state_dict` holds every candidate's seed,
    score, per-example scores and demos. If an LM budget runs out, :class:`BudgetExceeded`
    propagates with ``exc.best_program`` (the best candidate scored so far, or None).
    """

    def __init__(self, metric: Callable[..., Any], teacher_settings: dict[str, Any] | None = None,
                 max_bootstrapped_demos: int = 4, max_labeled_demos: int = 16, max_rounds: int = 1,
                 num_candidate_programs: int = 16, num_threads: int | None = None, max_errors: int | None = None,
                 stop_at_score: float | None = None, metric_threshold: float | None = None) -> None:
        super().__init__()
        if metric is None:
            raise OptimizerError("BootstrapFewShotWithRandomSearch needs a metric(example, prediction, trace=None).")
        self.metric = metric
        self.teacher_settings = dict(teacher_settings or {})
        self.max_rounds = max_rounds
        self.num_threads = num_threads
        self.stop_at_score = stop_at_score
        self.metric_threshold = metric_threshold
        self.min_num_samples = 1
        self.max_num_samples = max_bootstrapped_demos
        self.max_errors = max_errors
        self.num_candidate_sets = num_candidate_programs
        self.max_labeled_demos = max_labeled_demos
        logger.info("BootstrapRS: sampling between %d and %d traces per predictor for %d candidate sets.",
                    self.min_num_samples, self.max_num_samples, self.num_candidate_sets)

    def _seeds(self, restrict: Any) -> list[int]:
        seeds = list(range(-3, self.num_candidate_sets))
        if restrict is not None:
            wanted = set(restrict)
            if not wanted.intersection(seeds):
                raise OptimizerError(f"restrict={sorted(wanted)!r} matches no candidate seed in "
                                     f"range(-3, {self.num_candidate_sets}); no candidate would be evaluated.")
            seeds = [s for s in seeds if s in wanted]
        return seeds

    def _projection(self, student: Any, seeds: list[int], trainset: list[Any], valset: list[Any]) -> int:
        per_run = max(1, len(student.predictors()))
        boot = sum(min(len(trainset), self.max_num_samples) * per_run for s in seeds if s >= -1)
        from ._calls import log_projection

        return log_projection("BootstrapRS", {"bootstrapping (if every run passes)": boot,
                                              "evaluation": len(seeds) * len(valset) * per_run})

    def compile(self, student: ModuleT, *, trainset: list[Any], teacher: Any = None, valset: list[Any] | None = None,
                restrict: Any = None, labeled_sample: bool = True, checkpoint_dir: str | None = None,
                **kwargs: Any) -> ModuleT:
        if kwargs:
            raise OptimizerError(f"BootstrapFewShotWithRandomSearch.compile got unknown arguments {sorted(kwargs)}.")
        if not trainset:
            raise OptimizerError("BootstrapRS needs a non-empty trainset of Examples.")
        self.trainset = list(trainset)
        self.valset = list(valset or trainset)
        seeds = self._seeds(restrict)
        max_errors = self.max_errors if self.max_errors is not None else settings.get("max_errors")
        self._projection(student, seeds, self.trainset, self.valset)
        self.search_state = {"format": STATE_FORMAT, "candidates": [], "best_seed": None, "best_score": None}
        best_program: Any = None
        best_score: float | None = None
        programs: dict[int, Any] = {}
        with maybe_checkpoint(checkpoint_dir) as ckpt, count_calls() as counter:
            saved = ckpt.load() if ckpt is not None else None
            done: dict[int, dict[str, Any]] = {}
            paid_before = 0
            if saved and saved.get("format") == STATE_FORMAT:
                done = {int(c["seed"]): c for c in saved.get("candidates", [])}
                paid_before = int(saved.get("lm_calls", 0))
                for row in saved.get("history", []):
                    self.history.record(row["score"], step=row["step"], seed=row.get("seed"),
                                        lm_calls=row["lm_calls"], tokens=row["tokens"], cost=row["cost"])
                logger.info("BootstrapRS: resuming from %s with %d candidates already scored.", checkpoint_dir,
                            len(done))
            bar = progress(len(seeds), "BootstrapRS")
            try:
                for step, seed in enumerate(seeds):
                    if seed in done:
                        entry = dict(done[seed])
                        program = with_demos(student, entry["demos"])
                        if seed >= -1:
                            program._compiled = True
                    else:
                        program = build_candidate(
                            seed, student, self.trainset, teacher=teacher, metric=self.metric,
                            metric_threshold=self.metric_threshold, teacher_settings=self.teacher_settings,
                            max_bootstrapped_demos=self.max_num_samples, max_labeled_demos=self.max_labeled_demos,
                            max_rounds=self.max_rounds, max_errors=max_errors, min_num_samples=self.min_num_samples,
                            labeled_sample=labeled_sample, num_threads=self.num_threads)
                        outcome = evaluate_program(program, self.valset, self.metric, num_threads=self.num_threads,
                                                   max_errors=max_errors, desc=f"BootstrapRS candidate {seed}")
                        entry = {"seed": seed, "score": outcome.score, "subscores": outcome.scores,
                                 "failures": outcome.failures, "demos": program_demos(program)}
                    programs[seed] = program
                    self.search_state["candidates"].append(entry)
                    score = float(entry["score"])
                    if best_score is None or score > best_score:
                        best_score, best_program = score, program
                        self.search_state["best_seed"], self.search_state["best_score"] = seed, score
                        logger.info("BootstrapRS: new best score %.2f for seed %d.", score, seed)
                    if seed not in done:
                        row = counter.row()
                        row["lm_calls"] += paid_before
                        self.history.record(score, step=step, seed=seed, **row)
                    self.search_state["history"] = self.history.rows
                    self.search_state["lm_calls"] = counter.calls + paid_before
                    if ckpt is not None:
                        ckpt.save(self.state_dict())
                    bar.update(1)
                    if self.stop_at_score is not None and score >= self.stop_at_score:
                        logger.info("BootstrapRS: stopping early, score %.2f >= stop_at_score %s.", score,
                                    self.stop_at_score)
                        break
            except BudgetExceeded as exc:
                attach_best(exc, best_program, best_score, self.state_dict())
                raise
            finally:
                bar.close()
        ranked = sorted(self.search_state["candidates"], key=lambda c: c["score"], reverse=True)
        best_program.candidate_programs = [
            {"score": c["score"], "subscores": c["subscores"], "seed": c["seed"], "program": programs[c["seed"]]}
            for c in ranked]
        logger.info("BootstrapRS: %d candidate programs scored; best %.2f (seed %s).", len(ranked),
                    best_score, self.search_state["best_seed"])
        return best_program


BootstrapRS = BootstrapFewShotWithRandomSearch
