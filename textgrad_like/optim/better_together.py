"""``BetterTogether``: alternate prompt optimization and weight (LoRA) fine-tuning, keep the best program.

``compile(student, trainset, strategy="p -> w -> p", valset_ratio=0.1)`` holds out part of the
trainset (or uses ``valset``), scores the student on it, then runs the steps of ``strategy`` in
order — ``p`` the prompt optimizer (default ``BootstrapFewShotWithRandomSearch``), ``w`` the weight
optimizer (default :class:`~textgrad_like.optim.finetune.BootstrapFinetune`), or any other letter
given as a keyword argument — each on the result of the previous step. Every result is scored on
the held-out split; the best (the latest among ties) is returned, with ``candidate_programs``
(best first: ``{"program", "score", "strategy"}``).

``strategy="auto"`` runs both orders, ``"p -> w"`` and ``"w -> p"``, each from the student, and keeps
whichever validates best (the order that suits a model differs: a small model's prompt search may
only pay off once its weights know the task). ``targets="gold"`` makes the default weight step
train on the trainset's gold labels (``BootstrapFinetune(targets="gold")``) instead of teacher runs.
"""

from __future__ import annotations

import inspect
import logging
import random
from collections.abc import Callable
from typing import Any

from ..errors import OptimizerError
from ..nn.lora import reattach_loras
from ._calls import evaluate_program
from .finetune import BootstrapFinetune
from .teleprompter import ModuleT, Teleprompter

logger = logging.getLogger(__name__)

STRATEGY_SEP = " -> "
AUTO_STRATEGIES = ("p -> w", "w -> p")


def _default_prompt_optimizer(metric: Callable[..., Any]) -> Any:
    try:
        from .random_search import BootstrapFewShotWithRandomSearch
    except ImportError as exc:  # pragma: no cover - random_search ships with the package
        raise OptimizerError("BetterTogether's default prompt optimizer (BootstrapFewShotWithRandomSearch) is not "
                             f"available ({exc}); pass prompt_optimizer=... (any object with .compile).") from None
    return BootstrapFewShotWithRandomSearch(metric=metric)


