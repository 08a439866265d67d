"""OpenTelemetry tracing: every module, LM, adapter, tool, evaluation and optimizer call as a span.

>>> from opentelemetry.sdk.trace import TracerProvider
>>> tracing.enable_tracing(TracerProvider())   # or None: the global provider
>>> program(question="...")                      # one trace: module > adapter/LM spans

Spans nest like the calls (the parent is the current OpenTelemetry span, kept in
:mod:`contextvars`, so it follows threads started by the library and asyncio tasks). Each span
carries its inputs and outputs as JSON (truncated), LM spans the model, tokens, cost and whether
the cache answered. Optimizers wrap each trial in :func:`trial_span` so that a trial is a trace
of its own. Needs ``pip install opentelemetry-sdk`` (or ``textgrad_like[tracing]``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

from .callbacks import BaseCallback, flat_inputs
from .errors import ConfigurationError
from .lm.secrets import REDACTED, is_secret_key, redact_text
from .settings import settings

logger = logging.getLogger(__name__)

INSTRUMENTATION_NAME = "textgrad_like"
DEFAULT_MAX_ATTRIBUTE_LENGTH = 8192


def _import_otel() -> Any:
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise ConfigurationError("Tracing needs OpenTelemetry: pip install opentelemetry-sdk "
                                 "(or pip install 'textgrad_like[tracing]').") from exc
    return trace


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-able copy of ``value`` for a span attribute; credentials (by argument name, or inside a
    URL) are shown as ``***``."""
    if depth > 6:
        return redact_text(repr(value))
    if isinstance(value, str):
        return redact_text(value) if "://" in value or "earer " in value else value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        return {str(k): (REDACTED if is_secret_key(k) else _jsonable(v, depth + 1)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v, depth + 1) for v in value]
    items = getattr(value, "items", None)
    if callable(items) and hasattr(value, "keys"):  # Example / Prediction
        try:
            return {str(k): (REDACTED if is_secret_key(k) else _jsonable(v, depth + 1)) for k, v in items()}
        except Exception:
            return redact_text(repr(value))
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # pydantic models
        try:
            return _jsonable(dump(), depth + 1)
        except Exception:
            return redact_text(repr(value))
    if isinstance(value, type):
        return getattr(value, "__name__", repr(value))
    return redact_text(repr(value))


def to_attribute(value: Any, max_length: int = DEFAULT_MAX_ATTRIBUTE_LENGTH) -> str:
    """A JSON text for a span attribute, cut to ``max_length`` characters."""
    try:
        text = json.dumps(_jsonable(value), ensure_ascii=False, default=repr)
    except (TypeError, ValueError, RecursionError):
        text = redact_text(repr(value))
    if len(text) > max_length:
        text = text[: max(0, max_length - 15)] + "...[truncated]"
    return text


def _span_name(kind: str, instance: Any) -> str:
    cls = type(instance).__name__
    if kind == "module":
        return f"{cls}.forward"
    if kind == "lm":
        return f"{cls}.__call__"
    if kind == "adapter_format":
        return f"{cls}.format"
    if kind == "adapter_parse":
        return f"{cls}.parse"
    if kind == "tool":
        return f"Tool.{getattr(instance, 'name', None) or cls}"
    if kind == "evaluate":
        return f"{cls}.__call__"
    if kind == "compile":
        return f"{cls}.compile"
    return f"{cls}.{kind}"


