"""``Parallel``: run many ``(module, example)`` pairs on threads.

Built on :class:`textgrad_like.parallel.ParallelExecutor`: each pair runs in a copy of the caller's
context (settings overrides follow it), failures are logged and counted, and more than
``max_errors`` failures stop the run with :class:`~textgrad_like.errors.EvaluationError`.
"""

from __future__ import annotations

import threading
from typing import Any

from ..errors import InputError
from ..nn.module import Module
from ..primitives import Example


class Parallel(Module):
    """``Parallel(num_threads=4)([(module, example), ...])`` returns the results in order.

    Args:
        num_threads: threads to use (default ``settings.num_threads``).
        max_errors: failures tolerated before the run stops (default ``settings.max_errors``).
        access_examples: call ``module(**example.inputs())`` for an :class:`Example` (else ``module(example)``).
        return_failed_examples: return ``(results, failed_examples, exceptions)`` instead of ``results``.
        provide_traceback: log full tracebacks of failures.
        disable_progress_bar: hide the progress bar.
        timeout: seconds after which a still-running pair is a straggler and a second copy of it is
            started, once at most ``straggler_limit`` pairs are left (DSPy's default 120; ``None``/``0``: off).
        straggler_limit: how few pairs must be left before stragglers are looked for.
    """

    def __init__(self, num_threads: int | None = None, max_errors: int | None = None, access_examples: bool = True,
                 return_failed_examples: bool = False, provide_traceback: bool | None = None,
                 disable_progress_bar: bool = False, timeout: float | None = 120, straggler_limit: int = 3) -> None:
        super().__init__()
        self.num_threads = num_threads
        self.max_errors = max_errors
        self.access_examples = access_examples
        self.return_failed_examples = return_failed_examples
        self.provide_traceback = provide_traceback
        self.disable_progress_bar = disable_progress_bar
        self.timeout = timeout
        self.straggler_limit = straggler_limit
        self.failed_examples: list[Any] = []
        self.exceptions: list[BaseException] = []
        self._lock = threading.Lock()

    def _process(self, pair: Any) -> Any:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise InputError(f"Parallel takes (module, example) pairs; got {pair!r:.100}.")
        module, example = pair
        if isinstance(example, Example):
            return module(**example.inputs()) if self.access_examples else module(example)
        if isinstance(example, dict):
            return module(**example)
        if isinstance(example, list) and isinstance(module, Parallel):
            return module(example)
        if isinstance(example, tuple):
            return module(*example)
        raise InputError(f"Parallel cannot pass an example of type {type(example).__name__} to a module; use an "
                         "Example, a dict of keyword arguments, or a tuple of positional arguments.")

    def forward(self, exec_pairs: list[tuple[Any, Any]], num_threads: int | None = None) -> Any:
        from ..parallel import ParallelExecutor

        pairs = list(exec_pairs)
        executor = ParallelExecutor(num_threads=num_threads if num_threads is not None else self.num_threads,
                                    max_errors=self.max_errors, disable_progress_bar=self.disable_progress_bar,
                                    provide_traceback=self.provide_traceback, description="Parallel",
                                    timeout=self.timeout, straggler_limit=self.straggler_limit)
        results = executor.run(self._process, pairs)
        if not self.return_failed_examples:
            return results
        failed = [pairs[i][1] for i in executor.failed_indices]
        exceptions = [executor.errors[i].exception for i in executor.failed_indices]
        with self._lock:
            self.failed_examples = failed
            self.exceptions = exceptions
        return results, failed, exceptions

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # no graph of its own: each module call records its own (or joins the enclosing forward pass's)
        return self.forward(*args, **kwargs)
