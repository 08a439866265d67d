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
import time
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
    """Run ``fn`` over items on ``num_threads`` threads (see the module docstring).

    Stragglers, as DSPy: once at most ``straggler_limit`` tasks are still running and one of them has
    run for ``timeout`` seconds, a duplicate of it is started (once per task) and whichever copy
    finishes first gives the result; the other is left to finish in the background and ignored.
    ``timeout=None`` or ``0`` (the default here) turns this off. A thread cannot be stopped, so this
    is not a hard time limit: it helps when a call hangs on the network, not when every call is slow.
    """

    def __init__(self, num_threads: int | None = None, max_errors: int | None = None,
                 disable_progress_bar: bool = False, provide_traceback: bool | None = None,
                 description: str = "Running", timeout: float | None = None, straggler_limit: int = 3) -> None:
        self.num_threads = max(1, int(num_threads or settings.get("num_threads") or 1))
        self.max_errors = settings.get("max_errors") if max_errors is None else max_errors
        self.disable_progress_bar = disable_progress_bar
        self.provide_traceback = provide_traceback
        self.description = description
        self.timeout = float(timeout) if timeout else None
        self.straggler_limit = int(straggler_limit)
        self.errors: dict[int, TaskError] = {}
        self.resubmitted: list[int] = []
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
            self._run_threads(fn, items, results, bar)
        finally:
            bar.close()
        return results

    def _run_threads(self, fn: Callable[[Any], Any], items: list[Any], results: list[Any], bar: Any) -> None:
        started: dict[Future, float] = {}
        sid_future: dict[int, Future] = {}

        def call(sid: int, item: Any, ctx: contextvars.Context) -> Any:
            with self._lock:
                future = sid_future.get(sid)
            if future is not None:
                started[future] = time.monotonic()
            return ctx.run(fn, item)

        pool = ThreadPoolExecutor(max_workers=self.num_threads)
        pending: dict[Future, int] = {}
        done_indices: set[int] = set()
        duplicated: set[int] = set()

        def submit(i: int) -> None:
            sid = len(sid_future)
            with self._lock:  # the worker looks its future up under the same lock
                future = pool.submit(call, sid, items[i], contextvars.copy_context())
                sid_future[sid] = future
            pending[future] = i

        poll = None if self.timeout is None else max(0.01, min(1.0, self.timeout / 4))
        next_index = 0
        stop: BaseException | None = None
        try:
            while len(done_indices) < len(items):
                while next_index < len(items) and len(pending) < self.num_threads * 2 and stop is None:
                    submit(next_index)
                    next_index += 1
                if not pending:
                    break
                done, _ = wait(pending, timeout=poll, return_when=FIRST_COMPLETED)
                for future in done:
                    i = pending.pop(future)
                    started.pop(future, None)
                    if i in done_indices:
                        continue  # the other copy of a straggler finished first
                    done_indices.add(i)
                    try:
                        results[i] = future.result()
                    except Exception as exc:
                        self._record_error(i, exc)
                        try:
                            self._check_limit()
                        except EvaluationError as limit:
                            stop = limit
                    bar.update(1)
                for future in [f for f, i in pending.items() if i in done_indices]:
                    future.cancel()
                    del pending[future]
                if stop is not None:
                    raise stop
                if poll is not None and next_index >= len(items):
                    self._resubmit_stragglers(pending, started, duplicated, submit)
        finally:
            for future in pending:
                future.cancel()
            # wait for tasks still running (as before stragglers existed), except when a straggler was
            # duplicated: its hung copy must not hold the caller
            pool.shutdown(wait=not duplicated, cancel_futures=True)

    def _resubmit_stragglers(self, pending: dict[Future, int], started: dict[Future, float], duplicated: set[int],
                             submit: Callable[[int], None]) -> None:
        running = set(pending.values())
        if len(running) > self.straggler_limit or self.timeout is None:
            return
        now = time.monotonic()
        for future, i in list(pending.items()):
            begun = started.get(future)
            if i in duplicated or begun is None or now - begun < self.timeout:
                continue
            duplicated.add(i)
            self.resubmitted.append(i)
            logger.warning("Task %d has run for %.0f s; starting a second copy (straggler; timeout=%s).", i,
                           now - begun, self.timeout)
            submit(i)

    def _check_limit(self) -> None:
        # max_errors failures are tolerated (DSPy's documented meaning); one more stops the run
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
