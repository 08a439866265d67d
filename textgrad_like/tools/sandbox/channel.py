"""The host's end of the line protocol with the runner, with bounded memory.

The host writes one JSON object per line to the runner's stdin. The runner answers with
lines of the form ``<token><JSON>``, where ``token`` is a random secret the host hands
the runner as the very first line on stdin, before any sandboxed code exists. Sandboxed
code can write to the runner's stdout too, but it never sees the token (it was read
before Pyodide started and lives only in the runner's module scope), so every line
without it is dropped: a forged reply is never taken for the runner's.

Memory stays bounded whatever the sandbox writes: stdout is read in chunks, a line is
dropped as soon as it cannot carry the token or passes ``line_cap`` bytes, at most
``_QUEUE_SIZE`` decoded messages wait for the host, and only the last
``stderr_tail_bytes`` bytes of stderr are kept.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import queue
import subprocess
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["Channel", "ChannelTimeout"]

_CHUNK = 1 << 16
_QUEUE_SIZE = 2
_EOF = object()


class ChannelTimeout(Exception):
    """No message arrived before the deadline (internal: the interpreter turns it into a typed error)."""


class Channel:
    """Pumps the runner's stdout and stderr on two daemon threads; :meth:`receive` returns its messages."""

    def __init__(self, proc: subprocess.Popen[bytes], token: str, *, line_cap: int,
                 stderr_tail_bytes: int = 16 * 1024) -> None:
        self.proc = proc
        self._token = token.encode("ascii")
        self._line_cap = line_cap
        self._stderr_cap = stderr_tail_bytes
        self._stderr = bytearray()
        self._stderr_lock = threading.Lock()
        self._messages: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_SIZE)
        self._stopped = threading.Event()
        self.dropped_lines = 0
        threading.Thread(target=self._pump_stdout, name="sandbox-stdout", daemon=True).start()
        threading.Thread(target=self._pump_stderr, name="sandbox-stderr", daemon=True).start()

    # -- host -> runner ----------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        """Write one request line; raises ``OSError``/``ValueError`` if the runner is gone."""
        stdin = self.proc.stdin
        if stdin is None:
            raise BrokenPipeError("the sandbox has no stdin")
        stdin.write(json.dumps(message).encode("utf-8") + b"\n")
        stdin.flush()

    def send_raw_line(self, line: bytes) -> None:
        stdin = self.proc.stdin
        if stdin is None:
            raise BrokenPipeError("the sandbox has no stdin")
        stdin.write(line + b"\n")
        stdin.flush()

    # -- runner -> host ----------------------------------------------------------------

    def receive(self, deadline: float | None) -> dict[str, Any] | None:
        """The next authenticated message, or None once the runner's stdout closed.

        Raises :class:`ChannelTimeout` when ``deadline`` (``time.monotonic()``) passes first.
        """
        while True:
            wait = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            if wait <= 0:
                raise ChannelTimeout
            try:
                item = self._messages.get(timeout=wait)
            except queue.Empty:
                continue
            return None if item is _EOF else item

    def stderr_text(self) -> str:
        with self._stderr_lock:
            return self._stderr.decode("utf-8", "replace")

    def close(self) -> None:
        self._stopped.set()

    # -- pumps -------------------------------------------------------------------------

    def _put(self, item: Any) -> None:
        while not self._stopped.is_set():
            try:
                self._messages.put(item, timeout=0.25)
                return
            except queue.Full:
                continue

    def _accept(self, line: bytes) -> None:
        token = self._token
        if len(line) < len(token) or not hmac.compare_digest(line[: len(token)], token):
            if line.strip():
                self.dropped_lines += 1
            return
        try:
            message = json.loads(line[len(token):])
        except (ValueError, UnicodeDecodeError):
            self.dropped_lines += 1
            return
        if isinstance(message, dict):
            self._put(message)

    def _pump_stdout(self) -> None:
        stream = self.proc.stdout
        if stream is None:
            self._put(_EOF)
            return
        fd = stream.fileno()
        token_len = len(self._token)
        buffer = bytearray()
        discarding = False  # inside a line that can no longer be a message
        try:
            while not self._stopped.is_set():
                try:
                    chunk = os.read(fd, _CHUNK)
                except OSError:
                    break
                if not chunk:
                    break
                start = 0
                while start < len(chunk):
                    newline = chunk.find(b"\n", start)
                    end = len(chunk) if newline < 0 else newline
                    if not discarding:
                        buffer += chunk[start:end]
                        if len(buffer) > self._line_cap or (
                            len(buffer) >= token_len and not hmac.compare_digest(bytes(buffer[:token_len]), self._token)
                        ):
                            discarding = True
                            self.dropped_lines += 1
                            buffer = bytearray()
                    if newline < 0:
                        break
                    if not discarding:
                        self._accept(bytes(buffer))
                    buffer = bytearray()
                    discarding = False
                    start = newline + 1
        finally:
            self._put(_EOF)

    def _pump_stderr(self) -> None:
        stream = self.proc.stderr
        if stream is None:
            return
        fd = stream.fileno()
        debug = logger.isEnabledFor(logging.DEBUG)
        while not self._stopped.is_set():
            try:
                chunk = os.read(fd, _CHUNK)
            except OSError:
                return
            if not chunk:
                return
            with self._stderr_lock:
                self._stderr += chunk
                if len(self._stderr) > self._stderr_cap:
                    del self._stderr[: len(self._stderr) - self._stderr_cap]
            if debug:
                logger.debug("sandbox stderr: %s", chunk[:500].decode("utf-8", "replace"))

