"""Callback hooks: observe every module, LM, adapter, tool and evaluation call.

Subclass :class:`BaseCallback` and override the hooks you need; register it globally with
``configure(callbacks=[...])`` or on one module / LM with ``callbacks=[...]``. A callback that
raises is logged and ignored: observing a program never breaks it.
"""

from __future__ import annotations

import functools
import inspect
import logging
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from .settings import settings

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class BaseCallback:
    """Hooks called around each kind of call. Every hook receives a ``call_id`` shared by the
    start and end of one call, so spans can be paired."""

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None: ...
    def on_module_end(self, call_id: str, outputs: Any | None, exception: Exception | None = None) -> None: ...
    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None: ...
    def on_lm_end(self, call_id: str, outputs: Any | None, exception: Exception | None = None) -> None: ...
    def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None: ...
    def on_adapter_format_end(self, call_id: str, outputs: Any | None, exception: Exception | None = None) -> None: ...
    def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None: ...
    def on_adapter_parse_end(self, call_id: str, outputs: Any | None, exception: Exception | None = None) -> None: ...
    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None: ...
    def on_tool_end(self, call_id: str, outputs: Any | None, exception: Exception | None = None) -> None: ...
    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None: ...
    def on_evaluate_end(self, call_id: str, outputs: Any | None, exception: Exception | None = None) -> None: ...


def _kind_of(instance: Any, fn_name: str) -> str:
    from_cls = getattr(type(instance), "_callback_kind", None)
    if fn_name in ("format",):
        return "adapter_format"
    if fn_name in ("parse",):
        return "adapter_parse"
    return from_cls or "module"


def active_callbacks(instance: Any) -> list[BaseCallback]:
    global_cbs = settings.get("callbacks") or []
    own = getattr(instance, "callbacks", None) or []
    if not global_cbs:
        return list(own)
    if not own:
        return list(global_cbs)
    return [*global_cbs, *[cb for cb in own if cb not in global_cbs]]


def _safe(cb: BaseCallback, hook: str, *args: Any, **kwargs: Any) -> None:
    try:
        getattr(cb, hook)(*args, **kwargs)
    except Exception:
        logger.exception("Callback %s.%s raised; ignored.", type(cb).__name__, hook)


def _bind_inputs(fn: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    try:
        bound = inspect.signature(fn).bind(instance, *args, **kwargs)
        bound.apply_defaults()
        data = dict(bound.arguments)
        data.pop("self", None)
        extra = data.pop("kwargs", None)
        if isinstance(extra, dict):
            data.update(extra)
        return data
    except TypeError:
        return {"args": args, **kwargs}


def with_callbacks(fn: F) -> F:
    """Decorate a method so registered callbacks see its start and end.

    The hook family is chosen from the instance's ``_callback_kind`` (``module``, ``lm``, ``tool``,
    ``evaluate``) or the method name (``format``/``parse`` on adapters).
    """
    kind = None

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def async_wrapper(instance: Any, *args: Any, **kwargs: Any) -> Any:
            cbs = active_callbacks(instance)
            if not cbs:
                return await fn(instance, *args, **kwargs)
            hook = kind or _kind_of(instance, fn.__name__)
            call_id = uuid.uuid4().hex
            inputs = _bind_inputs(fn, instance, args, kwargs)
            for cb in cbs:
                _safe(cb, f"on_{hook}_start", call_id=call_id, instance=instance, inputs=inputs)
            try:
                result = await fn(instance, *args, **kwargs)
            except Exception as exc:
                for cb in cbs:
                    _safe(cb, f"on_{hook}_end", call_id=call_id, outputs=None, exception=exc)
                raise
            for cb in cbs:
                _safe(cb, f"on_{hook}_end", call_id=call_id, outputs=result, exception=None)
            return result

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(instance: Any, *args: Any, **kwargs: Any) -> Any:
        cbs = active_callbacks(instance)
        if not cbs:
            return fn(instance, *args, **kwargs)
        hook = kind or _kind_of(instance, fn.__name__)
        call_id = uuid.uuid4().hex
        inputs = _bind_inputs(fn, instance, args, kwargs)
        for cb in cbs:
            _safe(cb, f"on_{hook}_start", call_id=call_id, instance=instance, inputs=inputs)
        try:
            result = fn(instance, *args, **kwargs)
        except Exception as exc:
            for cb in cbs:
                _safe(cb, f"on_{hook}_end", call_id=call_id, outputs=None, exception=exc)
            raise
        for cb in cbs:
            _safe(cb, f"on_{hook}_end", call_id=call_id, outputs=result, exception=None)
        return result

    return wrapper  # type: ignore[return-value]
