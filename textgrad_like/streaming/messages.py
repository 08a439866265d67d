"""What a streamed program yields: status messages, partial output fields and raw LM chunks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..callbacks import BaseCallback, active_calls
from ..settings import settings

logger = logging.getLogger(__name__)


@dataclass
class StreamResponse:
    """A piece of one output field of one predictor, as the LM writes it.

    Joining the ``chunk``s of a field gives its text as the adapter reads it (surrounding
    whitespace trimmed); ``is_last_chunk`` is set on the field's final piece.
    """

    predict_name: str
    signature_field_name: str
    chunk: str
    is_last_chunk: bool = False


@dataclass
class StatusMessage:
    """A progress message from a :class:`StatusMessageProvider` (e.g. "Calling tool search...")."""

    message: str


@dataclass
class StreamChunk:
    """A raw piece of LM output, yielded as is when ``streamify`` has no stream listeners.

    ``done`` marks the (empty) end of one LM reply; ``predict`` is the predictor whose call
    produced it (``None`` for an LM called outside a predictor).
    """

    text: str
    request_id: str
    lm: Any = field(default=None, repr=False)
    predict: Any = field(default=None, repr=False)
    done: bool = False


class StatusMessageProvider:
    """Status messages for each stage of a streamed program; override the ones you want.

    Each method returns the message text, or ``None`` for no message.

    >>> class Messages(StatusMessageProvider):
    ...     def lm_start_status_message(self, instance, inputs):
    ...         return "Thinking..."
    >>> streamify(program, status_message_provider=Messages())
    """

    def tool_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str | None:
        return f"Calling tool {getattr(instance, 'name', None) or type(instance).__name__}..."

    def tool_end_status_message(self, outputs: Any) -> str | None:
        return "Tool calling finished! Querying the LLM with tool calling results..."

    def module_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str | None:
        return None

    def module_end_status_message(self, outputs: Any) -> str | None:
        return None

    def lm_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str | None:
        return None

    def lm_end_status_message(self, outputs: Any) -> str | None:
        return None


class StreamSink:
    """The channel between a running program and the consumer of its stream.

    ``send`` is thread-safe and never blocks; once the consumer has stopped reading, sends are
    dropped. The LM publishes its pieces through :meth:`publish_lm_chunk` (see
    ``BaseLM.stream``).
    """

    def __init__(self, put: Callable[[Any], None]) -> None:
        self._put = put
        self.closed = False

    def send(self, item: Any) -> None:
        if self.closed:
            return
        try:
            self._put(item)
        except RuntimeError:  # the consumer's event loop is gone
            self.closed = True

    async def asend(self, item: Any) -> None:
        self.send(item)

    def close(self) -> None:
        self.closed = True

    def publish_lm_chunk(self, lm: Any, request_id: str, text: str, done: bool) -> None:
        self.send(StreamChunk(text=text, request_id=request_id, lm=lm, predict=current_predictor(), done=done))


def current_predictor() -> Any:
    """The innermost predictor (a module with ``_is_predictor``) whose call is running, or ``None``."""
    for call in reversed(active_calls()):
        if getattr(call.instance, "_is_predictor", False):
            return call.instance
    return None


class StatusStreamingCallback(BaseCallback):
    """Turns module, LM and tool calls into :class:`StatusMessage`s on the active stream."""

    def __init__(self, status_message_provider: StatusMessageProvider | None = None) -> None:
        self.status_message_provider = status_message_provider or StatusMessageProvider()

    @staticmethod
    def _send(message: str | None) -> None:
        sink = settings.get("send_stream")
        if message and sink is not None and hasattr(sink, "send"):
            sink.send(StatusMessage(str(message)))

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        if getattr(instance, "name", None) == "finish":
            return
        self._send(self.status_message_provider.tool_start_status_message(instance, inputs))

    def on_tool_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        if exception is not None or outputs == "Completed.":
            return
        self._send(self.status_message_provider.tool_end_status_message(outputs))

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._send(self.status_message_provider.lm_start_status_message(instance, inputs))

    def on_lm_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        if exception is None:
            self._send(self.status_message_provider.lm_end_status_message(outputs))

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._send(self.status_message_provider.module_start_status_message(instance, inputs))

    def on_module_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        if exception is None:
            self._send(self.status_message_provider.module_end_status_message(outputs))


__all__ = ["StatusMessage", "StatusMessageProvider", "StatusStreamingCallback", "StreamChunk", "StreamResponse",
           "StreamSink", "current_predictor"]