class _OpenSpan:
    __slots__ = ("span", "token", "kind", "instance", "inputs")

    def __init__(self, span: Any, token: Any, kind: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.span = span
        self.token = token
        self.kind = kind
        self.instance = instance
        self.inputs = inputs


class TracingCallback(BaseCallback):
    """A callback exporting each call as an OpenTelemetry span (see the module docstring).

    Args:
        tracer_provider: where spans go; ``None`` uses OpenTelemetry's global provider.
        capture_content: record inputs and outputs (prompts, replies) as attributes.
        max_attribute_length: longest text attribute; longer ones are cut.
    """

    def __init__(self, tracer_provider: Any = None, capture_content: bool = True,
                 max_attribute_length: int = DEFAULT_MAX_ATTRIBUTE_LENGTH) -> None:
        trace = _import_otel()
        from . import __version__

        provider = tracer_provider or trace.get_tracer_provider()
        self.tracer = provider.get_tracer(INSTRUMENTATION_NAME, __version__)
        self.capture_content = capture_content
        self.max_attribute_length = max_attribute_length
        self._open: dict[str, _OpenSpan] = {}
        self._lock = threading.Lock()

    # --- span bookkeeping ----------------------------------------------------------------------
    def _start(self, kind: str, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        from opentelemetry import context, trace

        inputs = flat_inputs(inputs)  # the hook's inputs are DSPy-shaped ({"args": ..., "kwargs": ...})

        attributes: dict[str, Any] = {"textgrad_like.kind": kind, "textgrad_like.call_id": call_id,
                                      "textgrad_like.class": type(instance).__name__}
        if self.capture_content:
            attributes["textgrad_like.inputs"] = to_attribute(inputs, self.max_attribute_length)
        attributes.update(self._start_attributes(kind, instance, inputs))
        span = self.tracer.start_span(_span_name(kind, instance), attributes=attributes)
        token = context.attach(trace.set_span_in_context(span))
        with self._lock:
            self._open[call_id] = _OpenSpan(span, token, kind, instance, inputs)

    def _end(self, call_id: str, outputs: Any, exception: BaseException | None) -> None:
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode

        with self._lock:
            entry = self._open.pop(call_id, None)
        if entry is None:
            return
        span = entry.span
        try:
            if exception is None:
                if self.capture_content:
                    span.set_attribute("textgrad_like.outputs", to_attribute(outputs, self.max_attribute_length))
                for key, value in self._end_attributes(entry, outputs).items():
                    if value is not None:
                        span.set_attribute(key, value)
            else:
                span.record_exception(exception)
                span.set_status(Status(StatusCode.ERROR, redact_text(f"{type(exception).__name__}: {exception}")))
        finally:
            try:
                context.detach(entry.token)
            except Exception:  # ended in another context: the span still ends
                logger.debug("Could not detach the tracing context of %s.", call_id, exc_info=True)
            span.end()

    # --- attributes per kind -----------------------------------------------------------------------
    def _start_attributes(self, kind: str, instance: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if kind == "lm":
            out["gen_ai.request.model"] = str(getattr(instance, "model", ""))
            lm_kwargs = {**(getattr(instance, "kwargs", None) or {}), **inputs}
            for key in ("temperature", "max_tokens", "top_p", "n"):
                value = lm_kwargs.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    out[f"gen_ai.request.{key}"] = value
        elif kind == "module":
            signature = getattr(instance, "signature", None)
            text = getattr(signature, "signature", None)
            if isinstance(text, str):
                out["textgrad_like.signature"] = text
        elif kind == "tool":
            name = getattr(instance, "name", None)
            if isinstance(name, str):
                out["textgrad_like.tool.name"] = name
        return out

    def _end_attributes(self, entry: _OpenSpan, outputs: Any) -> dict[str, Any]:
        if entry.kind == "lm":
            return self._lm_usage(entry, outputs)
        if entry.kind == "evaluate":
            score = getattr(outputs, "score", None)
            return {"textgrad_like.evaluate.score": float(score)} if isinstance(score, (int, float)) else {}
        if entry.kind == "module":
            get_usage = getattr(outputs, "get_lm_usage", None)
            usage = get_usage() if callable(get_usage) else None
            if usage:
                return {"textgrad_like.lm_usage": to_attribute(usage, self.max_attribute_length),
                        "gen_ai.usage.input_tokens": sum(int(u.get("prompt_tokens", 0)) for u in usage.values()),
                        "gen_ai.usage.output_tokens": sum(int(u.get("completion_tokens", 0)) for u in usage.values())}
        return {}

    @staticmethod
    def _lm_usage(entry: _OpenSpan, outputs: Any) -> dict[str, Any]:
        """Tokens, cost and cache use of one LM call, read from the LM's history entry for it."""
        messages = entry.inputs.get("messages")
        if messages is None and entry.inputs.get("prompt") is not None:
            messages = [{"role": "user", "content": entry.inputs["prompt"]}]
        history = getattr(entry.instance, "history", None)
        if history is None or messages is None:
            return {}
        try:
            recent = list(history)[-64:]
        except Exception:
            return {}
        for record in reversed(recent):
            if not isinstance(record, dict):
                continue
            if record.get("messages") is not messages and record.get("messages") != messages:
                continue
            if outputs is not None and record.get("outputs") != outputs:
                continue
            usage = record.get("usage") or {}
            cost = record.get("cost")
            return {
                "gen_ai.usage.input_tokens": int(usage.get("prompt_tokens", 0) or 0),
                "gen_ai.usage.output_tokens": int(usage.get("completion_tokens", 0) or 0),
                "textgrad_like.lm.cost": float(cost) if isinstance(cost, (int, float)) else None,
                "textgrad_like.lm.cache_hit": bool(record.get("cache_hit", False)),
                "gen_ai.response.model": str(record.get("model", "")),
            }
        return {}

    # --- hooks ------------------------------------------------------------------------------------
    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start("module", call_id, instance, inputs)

    def on_module_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        self._end(call_id, outputs, exception)

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start("lm", call_id, instance, inputs)

    def on_lm_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        self._end(call_id, outputs, exception)

    def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start("adapter_format", call_id, instance, inputs)

    def on_adapter_format_end(self, call_id: str, outputs: Any | None,
                              exception: BaseException | None = None) -> None:
        self._end(call_id, outputs, exception)

    def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start("adapter_parse", call_id, instance, inputs)

    def on_adapter_parse_end(self, call_id: str, outputs: Any | None,
                             exception: BaseException | None = None) -> None:
        self._end(call_id, outputs, exception)

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start("tool", call_id, instance, inputs)

    def on_tool_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        self._end(call_id, outputs, exception)

    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start("evaluate", call_id, instance, inputs)

    def on_evaluate_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        self._end(call_id, outputs, exception)

    def on_compile_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start("compile", call_id, instance, inputs)

    def on_compile_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        self._end(call_id, outputs, exception)


def enable_tracing(tracer_provider: Any = None, capture_content: bool = True,
                   max_attribute_length: int = DEFAULT_MAX_ATTRIBUTE_LENGTH) -> TracingCallback:
    """Export spans for every call from now on (replaces an earlier ``enable_tracing``).

    Registered like ``configure(callbacks=[...])``: process-wide, or for the current block when
    called inside ``context(...)``. Returns the :class:`TracingCallback`.
    """
    callback = TracingCallback(tracer_provider, capture_content=capture_content,
                               max_attribute_length=max_attribute_length)
    others = [cb for cb in settings.get("callbacks") or [] if not isinstance(cb, TracingCallback)]
    settings.configure(callbacks=[*others, callback])
    return callback


def disable_tracing() -> None:
    """Stop exporting spans (removes the callbacks added by :func:`enable_tracing`)."""
    others = [cb for cb in settings.get("callbacks") or [] if not isinstance(cb, TracingCallback)]
    settings.configure(callbacks=others)


def active_tracing() -> TracingCallback | None:
    """The tracing callback now registered, if any."""
    for cb in settings.get("callbacks") or []:
        if isinstance(cb, TracingCallback):
            return cb
    return None


@contextlib.contextmanager
def trial_span(name: str = "trial", attributes: dict[str, Any] | None = None,
               tracer_provider: Any = None) -> Iterator[Any]:
    """Run one optimizer trial as a trace of its own: a root span all its calls nest under.

    A no-op (yields ``None``) when tracing is not enabled and no ``tracer_provider`` is given, so
    optimizers can always use it. The trial span links to the span that was current (e.g. the
    optimizer's ``compile`` span) so the trials of one run can be found together.

    >>> for i, candidate in enumerate(candidates):
    ...     with trial_span(f"trial {i}", {"trial.index": i}):
    ...         score = evaluate(candidate)
    """
    if tracer_provider is not None:
        _import_otel()
        tracer = tracer_provider.get_tracer(INSTRUMENTATION_NAME)
    else:
        callback = active_tracing()
        if callback is None:
            yield None
            return
        tracer = callback.tracer
    from opentelemetry import context, trace
    from opentelemetry.trace import Link, Status, StatusCode

    current = trace.get_current_span().get_span_context()
    links = [Link(current)] if current.is_valid else None
    attrs = {"textgrad_like.kind": "trial", **{k: v for k, v in (attributes or {}).items() if v is not None}}
    span = tracer.start_span(name, context=context.Context(), attributes=attrs, links=links)
    token = context.attach(trace.set_span_in_context(span))
    try:
        yield span
    except BaseException as exc:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        context.detach(token)
        span.end()


__all__ = ["TracingCallback", "active_tracing", "disable_tracing", "enable_tracing", "to_attribute", "trial_span"]
