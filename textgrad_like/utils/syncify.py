"""``syncify(program)``: call a program written with ``async def aforward`` synchronously (DSPy's ``dspy.syncify``).

``syncify(program)`` (``in_place=True``) gives ``program`` a ``forward`` that runs its ``aforward`` to
completion; ``in_place=False`` leaves ``program`` alone and returns a wrapper module around a deep copy.
Inside a running event loop the coroutine runs on a helper thread with its own loop (in a copy of the
caller's context), since a loop cannot wait on itself.
"""

from __future__ import annotations

import asyncio
import contextvars
import types
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..nn.module import Module

__all__ = ["run_async", "syncify"]


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to completion from synchronous code, whether or not an event loop is running here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    ctx = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="syncify") as pool:
        return pool.submit(ctx.run, asyncio.run, coro).result()


class _Synced(Module):
    def __init__(self, program: Module) -> None:
        super().__init__()
        self.program = program

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return run_async(self.program.aforward(*args, **kwargs))


def syncify(program: Module, in_place: bool = True) -> Module:
    """Make ``program(...)`` run ``program.aforward(...)`` synchronously; see the module docstring."""
    if not in_place:
        return _Synced(program.deepcopy())

    def forward(self: Module, *args: Any, **kwargs: Any) -> Any:
        return run_async(self.aforward(*args, **kwargs))

    program.forward = types.MethodType(forward, program)  # type: ignore[method-assign]
    return program
