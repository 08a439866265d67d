"""One parallel execution layer (threads) shared by ``Evaluate``, ``Module.batch`` and optimizers.

Each task runs in a copy of the caller's :mod:`contextvars` context, so per-thread settings
overrides (``context(lm=...)``) follow the work into the pool. Failures are counted, logged with
their traceback and kept in :attr:`ParallelExecutor.errors`; never swallowed silently. Once more
than ``max_errors`` tasks fail, the run stops with :class:`EvaluationError`.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from .errors import EvaluationError
from .settings import settings

logger = logging.getLogger(__name__)


@dataclass
class TaskError:
    index: int
    exception: BaseException
    traceback: str

    def __str__(self) -> str:
        return f"task {self.index}: {type(self.exception).__name__}: {self.exception}"


class ParallelExecutor:
    def __init__(self, num_threads: int | None = None, max_errors: int | None = None,
                 disable_progress_bar: bool = False, provide_traceback: bool | None = None,
                 description: str = "Running") -> None:
        self.num_threads = max(1, int(num_threads or settings.get("num_threads") or 1))
        self.max_errors = settings.get("max_errors") if max_errors is None else max_errors
        self.disable_progress_bar = disable_progress_bar
        self.provide_traceback = provide_traceback
        self.description = description
        self.errors: dict[int, TaskError] = {}
        self._lock = threading.Lock()

    @property
    def failed_indices(self) -> list[int]:
        return sorted(self.errors)

    @property
    def error_count(self) -> int:
        return len(self.errors)

    def _record_error(self, index: int, exc: BaseException) -> None:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        with self._lock:
            self.errors[index] = TaskError(index, exc, tb)
            count = len(self.errors)
        if self.provide_traceback:
            logger.error("Task %d failed (%d so far):\n%s", index, count, tb)
        else:
            logger.error("Task %d failed (%d so far): %s: %s", index, count, type(exc).__name__, exc)

    def run(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``[fn(item) for item in items]`` in parallel; a failed item gives ``None``."""
        items = list(items)
        results: list[Any] = [None] * len(items)
        bar = _progress(len(items), self.description, self.disable_progress_bar)

        def call(index: int, item: Any, ctx: contextvars.Context) -> Any:
            return ctx.run(fn, item)

        try:
            if self.num_threads == 1:
                for i, item in enumerate(items):
                    try:
                        results[i] = fn(item)
                    except Exception as exc:
                        self._record_error(i, exc)
                        self._check_limit()
                    bar.update(1)
                return results
            with ThreadPoolExecutor(max_workers=self.num_threads) as pool:
                pending: dict[Future, int] = {}
                iterator = iter(enumerate(items))
                exhausted = False
                stop: BaseException | None = None
                while True:
                    while not exhausted and len(pending) < self.num_threads * 2 and stop is None:
                        try:
                            i, item = next(iterator)
                        except StopIteration:
                            exhausted = True
                            break
                        pending[pool.submit(call, i, item, contextvars.copy_context())] = i
                    if not pending:
                        break
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        i = pending.pop(future)
                        try:
                            results[i] = future.result()
                        except Exception as exc:
                            self._record_error(i, exc)
                            try:
                                self._check_limit()
                            except EvaluationError as limit:
                                stop = limit
                        bar.update(1)
                    if stop is not None:
                        for future in pending:
                            future.cancel()
                        raise stop
        finally:
            bar.close()
        return results

    def _check_limit(self) -> None:
        if self.max_errors is not None and len(self.errors) > self.max_errors:
            first = self.errors[min(self.errors)]
            raise EvaluationError(
                f"Stopped after {len(self.errors)} failed tasks (max_errors={self.max_errors}). First failure: "
                f"{first}. Fix the cause or raise max_errors.\n{first.traceback}"
            )


class _NoBar:
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


def _progress(total: int, desc: str, disabled: bool) -> Any:
    if disabled or total <= 1:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
