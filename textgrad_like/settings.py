"""Global defaults and per-thread / per-task overrides.

``configure(lm=...)`` sets process-wide defaults (the "main" settings). ``context(lm=...)``
overrides them for the current thread or asyncio task only: the overrides live in a
:class:`contextvars.ContextVar`, so threads started by the library's executor inherit the
caller's overrides while never seeing each other's.
"""

from __future__ import annotations

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
    "max_history_size": 10_000,
    "trace": None,
    "usage_tracker": None,
    "budget": None,
    "send_stream": None,
    "caller_modules": None,
    "allow_pickle": False,
    "warn_on_type_mismatch": True,
}

_overrides: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "textgrad_like_overrides", default=None
)


class Settings:
    """Read settings as attributes: ``settings.lm``. Write them with :meth:`configure` or :meth:`context`."""

    def __init__(self) -> None:
        self._main: dict[str, Any] = dict(DEFAULTS)
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        overrides = _overrides.get()
        if overrides is not None and key in overrides:
            return overrides[key]
        return self._main.get(key, default)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
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

    @property
    def config(self) -> dict[str, Any]:
        return {**self._main, **(_overrides.get() or {})}


settings = Settings()
configure = settings.configure
context = settings.context
