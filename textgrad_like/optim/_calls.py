"""Shared plumbing of the search optimizers: LM-call projections, spend counting and evaluation.

- :func:`log_projection` logs (``logger.info``) the projected number of LM calls of a run before it
  starts, with a breakdown, and returns the total.
- :class:`CallCounter` counts the LM calls, tokens and cost paid inside a ``with`` block (replies
  answered from the cache or from a checkpoint journal are counted apart and cost nothing).
- :func:`evaluate_program` scores a program on a devset through :class:`ParallelExecutor`: failures
  are counted and logged by the executor, ``max_errors`` stops the run, and a
  :class:`BudgetExceeded` raised inside a worker is re-raised once the workers stop (it is never
  turned into a failed example).
- :func:`run_tasks` runs any function over items the same way.
- :func:`attempt` runs one LM-backed step of a search (a proposal, a reflection, a rule) and turns any
  error but a budget stop or a setup error into a logged, counted failure, so one bad reply or a
  custom LM's untyped exception never ends a run; :func:`check_failures` raises
  :class:`EvaluationError` when every run of a batch failed and there were more than ``max_errors``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import BudgetExceeded, ConfigurationError, EvaluationError
from ..evaluate.evaluate import score_example
from ..parallel import ParallelExecutor, TaskError
from ..primitives import Example
from ..settings import settings

logger = logging.getLogger(__name__)

__all__ = ["CallCounter", "EvalOutcome", "attach_best", "count_calls", "evaluate_program", "log_projection",
           "progress", "run_tasks"]


# --- projections --------------------------------------------------------------------------------

def log_projection(optimizer: str, breakdown: dict[str, int], note: str = "") -> int:
    """Log the projected LM calls of a run (``{part: calls}``) and return their sum."""
    total = int(sum(max(0, int(v)) for v in breakdown.values()))
    parts = ", ".join(f"{name}: {int(n)}" for name, n in breakdown.items())
    logger.info("%s: projected at most %d LM calls (%s)%s", optimizer, total, parts, f". {note}" if note else "")
    return total


# --- counting -------------------------------------------------------------------------------------

class CallCounter:
    """A usage tracker (``settings.usage_tracker``) that counts paid calls and passes every record on
    to the tracker that was active before it, so ``track_usage`` keeps working around a compile."""

    def __init__(self, parent: Any = None) -> None:
        self.parent = parent
        self.calls = 0
        self.cache_hits = 0
        self.total_tokens = 0
        self.cost = 0.0
        self._lock = threading.Lock()

    def add(self, lm_name: str, prompt_tokens: int, completion_tokens: int, cost: float | None,
            cache_hit: bool) -> None:
        with self._lock:
            if cache_hit:
                self.cache_hits += 1
            else:
                self.calls += 1
                self.total_tokens += int(prompt_tokens or 0) + int(completion_tokens or 0)
                self.cost += float(cost or 0.0)
        if self.parent is not None:
            self.parent.add(lm_name, prompt_tokens, completion_tokens, cost, cache_hit)

    def totals(self) -> dict[str, Any]:
        if self.parent is not None and hasattr(self.parent, "totals"):
            return self.parent.totals()
        return {}

    def row(self) -> dict[str, Any]:
        """``lm_calls``, ``tokens`` and ``cost`` so far, ready for ``RunHistory.record(**row)``."""
        with self._lock:
            return {"lm_calls": self.calls, "tokens": self.total_tokens, "cost": self.cost}


@contextlib.contextmanager
def count_calls() -> Iterator[CallCounter]:
    """Count the LM calls paid inside the block (this thread and the workers it starts)."""
    counter = CallCounter(settings.get("usage_tracker"))
    with settings.context(usage_tracker=counter):
        yield counter


# --- progress ---------------------------------------------------------------------------------------

class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix_str(self, text: str) -> None: ...
    def close(self) -> None: ...


def progress(total: int, desc: str, disable: bool = False) -> Any:
    """A tqdm bar (or a silent stand-in when tqdm is missing or ``disable`` is set)."""
    if disable or total <= 0:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return _NoBar()
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


# --- running and scoring ------------------------------------------------------------------------------


def run_tasks(fn: Callable[[Any], Any], items: Sequence[Any], *, num_threads: int | None = None,
              max_errors: int | None = None, provide_traceback: bool | None = None, desc: str = "Running",
              disable_progress: bool = True) -> tuple[list[Any], list[TaskError]]:
    """``[fn(item) for item in items]`` through :class:`ParallelExecutor`; a failed item gives ``None``
    and a :class:`TaskError`. A :class:`BudgetExceeded` from any worker stops the remaining items and
    is raised here after the workers finish."""
    stop: dict[str, BaseException] = {}
    lock = threading.Lock()

    def guarded(item: Any) -> Any:
        if stop:
            return None
        try:
            return fn(item)
        except BudgetExceeded as exc:
            with lock:
                stop.setdefault("budget", exc)
            return None

    executor = ParallelExecutor(num_threads=num_threads, max_errors=max_errors, provide_traceback=provide_traceback,
                                disable_progress_bar=disable_progress, description=desc)
    results = executor.run(guarded, items)
    if "budget" in stop:
        raise stop["budget"]
    return results, [executor.errors[i] for i in executor.failed_indices]


@dataclass
class EvalOutcome:
    """``score`` is a percentage (0-100); ``scores`` one value per example (failures score 0)."""

    score: float
    scores: list[float]
    errors: list[TaskError] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return len(self.errors)


def evaluate_program(program: Any, devset: Sequence[Example], metric: Callable[..., Any], *,
                     num_threads: int | None = None, max_errors: int | None = None,
                     provide_traceback: bool | None = None, desc: str = "Evaluate",
                     disable_progress: bool = True, failure_score: float = 0.0) -> EvalOutcome:
    """Score ``program`` on ``devset`` with ``metric(example, prediction)``, in parallel.

    A failed example (the program or the metric raised) scores ``failure_score`` and is kept in
    ``errors``; more than ``max_errors`` failures stop the run with ``EvaluationError``.
    """
    devset = list(devset)
    if not devset:
        return EvalOutcome(0.0, [])

    def one(example: Example) -> tuple[Any, float]:
        return score_example(program, metric, example)

    results, errors = run_tasks(one, devset, num_threads=num_threads, max_errors=max_errors,
                                provide_traceback=provide_traceback, desc=desc, disable_progress=disable_progress)
    scores = [float(failure_score) if r is None else r[1] for r in results]
    predictions = [None if r is None else r[0] for r in results]
    if errors:
        logger.warning("%s: %d of %d examples failed (scored %s).", desc, len(errors), len(devset), failure_score)
    return EvalOutcome(round(100.0 * sum(scores) / len(devset), 2), scores, errors, predictions)


# --- failures of one step ------------------------------------------------------------------------------------

def is_recoverable(exc: BaseException) -> bool:
    """Whether an optimizer may count ``exc`` (raised by one proposal, reflection or rule call) as a failed
    step and go on: any ``Exception`` except a budget stop and a setup error (no LM configured, a bad
    argument), which would fail every later step the same way."""
    return isinstance(exc, Exception) and not isinstance(exc, (BudgetExceeded, ConfigurationError))


def attempt(what: str, fn: Callable[[], Any], log: logging.Logger | None = None) -> tuple[Any, Exception | None]:
    """``(fn(), None)``, or ``(None, error)`` when ``fn`` raised a recoverable error (logged as a warning
    naming ``what``). Budget stops and setup errors are raised."""
    try:
        return fn(), None
    except Exception as exc:
        if not is_recoverable(exc):
            raise
        text = str(exc)
        (log or logger).warning("%s failed (%s: %s); counted as a failed step, going on.", what, type(exc).__name__,
                                text if len(text) <= 300 else text[:300] + "...")
        return None, exc


def check_failures(desc: str, errors: Sequence[Any], attempts: int, max_errors: int | None) -> None:
    """Raise :class:`EvaluationError` when all ``attempts`` runs failed and they were more than
    ``max_errors`` (default ``settings.max_errors``): a search must not return a program "scored" on
    nothing but failures."""
    limit = settings.get("max_errors") if max_errors is None else max_errors
    if attempts and len(errors) >= attempts and limit is not None and len(errors) > limit:
        raise EvaluationError(f"{desc}: all {attempts} runs failed (more than max_errors={limit}). First failure: "
                              f"{errors[0]}. Fix the cause (the LM, the program or the metric) or raise max_errors.")


def attach_best(exc: BudgetExceeded, best_program: Any, best_score: float | None, search_state: dict[str, Any]) -> None:
    """Attach the best program found before a budget ran out to the exception (``exc.best_program``,
    ``exc.best_score``, ``exc.search_state``). Outer optimizers catch last, so the outermost
    optimizer's answer wins (None when it had scored no program yet)."""
    exc.best_program = best_program  # type: ignore[attr-defined]
    exc.best_score = best_score  # type: ignore[attr-defined]
    exc.search_state = search_state  # type: ignore[attr-defined]


def demo_to_dict(demo: Any) -> dict[str, Any]:
    """A demo as a JSON-able dict (``Example.toDict`` when available)."""
    if isinstance(demo, Example):
        return demo.toDict() if hasattr(demo, "toDict") else dict(demo.items())
    return dict(demo)
