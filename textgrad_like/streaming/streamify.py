"""``streamify``: run a program and yield its progress while it runs.

The stream yields, in order of production: :class:`StatusMessage` s (from a
:class:`StatusMessageProvider`), :class:`StreamResponse` pieces of the output fields followed
by :class:`StreamListener` s, and finally the program's :class:`Prediction`. An error raised by
the program reaches the consumer as that same exception, after what was streamed before it.

The program runs in a worker thread (or, with ``is_async_program=True``, as a task of the
consumer's event loop); LMs publish their text as they produce it through ``BaseLM.stream``.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import queue
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Iterator
from dataclasses import asdict
from typing import Any

from ..primitives import Prediction
from ..settings import settings
from .listener import StreamListener, find_predictor_for_stream_listeners
from .messages import (
    StatusMessage,
    StatusMessageProvider,
    StatusStreamingCallback,
    StreamChunk,
    StreamResponse,
    StreamSink,
)


class _Finished:
    __slots__ = ("result",)

    def __init__(self, result: Any) -> None:
        self.result = result


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Router:
    """Turns what the running program sends into what the consumer sees."""

    def __init__(self, listeners: list[StreamListener], routes: dict[int, list[StreamListener]],
                 include_final: bool) -> None:
        self.listeners = listeners
        self.routes = routes
        self.include_final = include_final
        self.finished = False

    def route(self, item: Any) -> Iterator[Any]:
        if isinstance(item, _Failed):
            self.finished = True
            raise item.error
        if isinstance(item, _Finished):
            self.finished = True
            for listener in self.listeners:
                last = listener.finalize()
                if last is not None:
                    yield last
            result = item.result
            if self.include_final or not self.listeners or not any(lst.stream_start for lst in self.listeners):
                yield result
            return
        if isinstance(item, StreamChunk):
            if not self.listeners:
                if item.text:
                    yield item
                return
            for listener in self.routes.get(id(item.predict), ()):
                out = listener.receive(item)
                if out is not None:
                    yield out
            return
        yield item  # status messages and anything a custom module sends


def streamify(program: Any, status_message_provider: StatusMessageProvider | None = None,
              stream_listeners: list[StreamListener] | None = None,
              include_final_prediction_in_output_stream: bool = True, is_async_program: bool = False,
              async_streaming: bool = True) -> Callable[..., Any]:
    """Wrap ``program`` so that calling it returns a stream of its progress.

    >>> stream_qa = streamify(qa, stream_listeners=[StreamListener("answer")])
    >>> async for item in stream_qa(question="Why is the sky blue?"):
    ...     if isinstance(item, StreamResponse): ui.append(item.chunk)
    ...     elif isinstance(item, Prediction): final = item

    Args:
        program: a module (or any callable) to run.
        status_message_provider: makes the :class:`StatusMessage` s; the default announces tool calls.
        stream_listeners: the output fields to stream. Without listeners, raw
            :class:`StreamChunk` s of every LM reply are yielded instead.
        include_final_prediction_in_output_stream: yield the final Prediction (when ``False`` it is
            still yielded if no listener saw its field, so the result is never lost).
        is_async_program: run ``program.acall`` on the consumer's event loop instead of
            ``program(...)`` in a worker thread.
        async_streaming: return an async generator function (default) or, with ``False``, a
            plain generator function.
    """
    listeners = list(stream_listeners or [])
    routes = find_predictor_for_stream_listeners(program, listeners) if listeners else {}
    status_callback = StatusStreamingCallback(status_message_provider)

    def callbacks() -> list[Any]:
        current = [cb for cb in settings.get("callbacks") or [] if not isinstance(cb, StatusStreamingCallback)]
        return [*current, status_callback]

    def router() -> _Router:
        for listener in listeners:
            listener.reset()
        return _Router(listeners, routes, include_final_prediction_in_output_stream)

    def run_sync(args: tuple[Any, ...], kwargs: dict[str, Any], sink: StreamSink) -> Any:
        with settings.context(send_stream=sink, callbacks=callbacks()):
            if is_async_program:
                return asyncio.run(program.acall(*args, **kwargs))
            return program(*args, **kwargs)

    def start_worker(args: tuple[Any, ...], kwargs: dict[str, Any], sink: StreamSink) -> threading.Thread:
        ctx = contextvars.copy_context()

        def work() -> None:
            try:
                result = ctx.run(run_sync, args, kwargs, sink)
            except BaseException as exc:  # delivered to the consumer, who re-raises it
                sink.send(_Failed(exc))
                return
            sink.send(_Finished(result))

        thread = threading.Thread(target=work, name="textgrad_like-streamify", daemon=True)
        thread.start()
        return thread

    def sync_streamer(*args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        items: queue.Queue[Any] = queue.Queue()
        sink = StreamSink(items.put)
        route = router()
        start_worker(args, kwargs, sink)
        try:
            while not route.finished:
                yield from route.route(items.get())
        finally:
            sink.close()

    async def async_streamer(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[Any] = asyncio.Queue()
        sink = StreamSink(lambda item: loop.call_soon_threadsafe(items.put_nowait, item))
        route = router()
        task: asyncio.Task[Any] | None = None
        if is_async_program:
            async def run_async() -> None:
                try:
                    with settings.context(send_stream=sink, callbacks=callbacks()):
                        result = await program.acall(*args, **kwargs)
                except BaseException as exc:
                    sink.send(_Failed(exc))
                    return
                sink.send(_Finished(result))

            task = asyncio.ensure_future(run_async())
        else:
            start_worker(args, kwargs, sink)
        try:
            while not route.finished:
                for out in route.route(await items.get()):
                    yield out
        finally:
            sink.close()
            if task is not None and not task.done():
                task.cancel()

    return async_streamer if async_streaming else sync_streamer


def apply_sync_streaming(async_generator: AsyncGenerator[Any, None]) -> Generator[Any, None, None]:
    """Consume an async stream from plain code: runs it on an event loop in a worker thread."""
    items: queue.Queue[Any] = queue.Queue()
    ctx = contextvars.copy_context()

    async def pump() -> None:
        try:
            async for item in async_generator:
                items.put(item)
        except BaseException as exc:
            items.put(_Failed(exc))
            return
        items.put(_Finished(None))

    threading.Thread(target=lambda: ctx.run(asyncio.run, pump()), daemon=True).start()
    while True:
        item = items.get()
        if isinstance(item, _Finished):
            return
        if isinstance(item, _Failed):
            raise item.error
        yield item


async def streaming_response(streamer: AsyncGenerator[Any, None]) -> AsyncGenerator[str, None]:
    """Server-sent events (``data: {...}\\n\\n`` lines, then ``data: [DONE]``) for a web response."""
    async for value in streamer:
        if isinstance(value, Prediction):
            data: dict[str, Any] = {"prediction": dict(value.items())}
        elif isinstance(value, StreamResponse):
            data = {"chunk": asdict(value)}
        elif isinstance(value, StatusMessage):
            data = {"status": value.message}
        elif isinstance(value, StreamChunk):
            data = {"chunk": {"text": value.text}}
        elif isinstance(value, str) and value.startswith("data:"):
            yield value
            continue
        else:
            data = {"value": value}
        yield f"data: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"
    yield "data: [DONE]\n\n"


__all__ = ["apply_sync_streaming", "streamify", "streaming_response"]
