"""Scale-out: run a model in an inference server (vLLM, SGLang) and call it as an OpenAI endpoint.

The in-process local LM batches continuously on one CPU or GPU. When a program outgrows one
process (bigger models, many GPUs, paged attention), serve the model with vLLM or SGLang and use
the ordinary provider LM against it::

    lm = LM("openai/Qwen/Qwen2.5-7B-Instruct", api_base="http://127.0.0.1:8000/v1", api_key="local")

Structured outputs keep working: adapters send ``response_format`` with the outputs' JSON schema
and both servers decode under it (vLLM's guided decoding / SGLang's grammar backend, xgrammar by
default in both), so typed fields parse as they do with the in-process model.

:func:`serve` starts the server for you when the engine is installed and returns a
:class:`ServedLM` (an ``LM("openai/<model>", api_base=...)`` that owns the server process)::

    lm = serve("Qwen/Qwen2.5-7B-Instruct", engine="vllm", args=["--max-model-len", "8192"])
    dspy.configure(lm=lm)
    ...
    lm.kill()            # or: with serve(...) as lm: ...

``engine="textgrad_like"`` serves a ``local/...`` model with this package's own small OpenAI server
(:mod:`textgrad_like.lm.openai_server`): the same protocol without installing anything.
``command=`` runs any other executable that speaks the protocol (``{host}``, ``{port}`` and
``{model}`` in its arguments are filled in).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigurationError, LMError
from .lm import LM

logger = logging.getLogger(__name__)

ENGINES = ("vllm", "sglang", "textgrad_like")
DEFAULT_STARTUP_TIMEOUT_S = 900.0  # downloading and compiling a large model takes minutes


def engine_available(engine: str) -> bool:
    """Whether ``engine``'s Python package is installed (``textgrad_like`` always is)."""
    if engine == "textgrad_like":
        return True
    return importlib.util.find_spec(engine) is not None


def pick_engine(engine: str = "auto") -> str:
    """``engine`` checked, or for ``"auto"`` the first installed of vLLM and SGLang."""
    if engine == "auto":
        for name in ("vllm", "sglang"):
            if engine_available(name):
                return name
        raise ConfigurationError("serve(engine='auto') found neither vLLM nor SGLang. Install one (`pip install "
                                 "vllm` or `pip install 'sglang[all]'`, on a machine with a GPU), or use "
                                 "engine='textgrad_like' for a local/... model.")
    if engine not in ENGINES:
        raise ConfigurationError(f"engine={engine!r} is not known. Use one of {', '.join(ENGINES)} or 'auto', "
                                 "or pass command=[...] to run another OpenAI-compatible server.")
    if not engine_available(engine):
        raise ConfigurationError(f"engine={engine!r} is not installed in this Python ({sys.executable}). "
                                 f"Install it (`pip install {engine}`) or pick another engine.")
    return engine


def engine_command(engine: str, model: str, host: str, port: int, args: Sequence[str] = ()) -> list[str]:
    """The command line that starts ``engine`` serving ``model`` on ``host:port``."""
    python = sys.executable
    if engine == "vllm":
        base = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", model]
    elif engine == "sglang":
        base = [python, "-m", "sglang.launch_server", "--model-path", model]
    elif engine == "textgrad_like":
        base = [python, "-m", "textgrad_like.lm.openai_server", "--model", model, "--name",
                model.removeprefix("local/")]
    else:
        raise ConfigurationError(f"engine={engine!r} is not known; use one of {', '.join(ENGINES)}.")
    return [*base, "--host", host, "--port", str(port), *args]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One server subprocess: started by :meth:`start`, ready when ``GET /v1/models`` answers."""

    def __init__(self, command: list[str], host: str, port: int, env: dict[str, str] | None = None,
                 startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S) -> None:
        self.command = command
        self.host = host
        self.port = port
        self.env = env
        self.startup_timeout_s = float(startup_timeout_s)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._lock = threading.RLock()  # start() stops a server that failed while holding it

    @property
    def api_base(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the process (once) and wait until it serves ``/v1/models``."""
        with self._lock:
            if self.running():
                return
            self._log = tempfile.NamedTemporaryFile(prefix="textgrad_like-serve-", suffix=".log", delete=False)
            logger.info("Starting %s (log: %s)", " ".join(self.command), self._log.name)
            try:
                self.process = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT,
                                                env={**os.environ, **(self.env or {})}, start_new_session=True)
            except OSError as exc:
                raise ConfigurationError(f"Could not start {self.command[0]!r} ({exc}). Check that it is installed "
                                         "and executable.") from exc
            _LIVE.add(self)
            self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise LMError(f"The server exited with status {self.process.returncode} before it was ready. "
                              f"Its last output:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.api_base}/models", timeout=2) as response:
                    if response.status == 200:
                        json.loads(response.read() or b"{}")
                        return
            except (OSError, ValueError, urllib.error.URLError):
                pass
            time.sleep(0.25)
        tail = self.log_tail()
        self.stop()
        raise LMError(f"The server did not answer GET {self.api_base}/models within {self.startup_timeout_s:.0f} s. "
                      f"Raise startup_timeout_s for big models. Its last output:\n{tail}")

    def log_tail(self, chars: int = 2000) -> str:
        if self._log is None:
            return ""
        with contextlib.suppress(OSError), open(self._log.name, encoding="utf-8", errors="replace") as f:
            return f.read()[-chars:]
        return ""

    def stop(self, timeout_s: float = 15.0) -> None:
        """Terminate the server's process group (SIGTERM, then SIGKILL after ``timeout_s``)."""
        with self._lock:
            process = self.process
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=timeout_s)
            _LIVE.discard(self)
            if self._log is not None:
                self._log.close()


