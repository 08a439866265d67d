"""Continuous batching: generation requests from many threads share one decode loop.

A :class:`ContinuousBatcher` owns one worker thread and an *engine* (see :class:`Engine`; the
real one is :class:`~textgrad_like.lm.decoding.DecodeEngine`). When the engine is idle, the first
request waits ``wait_ms`` for others to arrive, so a burst starts as one batch. While the engine is
decoding, a request that arrives joins at the next decoding step (its prompt is prefilled, then
its row decodes with the others), and a row that finishes leaves at once; its caller is answered
without waiting for the rest of the batch.

Nothing here imports torch: the batcher is tested with a pure-Python engine.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import ConfigurationError, LMError

logger = logging.getLogger(__name__)

DEFAULT_MAX_BATCH_SIZE = 16
DEFAULT_BATCH_WAIT_MS = 20.0  # lets a burst of threads start together; later requests join a running batch
STATS_HISTORY = 256  # admissions remembered in ``batch_sizes``


@dataclass(eq=False)
class GenerationRow:
    """One completion to produce: a prompt, its settings and (after the run) its result.

    ``adapter`` names the LoRA adapter to generate with (``None``: the base model); rows with
    different adapters never share a forward pass.
    """

    prompt_ids: list[int]
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    constraint: Any = None  # a textgrad_like.lm.constrained.Constraint, or None
    stop: tuple[str, ...] = ()
    adapter: str | None = None
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str = ""
    on_text: Callable[[str], None] | None = None  # receives the decoded text so far, token by token
    reused_prefix_tokens: int = 0  # prompt tokens whose KV came from the prefix cache
    joined_running_batch: bool = False  # admitted while other rows were decoding


class Engine(Protocol):
    """What the batcher drives: it admits rows (prefill) and advances all of them by one token."""

    def admit(self, rows: list[GenerationRow]) -> list[GenerationRow]:
        """Prefill ``rows`` and add them to the running batch; returns those already finished."""

    def step(self) -> list[GenerationRow]:
        """Decode one token for every running row; returns the rows that finished."""

    def active(self) -> int:
        """Rows running now."""

    def reset(self) -> None:
        """Drop every running row (after a failure)."""


@dataclass(eq=False)
class _Request:
    rows: list[GenerationRow]
    remaining: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class ContinuousBatcher:
    """Runs requests through ``engine`` in one worker thread, admitting new rows between decode steps.

    Args:
        engine: the prefill/decode engine (see :class:`Engine`).
        max_batch_size: most rows decoding at once; requests beyond it wait for rows to finish.
        wait_ms: how long the first request of an idle engine waits for others.
        name: the worker thread's name prefix.
    """

    def __init__(self, engine: Engine, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                 wait_ms: float = DEFAULT_BATCH_WAIT_MS, name: str = "local-lm") -> None:
        if max_batch_size < 1:
            raise ConfigurationError("max_batch_size must be at least 1.")
        if wait_ms < 0:
            raise ConfigurationError("batch_wait_ms must be 0 or more.")
        self.engine = engine
        self.max_batch_size = int(max_batch_size)
        self.wait_s = float(wait_ms) / 1000.0
        #: rows admitted together, for the last :data:`STATS_HISTORY` admissions (tests, benchmarks)
        self.batch_sizes: deque[int] = deque(maxlen=STATS_HISTORY)
        #: running totals: decode steps, rows admitted, rows that joined a running batch, widest step
        self.stats = {"steps": 0, "rows": 0, "joined_running": 0, "max_active": 0}
        self._queue: queue.Queue[_Request] = queue.Queue()
        self._waiting: deque[_Request] = deque()
        self._owner: dict[int, _Request] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._name = name

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=f"{self._name}-batcher", daemon=True)
                self._thread.start()

    def submit(self, rows: list[GenerationRow]) -> list[GenerationRow]:
        """Run ``rows`` (with whatever else is running or arrives) and return them filled in."""
        request = _Request(rows, remaining=len(rows))
        if not rows:
            return rows
        self._ensure_worker()
        self._queue.put(request)
        request.done.wait()
        if request.error is not None:
            raise request.error
        return rows

    # -- the worker ---------------------------------------------------------------------------------
    def _take(self, block: bool) -> list[_Request]:
        """Requests to admit now: all that fit in the free rows (waiting ``wait_s`` for a burst when
        the engine is idle and ``block`` is set)."""
        while True:  # move everything that arrived into the waiting line, in order
            try:
                self._waiting.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if block and not self._waiting:
            self._waiting.append(self._queue.get())
            deadline = time.monotonic() + self.wait_s
            while sum(len(r.rows) for r in self._waiting) < self.max_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    self._waiting.append(self._queue.get(timeout=remaining))
                except queue.Empty:
                    break
        taken: list[_Request] = []
        room = self.max_batch_size - self.engine.active()
        while self._waiting:
            size = len(self._waiting[0].rows)
            if size > room and (taken or self.engine.active()):
                break  # wait for rows to finish (a request larger than the batch runs alone)
            taken.append(self._waiting.popleft())
            room -= size
        return taken

    def _admit(self, requests: list[_Request]) -> None:
        running = self.engine.active()
        rows = [row for request in requests for row in request.rows]
        for request in requests:
            for row in request.rows:
                self._owner[id(row)] = request
                row.joined_running_batch = running > 0
        try:
            finished = self.engine.admit(rows)
        except Exception:
            if len(requests) == 1:
                raise
            finished = []  # find the request that failed: admit them one at a time
            for request in requests:
                try:
                    finished += self.engine.admit(request.rows)
                except Exception as exc:
                    self._fail([request], exc)
        self.batch_sizes.append(len(rows))
        self.stats["rows"] += len(rows)
        if running:
            self.stats["joined_running"] += len(rows)
        self._finish(finished)

    def _finish(self, rows: list[GenerationRow]) -> None:
        for row in rows:
            request = self._owner.pop(id(row), None)
            if request is None:
                continue
            request.remaining -= 1
            if request.remaining <= 0 and not request.done.is_set():
                request.done.set()

    def _fail(self, requests: list[_Request], exc: BaseException) -> None:
        error = exc if isinstance(exc, Exception) else LMError(f"Local generation stopped: {exc!r}")
        for request in requests:
            for row in request.rows:
                self._owner.pop(id(row), None)
            request.error = error
            request.done.set()

    def _loop(self) -> None:
        while True:
            requests = self._take(block=self.engine.active() == 0)
            if requests:
                try:
                    self._admit(requests)
                except BaseException as exc:  # hand the failure to the callers; keep serving
                    logger.exception("Local LM: admitting %d request(s) failed", len(requests))
                    self._fail([r for r in requests if not r.done.is_set()], exc)
            if self.engine.active() == 0:
                continue
            self.stats["max_active"] = max(self.stats["max_active"], self.engine.active())
            try:
                finished = self.engine.step()
                self.stats["steps"] += 1
            except BaseException as exc:
                logger.exception("Local LM decode step of %d rows failed", self.engine.active())
                running = {id(r): r for r in self._owner.values()}
                self.engine.reset()
                self._fail(list(running.values()), exc)
                continue
            self._finish(finished)
