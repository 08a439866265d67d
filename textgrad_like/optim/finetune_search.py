"""Choose LoRA fine-tuning settings by a small validated search (optuna), instead of fixing them.

``search_finetune(student, trainset, valset, metric)`` runs ``n_trials`` fine-tunings of ``student``
with :class:`~textgrad_like.optim.finetune.BootstrapFinetune` (gold targets and early stopping on the
valset by default), each with a learning rate, a number of epochs and a LoRA rank proposed by
optuna's seeded TPE sampler, and returns the program that scored best on the valset together with
the optuna study. The test split is never seen: selection is on ``valset`` only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import OptimizerError
from .finetune import BootstrapFinetune

logger = logging.getLogger(__name__)

DEFAULT_SEARCH_SPACE: dict[str, Any] = {
    "learning_rate": (1e-4, 3e-3),   # log-uniform
    "epochs": (2, 6),                # max epochs (early stopping may stop sooner)
    "r": (4, 8, 16),                 # LoRA rank: a categorical choice
}


@dataclass
class FinetuneSearchResult:
    """The best program, its valset score and settings, and every trial as ``(settings, score)``."""

    program: Any
    score: float
    train_kwargs: dict[str, Any]
    trials: list[tuple[dict[str, Any], float]] = field(default_factory=list)
    study: Any = None


def search_finetune(student: Any, trainset: list[Any], valset: list[Any], metric: Callable[..., Any], *,
                    n_trials: int = 6, seed: int = 0, targets: str = "gold", early_stopping: int | None = 1,
                    search_space: dict[str, Any] | None = None, train_kwargs: dict[str, Any] | None = None,
                    num_threads: int | None = None) -> FinetuneSearchResult:
    """Fine-tune ``student`` ``n_trials`` times with settings proposed by optuna; keep the best on ``valset``.

    ``search_space`` maps ``learning_rate`` to ``(low, high)`` (log scale), ``epochs`` to ``(low, high)``
    and ``r`` to a tuple of choices; ``train_kwargs`` are fixed settings for every trial.
    """
    if not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials must be a whole number >= 1, got {n_trials!r}.")
    if not valset:
        raise OptimizerError("search_finetune selects on a validation split: pass a non-empty valset.")
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - optuna is a dependency
        raise OptimizerError(f"search_finetune needs optuna ({exc}); pip install optuna.") from None
    space = {**DEFAULT_SEARCH_SPACE, **(search_space or {})}
    fixed = dict(train_kwargs or {})
    best: dict[str, Any] = {"program": None, "score": float("-inf"), "kwargs": None}
    trials: list[tuple[dict[str, Any], float]] = []

    def objective(trial: Any) -> float:
        low, high = space["learning_rate"]
        kwargs = {
            **fixed,
            "learning_rate": trial.suggest_float("learning_rate", float(low), float(high), log=True),
            "epochs": trial.suggest_int("epochs", int(space["epochs"][0]), int(space["epochs"][1])),
            "r": trial.suggest_categorical("r", list(space["r"])),
            "seed": seed,
        }
        kwargs["alpha"] = 2 * kwargs["r"]
        optimizer = BootstrapFinetune(metric=metric, targets=targets, early_stopping=early_stopping,
                                      train_kwargs=kwargs, num_threads=num_threads)
        program = optimizer.compile(student, trainset=trainset, valset=valset, disable_progress=True)
        validation = optimizer.search_state.get("validation") or {}
        if validation:
            score = max(float(v["best_score"]) for v in validation.values())
        else:
            from ._calls import evaluate_program

            score = evaluate_program(program, valset, metric, num_threads=num_threads).score
        trials.append((kwargs, score))
        logger.info("search_finetune trial %d: %s -> valset %.2f", trial.number, kwargs, score)
        if score > best["score"]:
            best.update(program=program, score=score, kwargs=kwargs)
        return score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    return FinetuneSearchResult(best["program"], best["score"], best["kwargs"], trials, study)