class BetterTogether(Teleprompter):
    """Prompt and weight optimization, alternated (DSPy's interface).

    Args:
        metric: ``metric(example, prediction, trace=None)``, used to score candidates (and by the defaults).
        prompt_optimizer: the ``p`` step — any object with ``compile(student, trainset=..., ...)``.
        weight_optimizer: the ``w`` step (default ``BootstrapFinetune(metric=metric)``).
        seed: seed of the train/validation split.
        targets: what the default weight optimizer trains on: ``"teacher"`` runs (DSPy's way) or ``"gold"`` labels.
        **optimizers: more steps by letter or name, e.g. ``m=MIPROv2(...)`` for ``strategy="m -> w"``.
    """

    def __init__(self, metric: Callable[..., Any], prompt_optimizer: Any = None, weight_optimizer: Any = None,
                 seed: int | None = None, targets: str = "teacher", **optimizers: Any) -> None:
        super().__init__()
        if metric is None:
            raise OptimizerError("BetterTogether needs a metric to compare programs.")
        self.metric = metric
        self.prompt_optimizer = prompt_optimizer if prompt_optimizer is not None else _default_prompt_optimizer(metric)
        self.weight_optimizer = (weight_optimizer if weight_optimizer is not None
                                 else BootstrapFinetune(metric=metric, targets=targets))
        self.seed = seed
        self.optimizers: dict[str, Any] = {"p": self.prompt_optimizer, "w": self.weight_optimizer, **optimizers}
        for key, opt in self.optimizers.items():
            if not callable(getattr(opt, "compile", None)):
                raise OptimizerError(f"Optimizer {key!r} ({type(opt).__name__}) has no compile(...) method.")
        self.rng = random.Random(seed)

    def compile(self, student: ModuleT, trainset: list[Any] | None = None, teacher: Any = None, *,
                valset: list[Any] | None = None, strategy: str = "p -> w -> p", valset_ratio: float = 0.1,
                num_threads: int | None = None, **kwargs: Any) -> ModuleT:
        if kwargs:
            raise OptimizerError(f"BetterTogether.compile got unknown arguments {sorted(kwargs)}.")
        if not trainset:
            raise OptimizerError("BetterTogether needs a non-empty trainset of Examples.")
        strategies = list(AUTO_STRATEGIES) if strategy == "auto" else [strategy]
        plans = [self._parse(s) for s in strategies]
        trainset, valset = self._split(list(trainset), valset, valset_ratio)
        if strategy == "auto" and not valset:
            raise OptimizerError("strategy='auto' picks the order that validates best: it needs a valset "
                                 "(or valset_ratio > 0).")
        logger.info("BetterTogether: strategy %r, %d training and %d validation examples.", strategy,
                    len(trainset), len(valset or []))
        candidates: list[dict[str, Any]] = []
        program = student.deepcopy()
        score = self._score(program, valset, num_threads)
        candidates.append({"program": program.deepcopy(), "score": score, "strategy": ""})
        self.history.record(score if score is not None else 0.0, step=0, strategy="")
        for steps in plans:
            self._run_steps(student.deepcopy(), steps, candidates, trainset, valset, teacher, num_threads)
        best = self._best(candidates)
        result = best["program"]
        result.candidate_programs = sorted(candidates, key=lambda c: -1.0 if c["score"] is None else c["score"],
                                           reverse=True)
        self.search_state.update({"strategy": strategy, "scores": [(c["strategy"], c["score"]) for c in candidates],
                                  "best_strategy": best["strategy"]})
        result._compiled = True
        return result

    def _run_steps(self, program: Any, steps: list[str], candidates: list[dict[str, Any]], trainset: list[Any],
                   valset: list[Any] | None, teacher: Any, num_threads: int | None) -> None:
        """Run one strategy's steps in order from ``program``; every step's result becomes a candidate."""
        for i, key in enumerate(steps, start=1):
            done = STRATEGY_SEP.join(steps[:i])
            optimizer = self.optimizers[key]
            logger.info("BetterTogether step %d/%d: %s (%s)", i, len(steps), key, type(optimizer).__name__)
            lms_before = [p.lm for p in program.predictors()]
            program._compiled = False
            args = {"trainset": trainset, "teacher": teacher, "valset": valset, "num_threads": num_threads}
            accepted = inspect.signature(optimizer.compile).parameters
            takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
            call = {k: v for k, v in args.items() if (k in accepted or takes_all) and v is not None}
            if "trainset" not in call:
                call["trainset"] = trainset
            try:
                program = optimizer.compile(program, **call)
            except Exception as exc:
                logger.error("BetterTogether step %r (%s) failed: %s: %s. Keeping the best program so far.",
                             done, type(optimizer).__name__, type(exc).__name__, exc)
                self.search_state.setdefault("errors", []).append({"strategy": done, "error": f"{type(exc).__name__}: {exc}"})
                break
            if reattach_loras(program, lms_before):
                logger.info("BetterTogether: restored the LMs/LoRA adapters that %s reset.", type(optimizer).__name__)
            score = self._score(program, valset, num_threads)
            candidates.append({"program": program.deepcopy(), "score": score, "strategy": done})
            self.history.record(score if score is not None else 0.0, step=len(candidates) - 1, strategy=done)
            logger.info("BetterTogether: %r scores %s.", done, "n/a" if score is None else f"{score:.2f}")

    # --- helpers ---------------------------------------------------------------------------------
    def _parse(self, strategy: str) -> list[str]:
        if not isinstance(strategy, str) or not strategy.strip():
            raise OptimizerError("strategy must be a non-empty string such as 'p -> w -> p'.")
        steps = [s.strip() for s in strategy.split("->")]
        unknown = [s for s in steps if s not in self.optimizers]
        if unknown:
            raise OptimizerError(f"Unknown strategy step(s) {unknown}; use {sorted(self.optimizers)} separated by "
                                 f"{STRATEGY_SEP!r}, e.g. 'p -> w -> p'.")
        return steps

    def _split(self, trainset: list[Any], valset: list[Any] | None,
               valset_ratio: float) -> tuple[list[Any], list[Any] | None]:
        if valset is not None:
            return trainset, list(valset)
        if not 0 <= float(valset_ratio) < 1:
            raise OptimizerError(f"valset_ratio must be in [0, 1), got {valset_ratio}.")
        if valset_ratio == 0:
            return trainset, None
        shuffled = list(trainset)
        self.rng.shuffle(shuffled)
        n = max(1, int(valset_ratio * len(shuffled)))
        if n >= len(shuffled):
            raise OptimizerError(f"The trainset ({len(trainset)} examples) is too small to hold out {n} for validation; "
                                 "pass more examples, a smaller valset_ratio or a valset.")
        return shuffled[n:], shuffled[:n]

    def _score(self, program: Any, valset: list[Any] | None, num_threads: int | None) -> float | None:
        if not valset:
            return None
        return evaluate_program(program, valset, self.metric, num_threads=num_threads, desc="BetterTogether eval").score

    @staticmethod
    def _best(candidates: list[dict[str, Any]]) -> dict[str, Any]:
        scored = [c for c in candidates if c["score"] is not None]
        if not scored:
            return candidates[-1]
        best = scored[0]
        for cand in scored[1:]:
            if cand["score"] >= best["score"]:
                best = cand
        return best
