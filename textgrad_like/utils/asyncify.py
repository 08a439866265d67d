"""``asyncify(program)``: call a synchronous program from async code (DSPy's ``dspy.asyncify``).

The returned coroutine function runs ``program(*args, **kwargs)`` on a worker thread, in a copy of
the caller's context (so ``context(lm=...)`` overrides and usage trackers follow the call), and at
most ``settings.async_max_workers`` (default 8) programs run at once across the process.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..settings import settings

__all__ = ["asyncify", "get_async_max_workers"]

_pools: dict[int, ThreadPoolExecutor] = {}
_lock = threading.Lock()


def get_async_max_workers() -> int:
    """How many asyncified programs may run at once (``configure(async_max_workers=...)``, default 8)."""
    return int(settings.get("async_max_workers") or 8)


def _pool() -> ThreadPoolExecutor:
    size = get_async_max_workers()
    with _lock:
        if size not in _pools:
            _pools[size] = ThreadPoolExecutor(max_workers=size, thread_name_prefix="asyncify")
        return _pools[size]


def asyncify(program: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Wrap ``program`` so that ``await asyncify(program)(**inputs)`` runs it without blocking the event loop."""

    @functools.wraps(program)
    async def run(*args: Any, **kwargs: Any) -> Any:
        ctx = contextvars.copy_context()
        call = functools.partial(ctx.run, program, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(_pool(), call)

    return run
