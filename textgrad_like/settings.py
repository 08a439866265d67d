"""Global defaults and per-thread / per-task overrides.

``configure(lm=...)`` sets process-wide defaults (the "main" settings). ``context(lm=...)``
overrides them for the current thread or asyncio task only: the overrides live in a
:class:`contextvars.ContextVar`, so threads started by the library's executor inherit the
caller's overrides while never seeing each other's.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Iterator
from typing import Any

DEFAULTS: dict[str, Any] = {
    "lm": None,
    "adapter": None,
    "rm": None,
    "backward_lm": None,
    "callbacks": [],
    "track_usage": False,
    "num_threads": 8,
    "max_errors": 10,
    "disable_history": False,
    "max_history_size": 10_000,  # cap of each module's ``history`` (0: none kept)
    "trace": "per-context",  # see context_trace(); None disables tracing, a list collects into that list
    "max_trace_size": 10_000,
    "usage_tracker": None,
    "budget": None,
    "send_stream": None,
    "caller_modules": None,  # the modules whose call is running, outermost first (set by Module calls)
    "allow_tool_async_sync_conversion": False,
    "async_max_workers": 8,
    "warn_on_type_mismatch": True,
}

_overrides: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "textgrad_like_overrides", default=None
)


_CONTEXT_TRACE = DEFAULTS["trace"]
_context_trace: contextvars.ContextVar[tuple[tuple[int, Any], list[Any]] | None] = contextvars.ContextVar(
    "textgrad_like_context_trace", default=None
)


def context_trace() -> list[Any]:
    """This thread's / asyncio task's own trace list (DSPy's ``settings.trace`` unless one is configured).

    Each thread and each task gets a fresh list the first time it asks (a context copied into a new
    thread or task does not share its parent's list), so there is no process-wide mutable trace.
    """
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    owner = (threading.get_ident(), task)
    held = _context_trace.get()
    if held is None or held[0] != owner:
        held = (owner, [])
        _context_trace.set(held)
    return held[1]


class Settings:
    """Read settings as attributes: ``settings.lm``. Write them with :meth:`configure` or :meth:`context`."""

    def __init__(self) -> None:
        self._main: dict[str, Any] = dict(DEFAULTS)
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        overrides = _overrides.get()
        if overrides is not None and key in overrides:
            value = overrides[key]
        else:
            value = self._main.get(key, default)
        if key == "trace" and value is _CONTEXT_TRACE:
            return context_trace()
        return value

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_") or key not in self:
            raise AttributeError(f"Unknown setting {key!r}: set it with configure({key}=...) or "
                                 f"context({key}=...) first, or read it with settings.get({key!r}, default).")
        return self.get(key)

    def __getitem__(self, key: str) -> Any:
        return self.get(key)

    def __contains__(self, key: str) -> bool:
        overrides = _overrides.get() or {}
        return key in overrides or key in self._main

    def configure(self, **kwargs: Any) -> None:
        """Set process-wide defaults, e.g. ``configure(lm=LM("openai/gpt-4o-mini"))``.

        Inside a :meth:`context` block, the values are set for that block only.
        """
        overrides = _overrides.get()
        if overrides is not None:
            _overrides.set({**overrides, **kwargs})
            return
        with self._lock:
            self._main.update(kwargs)

    @contextlib.contextmanager
    def context(self, **kwargs: Any) -> Iterator[None]:
        """Override settings for this thread or task inside a ``with`` block."""
        token = _overrides.set({**(_overrides.get() or {}), **kwargs})
        try:
            yield
        finally:
            _overrides.reset(token)

    def copy(self) -> dict[str, Any]:
        """The settings in force here, as a dict (DSPy's ``settings.copy()``; ``configure(**saved)`` restores them)."""
        return dict(self.config)

    def copy_overrides(self) -> dict[str, Any]:
        return dict(_overrides.get() or {})

    def reset(self) -> None:
        """Restore the defaults (mainly for tests)."""
        with self._lock:
            self._main = dict(DEFAULTS)
            self._main["callbacks"] = []
        _context_trace.set(None)

    @property
    def config(self) -> dict[str, Any]:
        return {**self._main, **(_overrides.get() or {})}


settings = Settings()
configure = settings.configure
context = settings.context