_LIVE: set[ServerProcess] = set()


@atexit.register
def _stop_all() -> None:  # servers this process started never outlive it
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop(timeout_s=5.0)


class ServedLM(LM):
    """``LM("openai/<model>", api_base=<its server>)`` that starts and stops that server.

    Build it with :func:`serve`. :meth:`launch` starts the server (if it is not running) and waits
    until it answers; :meth:`kill` stops it. Usable as a context manager.
    """

    def __init__(self, model: str, server: ServerProcess, **kwargs: Any) -> None:
        kwargs.setdefault("api_key", "local")
        super().__init__(f"openai/{model}", api_base=server.api_base, **kwargs)
        self.server = server

    def launch(self, launch_kwargs: dict[str, Any] | None = None) -> None:
        """Start the server and wait until ``GET /v1/models`` answers."""
        self.server.start()

    def kill(self, launch_kwargs: dict[str, Any] | None = None) -> None:
        """Stop the server process."""
        self.server.stop()

    def __enter__(self) -> ServedLM:
        self.launch()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.kill()


def serve(model: str, engine: str = "auto", *, host: str = "127.0.0.1", port: int | None = None,
          args: Sequence[str] = (), command: Sequence[str] | None = None, env: dict[str, str] | None = None,
          startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S, launch: bool = True, **lm_kwargs: Any) -> ServedLM:
    """Start an OpenAI-compatible server for ``model`` and return the LM that calls it.

    Args:
        model: what the engine loads (a hub id or path; ``local/...`` for ``engine="textgrad_like"``);
            it is also the model id requests name.
        engine: ``"vllm"``, ``"sglang"``, ``"textgrad_like"`` or ``"auto"`` (vLLM, else SGLang).
        host, port: where it listens (a free port by default; keep the loopback host unless other
            machines must reach it).
        args: extra command-line arguments for the engine (``["--tensor-parallel-size", "2"]``).
        command: run this instead of an engine (``{host}``, ``{port}``, ``{model}`` are filled in).
        env: extra environment variables for the server process.
        startup_timeout_s: how long to wait for ``GET /v1/models``.
        launch: start it now (otherwise call ``.launch()``).
        **lm_kwargs: ``LM`` settings (``temperature``, ``max_tokens``, ``cache``, ...).

    Raises:
        ConfigurationError: the engine is not installed, or the command cannot be started.
        LMError: the server exited or did not become ready in time (its last output is in the message).
    """
    chosen_port = int(port) if port else free_port(host)
    if command is not None:
        argv = [str(a).format(host=host, port=chosen_port, model=model) for a in command]
    else:
        argv = engine_command(pick_engine(engine), model, host, chosen_port, args)
    served_as = model.removeprefix("local/") if command is None and engine == "textgrad_like" else model
    server = ServerProcess(argv, host, chosen_port, env, startup_timeout_s)
    lm = ServedLM(served_as, server, **lm_kwargs)
    if launch:
        lm.launch()
    return lm
