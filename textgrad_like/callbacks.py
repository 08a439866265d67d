"""Callback hooks: observe every module, LM, adapter, tool and evaluation call.

Subclass :class:`BaseCallback` and override the hooks you need; register it globally with
``configure(callbacks=[...])`` or on one module / LM / adapter / tool with ``callbacks=[...]``.
Global callbacks run first, then the instance's own. A callback that raises is logged and
ignored: observing a program never breaks it.

Which hooks a decorated call reaches is decided by the instance's ``_callback_kind`` class
attribute (``"module"`` — the default —, ``"lm"``, ``"adapter"``, ``"tool"``, ``"evaluate"``,
``"compile"``) and, for adapters, by the method name (``format`` or ``parse``).

While a decorated call runs, :data:`ACTIVE_CALL_ID` holds its ``call_id`` (so a start hook
reading it sees its *parent* call's id), and :func:`active_calls` lists the enclosing calls,
outermost first. Both are :mod:`contextvars`, so they follow threads started by the library's
executor and asyncio tasks.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .settings import settings

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: The ``call_id`` of the innermost decorated call running in this thread / task (``None`` outside).
ACTIVE_CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("textgrad_like_active_call_id",
                                                                           default=None)


@dataclass(frozen=True)
class ActiveCall:
    """One decorated call in progress: its id, the instance and the hook family (``"lm"``, ...)."""

    call_id: str
    instance: Any
    kind: str


_ACTIVE_CALLS: contextvars.ContextVar[tuple[ActiveCall, ...]] = contextvars.ContextVar(
    "textgrad_like_active_calls", default=()
)

_WRAPPED_MARK = "__textgrad_like_callbacks__"


class BaseCallback:
    """Hooks called around each kind of call.

    Every ``*_start`` hook receives ``call_id``, the ``instance`` being called and its ``inputs``
    (the call's arguments by name, ``self`` left out and ``**kwargs`` merged in). Every ``*_end``
    hook receives the same ``call_id``, the ``outputs`` (``None`` when the call raised) and the
    ``exception`` (``None`` on success), so start and end can be paired.

    >>> class Printer(BaseCallback):
    ...     def on_lm_end(self, call_id, outputs, exception=None):
    ...         logging.getLogger("lm").info("LM replied %r", outputs)
    >>> configure(callbacks=[Printer()])
    """

    # modules: Module.__call__ / acall and methods a user decorates with ``with_callbacks``
    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """A module (``Module.__call__``/``acall``) is about to run."""

    def on_module_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        """A module finished (``outputs``) or raised (``exception``)."""

    # language models: BaseLM.__call__ / acall
    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """An LM is about to be called; ``inputs`` holds ``prompt``, ``messages`` and the LM arguments."""

    def on_lm_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        """An LM returned its completions (a list of strings) or raised."""

    # adapters: Adapter.format / Adapter.parse
    def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """An adapter is about to turn a signature, demos and inputs into messages."""

    def on_adapter_format_end(self, call_id: str, outputs: Any | None,
                              exception: BaseException | None = None) -> None:
        """An adapter produced the messages (or raised)."""

    def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """An adapter is about to parse one completion into output fields."""

    def on_adapter_parse_end(self, call_id: str, outputs: Any | None,
                             exception: BaseException | None = None) -> None:
        """An adapter parsed a completion into a dict of fields (or raised ``AdapterParseError``)."""

    # tools
    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """A tool is about to be called."""

    def on_tool_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        """A tool returned (or raised)."""

    # evaluation
    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """``Evaluate.__call__`` is about to run a program over a devset."""

    def on_evaluate_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        """``Evaluate.__call__`` finished with an ``EvaluationResult`` (or raised)."""

    # optimizers (``_callback_kind = "compile"``)
    def on_compile_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """An optimizer's ``compile`` is about to run."""

    def on_compile_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        """An optimizer's ``compile`` returned the optimized program (or raised)."""


_ADAPTER_METHODS = {"format": "adapter_format", "parse": "adapter_parse"}
_KNOWN_KINDS = {"module", "lm", "tool", "evaluate", "compile"}


def hook_family(instance: Any, method_name: str) -> str:
    """The hook family (``"module"``, ``"lm"``, ``"adapter_format"``, ...) for ``instance.method_name``."""
    kind = getattr(type(instance), "_callback_kind", None) or "module"
    if kind == "adapter":
        return _ADAPTER_METHODS.get(method_name, "module")
    return kind if kind in _KNOWN_KINDS else "module"


def active_callbacks(instance: Any) -> list[Any]:
    """Global callbacks, then the instance's own ones (each callback once)."""
    global_cbs = list(settings.get("callbacks") or [])
    own = getattr(instance, "callbacks", None) or []
    if not isinstance(own, (list, tuple)):
        own = []
    if not global_cbs:
        return list(own)
    if not own:
        return global_cbs
    return [*global_cbs, *[cb for cb in own if not any(cb is g for g in global_cbs)]]


def active_calls() -> tuple[ActiveCall, ...]:
    """The decorated calls now running in this thread / task, outermost first.

    Only calls that had at least one callback registered are listed.
    """
    return _ACTIVE_CALLS.get()


def _call_hook(cb: Any, hook: str, **kwargs: Any) -> None:
    method = getattr(cb, hook, None)
    if method is None:
        return  # a duck-typed callback that does not implement this hook
    try:
        method(**kwargs)
    except Exception:
        logger.warning("Callback %s.%s raised; the error is ignored.", type(cb).__name__, hook, exc_info=True)


def flat_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """A start hook's ``inputs`` with ``**kwargs`` merged in and an empty ``*args`` dropped: the call's
    arguments by name (``{"question": ...}`` for a module call), for display."""
    flat = {k: v for k, v in inputs.items() if k != "kwargs" and not (k == "args" and v == ())}
    extra = inputs.get("kwargs")
    if isinstance(extra, dict):
        flat.update(extra)
    return flat


def _bind_inputs(fn: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> dict[str, Any]:
    """The ``inputs`` a start hook receives, in DSPy's shape (``inspect.getcallargs``): every parameter of
    the decorated method but ``self`` by name, defaults filled in; ``*args``/``**kwargs`` stay one entry
    each, so ``Tool.__call__(**kwargs)`` gives ``{"kwargs": {...}}`` and ``Module.__call__`` gives
    ``{"args": (...), "kwargs": {...}}``."""
    try:
        bound = inspect.signature(fn).bind(instance, *args, **kwargs)
    except (TypeError, ValueError):
        return {"args": args, "kwargs": dict(kwargs)}
    bound.apply_defaults()
    data = dict(bound.arguments)
    data.pop(next(iter(data)), None)  # self / instance
    return data


class _CallScope:
    """One decorated call: start hooks on entry, the call marked active while it runs, end hooks on exit.

    The sync and the async wrapper share it — only the call itself (``fn(...)`` or ``await fn(...)``)
    differs between them: ``with _CallScope(...) as scope: return scope.done(fn(...))``. With no
    callback registered it does nothing.
    """

    __slots__ = ("fn", "instance", "args", "kwargs", "callbacks", "family", "call_id", "outputs", "_tokens")

    def __init__(self, fn: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.fn, self.instance, self.args, self.kwargs = fn, instance, args, kwargs
        self.callbacks = active_callbacks(instance)
        self.outputs: Any = None

    def __enter__(self) -> _CallScope:
        if not self.callbacks:
            return self
        self.family = hook_family(self.instance, self.fn.__name__)
        self.call_id = uuid.uuid4().hex
        inputs = _bind_inputs(self.fn, self.instance, self.args, self.kwargs)
        for cb in self.callbacks:
            _call_hook(cb, f"on_{self.family}_start", call_id=self.call_id, instance=self.instance, inputs=inputs)
        # the active id is set after the start hooks: a start hook reading ACTIVE_CALL_ID sees the parent
        self._tokens = (
            ACTIVE_CALL_ID.set(self.call_id),
            _ACTIVE_CALLS.set((*_ACTIVE_CALLS.get(), ActiveCall(self.call_id, self.instance, self.family))),
        )
        return self

    def done(self, outputs: Any) -> Any:
        """Record the call's result (for the end hooks) and return it."""
        self.outputs = outputs
        return outputs

    def __exit__(self, exc_type: Any, exception: BaseException | None, tb: Any) -> None:
        if not self.callbacks:
            return
        id_token, calls_token = self._tokens
        try:
            _ACTIVE_CALLS.reset(calls_token)
            ACTIVE_CALL_ID.reset(id_token)
        except (ValueError, RuntimeError):  # finished in another context (should not happen); restore by value
            ACTIVE_CALL_ID.set(id_token.old_value if id_token.old_value is not contextvars.Token.MISSING else None)
            _ACTIVE_CALLS.set(_ACTIVE_CALLS.get()[:-1])
        outputs = None if exception is not None else self.outputs
        for cb in self.callbacks:
            _call_hook(cb, f"on_{self.family}_end", call_id=self.call_id, outputs=outputs, exception=exception)


def with_callbacks(fn: F) -> F:
    """Decorate a method so registered callbacks see its start and end.

    Works on sync and ``async`` methods. The hook family comes from the instance's
    ``_callback_kind`` (see the module docstring); a method of any other class is reported as a
    module call. Decorating twice has no further effect.
    """
    if getattr(fn, _WRAPPED_MARK, False):
        return fn

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def async_wrapper(instance: Any, *args: Any, **kwargs: Any) -> Any:
            with _CallScope(fn, instance, args, kwargs) as scope:
                return scope.done(await fn(instance, *args, **kwargs))

        setattr(async_wrapper, _WRAPPED_MARK, True)
        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(instance: Any, *args: Any, **kwargs: Any) -> Any:
        with _CallScope(fn, instance, args, kwargs) as scope:
            return scope.done(fn(instance, *args, **kwargs))

    setattr(wrapper, _WRAPPED_MARK, True)
    return wrapper  # type: ignore[return-value]


def wrap_methods(cls: type, *names: str) -> None:
    """Decorate ``cls``'s own methods ``names`` with :func:`with_callbacks` (idempotent).

    Meant for ``__init_subclass__`` of base classes whose subclasses override a hooked method,
    e.g. ``Adapter`` subclasses overriding ``parse``.
    """
    for name in names:
        method = cls.__dict__.get(name)
        if method is not None and callable(method) and not getattr(method, _WRAPPED_MARK, False):
            setattr(cls, name, with_callbacks(method))


__all__ = ["ACTIVE_CALL_ID", "ActiveCall", "BaseCallback", "active_callbacks", "active_calls", "flat_inputs", "hook_family",
           "with_callbacks", "wrap_methods"]
