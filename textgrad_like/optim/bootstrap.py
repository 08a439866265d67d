"""``BootstrapFewShot``: demos made from the teacher's own successful runs.

The teacher (the student itself by default, given labeled demos first) runs on training examples
inside :func:`textgrad_like.nn.graph.record`; when the metric accepts the result, every recorded
predictor call of that run becomes an ``augmented`` demo of the predictor that made it. Each
predictor of the student then gets up to ``max_bootstrapped_demos`` such demos, topped up with
labeled examples (up to ``max_labeled_demos`` in all).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from typing import Any

from ..errors import BudgetExceeded, OptimizerError
from ..nn.graph import record
from ..nn.parameter import Parameter
from ..primitives import Example
from ..primitives.metric import call_metric, read_metric
from ..settings import settings
from ._calls import attach_best, count_calls, demo_to_dict, progress, run_tasks
from .labeled_fewshot import LabeledFewShot
from .teleprompter import ModuleT, Teleprompter

logger = logging.getLogger(__name__)


def _stable_seed(items: list[Any]) -> int:
    blob = json.dumps([demo_to_dict(d) for d in items], sort_keys=True, default=str)
    return int(hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12], 16)


def check_same_structure(student: Any, teacher: Any) -> None:
    """Raise :class:`OptimizerError` unless student and teacher have the same predictors and signatures."""
    s_named, t_named = student.named_predictors(), teacher.named_predictors()
    if len(s_named) != len(t_named):
        raise OptimizerError(f"Student and teacher must have the same number of predictors ({len(s_named)} vs "
                             f"{len(t_named)}); pass a teacher built from the same program class.")
    for (n1, p1), (n2, p2) in zip(s_named, t_named, strict=True):
        if n1 != n2:
            raise OptimizerError(f"Student and teacher must have the same structure: {n1!r} vs {n2!r}.")
        sig1, sig2 = p1.signature, p2.signature
        same = sig1.equals(sig2) if hasattr(sig1, "equals") else sig1 == sig2
        if not same:
            raise OptimizerError(f"Student and teacher predictors {n1!r} have different signatures; give the "
                                 "teacher the same signatures as the student.")
        if p1 is p2:
            raise OptimizerError("Student and teacher must be different objects; pass teacher=None to copy.")


class BootstrapFewShot(Teleprompter):
    """Compose each predictor's demos from bootstrapped traces and labeled examples.

    Args:
        metric: ``metric(example, prediction, trace)``; a run is kept when it is truthy (or
            ``>= metric_threshold``). Without a metric every run is kept.
        metric_threshold: the numeric bar for the metric's value.
        teacher_settings: settings overrides (e.g. ``{"lm": big_lm}``) while the teacher runs.
        max_bootstrapped_demos: traces to collect (and demos per predictor).
        max_labeled_demos: demos per predictor in all, topped up with labeled examples.
        max_rounds: tries per example; tries after the first use ``temperature=1.0`` and a new
            ``rollout_id`` so that they are not answered from the cache.
        max_errors: failed teacher runs tolerated (default: ``settings.max_errors``); failures are
            counted and logged, more than this stops the run with ``EvaluationError``.

    ``compile`` records one :attr:`history` row per batch of teacher runs (score: the percentage
    of attempted examples the metric accepted). If an LM budget runs out, the
    :class:`BudgetExceeded` propagates with ``exc.best_program``: the student with the demos
    collected so far.
    """

    def __init__(self, metric: Any = None, metric_threshold: float | None = None,
                 teacher_settings: dict[str, Any] | None = None, max_bootstrapped_demos: int = 4,
                 max_labeled_demos: int = 16, max_rounds: int = 1, max_errors: int | None = None) -> None:
        super().__init__()
        if max_rounds < 1:
            raise OptimizerError(f"max_rounds must be >= 1, got {max_rounds}.")
        self.metric = metric
        self.metric_threshold = metric_threshold
        self.teacher_settings = {} if teacher_settings is None else dict(teacher_settings)
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.max_rounds = max_rounds
        self.max_errors = max_errors
        self.error_count = 0

    # --- compile ---------------------------------------------------------------------------------
    def compile(self, student: ModuleT, *, trainset: list[Any], teacher: Any = None, valset: list[Any] | None = None,
                num_threads: int | None = None, disable_progress: bool = False, **kwargs: Any) -> ModuleT:
        if kwargs:
            raise OptimizerError(f"BootstrapFewShot.compile got unknown arguments {sorted(kwargs)}.")
        if not trainset:
            raise OptimizerError("BootstrapFewShot needs a non-empty trainset of Examples.")
        self.trainset = list(trainset)
        self.num_threads = num_threads
        self.disable_progress = disable_progress
        self._prepare_student_and_teacher(student, teacher)
        check_same_structure(self.student, self.teacher)
        self.predictor_names = [name for name, _ in self.student.named_predictors()]
        per_run = max(1, len(self.predictor_names))
        wanted = min(len(self.trainset), max(0, self.max_bootstrapped_demos))
        upper = (len(self.trainset) * self.max_rounds if wanted else 0) * per_run
        logger.info("BootstrapFewShot: projected %d LM calls if every teacher run passes the metric "
                    "(%d runs x %d predictors), at most %d.", wanted * per_run, wanted, per_run, upper)
        with count_calls() as counter:
            try:
                self._bootstrap(counter)
            except BudgetExceeded as exc:
                attach_best(exc, self._train(), None, self.state_dict())
                raise
        self.student = self._train()
        self.student._compiled = True
        return self.student

    def _prepare_student_and_teacher(self, student: Any, teacher: Any) -> None:
        self.student = student.reset_copy()
        if getattr(self.student, "_compiled", False):
            raise OptimizerError("The student is already compiled; pass the uncompiled program (or a reset copy).")
        self.teacher = teacher.deepcopy() if teacher is not None else student.deepcopy()
        if self.max_labeled_demos and not getattr(self.teacher, "_compiled", False):
            self.teacher = LabeledFewShot(k=self.max_labeled_demos).compile(self.teacher.reset_copy(),
                                                                            trainset=self.trainset)

    # --- bootstrapping ---------------------------------------------------------------------------------
    def _effective_max_errors(self) -> int:
        value = self.max_errors if self.max_errors is not None else settings.get("max_errors")
        return int(value) if value is not None else 10**9

    def _bootstrap(self, counter: Any) -> None:
        wanted = max(0, int(self.max_bootstrapped_demos))
        self.name2traces: dict[str, list[Example]] = {name: [] for name in self.predictor_names}
        self.bootstrapped: list[int] = []
        self.attempted = 0
        self.error_count = 0
        threads = max(1, int(self.num_threads or settings.get("num_threads") or 1))
        bar = progress(len(self.trainset), "Bootstrap", self.disable_progress or wanted == 0)
        position = 0
        step = 0
        try:
            while position < len(self.trainset) and len(self.bootstrapped) < wanted:
                size = max(1, min(threads, wanted - len(self.bootstrapped)))
                chunk = list(range(position, min(position + size, len(self.trainset))))
                position += len(chunk)
                outcomes: dict[int, dict[str, list[Example]]] = {}
                pending = list(chunk)
                for round_idx in range(self.max_rounds):
                    if not pending:
                        break
                    results, errors = run_tasks(
                        lambda i, r=round_idx: self._bootstrap_one(self.trainset[i], r), pending,
                        num_threads=threads, max_errors=len(pending), desc="Bootstrap")
                    self.error_count += len(errors)
                    if errors and self.error_count >= self._effective_max_errors():
                        # DSPy: the max_errors-th failed teacher run ends compile() with its own exception
                        failure = errors[0].exception
                        failure.add_note(f"BootstrapFewShot stopped after {self.error_count} failed teacher runs "
                                         f"(max_errors={self._effective_max_errors()}). Fix the cause or raise "
                                         "max_errors.")
                        raise failure
                    for i, result in zip(pending, results, strict=True):
                        if result is not None and result[0]:
                            outcomes[i] = result[1]
                    pending = [i for i in pending if i not in outcomes]
                self.attempted += len(chunk)
                for i in chunk:  # accept in trainset order, as a sequential run would
                    if i in outcomes and len(self.bootstrapped) < wanted:
                        self.bootstrapped.append(i)
                        for name, demos in outcomes[i].items():
                            self.name2traces[name].extend(demos)
                bar.update(len(chunk))
                self.history.record(100.0 * len(outcomes) / max(1, len(chunk)), step=step,
                                    bootstrapped=len(self.bootstrapped), attempted=self.attempted, **counter.row())
                step += 1
                self._sync_state()
        finally:
            bar.close()
        logger.info("BootstrapFewShot: bootstrapped %d full traces from %d examples (%d failed runs).",
                    len(self.bootstrapped), self.attempted, self.error_count)
        self._sync_state()

    def _teacher_for(self, example: Example) -> Any:
        teacher = self.teacher
        if any(example in list(p.demos) for p in teacher.predictors()):
            teacher = teacher.deepcopy()  # leave the example out of its own demos, without touching the shared teacher
            for predictor in teacher.predictors():
                predictor.demos = [d for d in predictor.demos if d != example]
        return teacher

    def _accepts(self, example: Example, prediction: Any, trace: list[Any]) -> bool:
        if self.metric is None:
            return True
        score = read_metric(call_metric(self.metric, example, prediction, trace)).score
        if self.metric_threshold is not None:
            return score >= self.metric_threshold
        return score > 0

    def _bootstrap_one(self, example: Example, round_idx: int = 0) -> tuple[bool, dict[str, list[Example]]]:
        teacher = self._teacher_for(example)
        names = {id(p): name for name, p in teacher.named_predictors()}
        overrides = dict(self.teacher_settings)
        if round_idx > 0:
            lm = overrides.get("lm") or settings.get("lm")
            if lm is not None and hasattr(lm, "copy"):
                overrides["lm"] = lm.copy(rollout_id=round_idx, temperature=1.0)
        with settings.context(**overrides):
            with record() as graph:
                prediction = teacher(**example.inputs())
            trace = graph.trace()
            if not self._accepts(example, prediction, trace):
                return False, {}
        found: dict[str, list[Example]] = {}
        for predictor, inputs, outputs in trace:
            name = names.get(id(predictor))
            if name is None:
                continue
            fields = {k: (v.value if isinstance(v, Parameter) else v) for k, v in inputs.items()}
            fields.update(dict(outputs.items()) if hasattr(outputs, "items") else {})
            found.setdefault(name, []).append(Example(augmented=True, **fields))
        for name, demos in found.items():
            if len(demos) > 1:  # a predictor called several times in one run: keep one of its calls
                rng = random.Random(_stable_seed(demos))
                found[name] = [rng.choice(demos[:-1]) if rng.random() < 0.5 else demos[-1]]
        return True, found

    # --- assembling the student -------------------------------------------------------------------
    def _train(self) -> Any:
        rng = random.Random(0)
        taken = set(getattr(self, "bootstrapped", []))
        raw = [x for i, x in enumerate(self.trainset) if i not in taken]
        random.Random(0).shuffle(raw)
        student = self.student
        for name, predictor in student.named_predictors():
            augmented = getattr(self, "name2traces", {}).get(name, [])[: self.max_bootstrapped_demos]
            size = max(0, min(self.max_labeled_demos - len(augmented), len(raw)))
            predictor.demos = augmented + rng.sample(raw, size)
        return student

    def _sync_state(self) -> None:
        self.search_state = {
            "bootstrapped_indices": list(getattr(self, "bootstrapped", [])),
            "attempted": getattr(self, "attempted", 0),
            "errors": self.error_count,
            "traces": {name: [demo_to_dict(d) for d in demos] for name, demos in getattr(self, "name2traces", {}).items()},
        }
