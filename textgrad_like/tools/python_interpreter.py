"""A real sandbox for Python code written by a language model.

``PythonInterpreter`` runs code in CPython compiled to WebAssembly (Pyodide) inside a
Deno process that has almost no permissions. Nothing is ever ``exec``-ed in the host
process. It keeps DSPy 3.x's interface: ``PythonInterpreter(...).execute(code,
variables)`` returns the value of the last expression (or the printed output when there
is none), state persists across calls, host tools are callable from the sandbox, and
``SUBMIT(...)`` returns a :class:`FinalOutput`.

What the sandbox promises, why Deno + Pyodide, and the layers of isolation are in
``docs/sandbox.md``. The parts live in :mod:`textgrad_like.tools.sandbox`: the errors,
setup and the command line (``python -m textgrad_like.tools.python_interpreter --setup
--check``), the protocol channel, granted files, and the code that runs inside the
sandbox (``driver.py``, ``runner.js``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import inspect
import json
import keyword
import logging
import math
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from textgrad_like.callbacks import with_callbacks
from textgrad_like.errors import InterpreterError

from .sandbox.channel import Channel, ChannelTimeout
from .sandbox.errors import (
    CodeExecutionError,
    CodeInterpreterError,
    SandboxCrashedError,
    SandboxMemoryError,
    SandboxPermissionError,
    SandboxSetupError,
    SandboxSyntaxError,
    SandboxTimeoutError,
)
from .sandbox.grants import CHUNK_BYTES, Grant, GrantWriter, read_grant
from .sandbox.install import (
    PYODIDE_VERSION,
    RUNNER_PATH,
    find_deno,
    main,
    pyodide_dir,
    pyodide_ready,
    sandbox_cache_dir,
    setup_sandbox,
)

__all__ = [
    "PYODIDE_VERSION",
    "CodeExecutionError",
    "CodeInterpreterError",
    "FinalOutput",
    "PythonInterpreter",
    "SandboxCrashedError",
    "SandboxMemoryError",
    "SandboxPermissionError",
    "SandboxSetupError",
    "SandboxSyntaxError",
    "SandboxTimeoutError",
    "main",
    "pyodide_dir",
    "sandbox_cache_dir",
    "setup_sandbox",
]

logger = logging.getLogger(__name__)

_DRIVER_PATH = Path(__file__).resolve().parent / "sandbox" / "driver.py"
# V8 reserves this much writable memory before any Python code runs (measured ~700 MB
# with Deno 2.x); the data limit is memory_limit_mb on top of it.
_RUNTIME_DATA_OVERHEAD_MB = 900


class FinalOutput:
    """Returned by :meth:`PythonInterpreter.execute` when the code calls ``SUBMIT(...)``."""

    def __init__(self, output: Any) -> None:
        self.output = output

    def __repr__(self) -> str:
        return f"FinalOutput({self.output!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FinalOutput):
            return NotImplemented
        return self.output == other.output

    __hash__ = None  # type: ignore[assignment]


# =============================================================================
# Host-side value conversion
# =============================================================================


def _jsonable(value: Any, depth: int = 0) -> Any:
    """Convert a host value to JSON-compatible data (pydantic models, dataclasses, sets, ...)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth > 50:
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [_jsonable(v, depth + 1) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value), depth + 1)
    try:
        from pydantic_core import to_jsonable_python

        return _jsonable(to_jsonable_python(value), depth + 1)
    except Exception:
        return str(value)


def _canonical(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.path.expanduser(os.fspath(path)))


def _threads(pid: int) -> set[int] | None:
    """Thread ids of a process (Linux); None where the platform does not show them."""
    try:
        return {int(tid) for tid in os.listdir(f"/proc/{pid}/task")}
    except (OSError, ValueError):
        return None


# =============================================================================
# The interpreter
# =============================================================================


class PythonInterpreter:
    """Run LM-written Python in a Deno + Pyodide sandbox (DSPy 3.x interface).

    Example::

        with PythonInterpreter(tools={"lookup": lookup}) as interp:
            interp.execute("x = lookup('pi')")
            interp.execute("x * 2")

    ``PythonInterpreter({}).execute(code)`` also works: a mapping passed as the first
    argument is taken as the host tools (DSPy's first parameter is ``deno_command``,
    which is still accepted as a list of strings).
    """

    _callback_kind = "tool"

    execution_instructions = (
        "Python runs in Pyodide/WebAssembly (CPython 3.13 with its standard library). State persists across "
        "executions. Subprocesses, network access, native extensions and third-party packages are unavailable. "
        "Granted files are under /sandbox."
    )

    def __init__(
        self,
        deno_command: Sequence[str] | Mapping[str, Callable[..., Any]] | None = None,
        enable_read_paths: Sequence[str | os.PathLike[str]] | None = None,
        enable_write_paths: Sequence[str | os.PathLike[str]] | None = None,
        enable_env_vars: Sequence[str] | None = None,
        enable_network_access: Sequence[str] | None = None,
        sync_files: bool = True,
        tools: Mapping[str, Callable[..., Any]] | None = None,
        output_fields: Sequence[Mapping[str, Any]] | None = None,
        callbacks: Sequence[Any] | None = None,
        *,
        timeout: float | None = 30.0,
        memory_limit_mb: int | None = 1024,
        max_output_chars: int = 1_000_000,
        startup_timeout: float = 120.0,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """
        Args:
            deno_command: DSPy's custom command list for launching Deno (you take over the
                permission flags then), or a mapping of host tools (``PythonInterpreter({})``).
            enable_read_paths: files or directories the code may read; each appears as
                ``/sandbox/<basename>``.
            enable_write_paths: files or directories the code may write; changes are copied
                back to the host after each ``execute`` when ``sync_files`` is true.
            enable_env_vars: host environment variables copied into the sandbox's ``os.environ``.
            enable_network_access: accepted for DSPy compatibility but must be empty: this sandbox
                has no network (pass a host tool that does the request instead).
            sync_files: copy writes under ``/sandbox`` back to the granted write paths.
            tools: host callables exposed to the code by name; called with JSON-compatible
                arguments, their result is returned to the code as JSON-compatible data.
            output_fields: ``[{"name": ..., "type": ...}]``; ``SUBMIT`` then takes these fields.
            callbacks: callback handlers notified around ``execute``.
            timeout: seconds one ``execute`` may run (host tool time is not counted); None for no limit.
            memory_limit_mb: memory the code may allocate (Linux); None for the 4 GB WebAssembly cap only.
            max_output_chars: printed output kept per ``execute``.
            startup_timeout: seconds allowed for the sandbox to start.
            cache_dir: where :func:`setup_sandbox` put Pyodide (default :func:`sandbox_cache_dir`).
        """
        custom_command: list[str] | None = None
        if isinstance(deno_command, Mapping):
            if tools is not None:
                raise InterpreterError("Tools were given twice (as the first argument and as tools=); pass them once.")
            tools = deno_command
        elif deno_command is not None:
            if isinstance(deno_command, str) or not all(isinstance(x, str) for x in deno_command):
                raise InterpreterError("deno_command must be a list of strings (or a dict of host tools).")
            custom_command = list(deno_command)
        if timeout is not None and timeout <= 0:
            raise InterpreterError("timeout must be a positive number of seconds, or None for no limit.")
        if enable_network_access:
            raise InterpreterError(
                "This sandbox has no network access (it never runs asynchronous JavaScript such as fetch); "
                "drop enable_network_access and pass a host tool that does the request instead."
            )
        if memory_limit_mb is not None and memory_limit_mb < 16:
            raise InterpreterError("memory_limit_mb must be at least 16, or None for no limit.")

        self.tools: dict[str, Callable[..., Any]] = dict(tools or {})
        self.output_fields: list[dict[str, Any]] | None = [dict(f) for f in output_fields] if output_fields else None
        self._tool_config()  # validate names now
        self.enable_read_paths = [os.fspath(p) for p in enable_read_paths or []]
        self.enable_write_paths = [os.fspath(p) for p in enable_write_paths or []]
        self.enable_env_vars = [str(v) for v in enable_env_vars or []]
        self.enable_network_access: list[str] = []
        self.sync_files = sync_files
        self.callbacks = list(callbacks or [])
        self.timeout = timeout
        self.memory_limit_mb = memory_limit_mb
        self.max_output_chars = max_output_chars
        self.startup_timeout = startup_timeout
        self.cache_dir = cache_dir

        # Grants are resolved now (realpath): /sandbox/<name> shows what the path named at construction time.
        self._grants: dict[str, Grant] = {}
        for path, writable in [*((p, False) for p in self.enable_read_paths), *((p, True) for p in self.enable_write_paths)]:
            name = os.path.basename(os.path.normpath(path))
            host = _canonical(path)
            if not name or name in (".", ".."):
                raise InterpreterError(f"Cannot grant {path!r}: give a named file or directory.")
            known = self._grants.get(name)
            if known is not None and known.host != host:
                raise InterpreterError(f"Two granted paths share the name {name!r}; granted paths need unique basenames.")
            self._grants[name] = Grant(name, host, writable or (known is not None and known.writable))
        runtime = [str(RUNNER_PATH.parent), str(pyodide_dir(cache_dir))]
        for path in self.enable_write_paths:
            host = _canonical(path)
            if any(host == r or r.startswith(host + os.sep) or host.startswith(r + os.sep) for r in runtime):
                raise InterpreterError(f"Write path {path!r} overlaps the sandbox's own files; choose another path.")

        self._custom_command = custom_command
        self._proc: subprocess.Popen[bytes] | None = None
        self._channel: Channel | None = None
        self._baseline_threads: set[int] | None = None
        self._lock = threading.RLock()
        self._in_tool_call: int | None = None  # thread running a host tool
        self._closed = False
        self._tools_registered = False  # DSPy's RLM resets this after changing tools/output_fields
        self._sent_config: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self.startup_seconds: float | None = None

    # -- lifecycle -----------------------------------------------------------

    def _command(self) -> list[str]:
        if self._custom_command is not None:
            return [*self._custom_command]
        pyo = pyodide_dir(self.cache_dir)
        if not pyodide_ready(pyo):
            raise SandboxSetupError(
                f"Pyodide {PYODIDE_VERSION} is not installed in {pyo.parent.parent}. Run once (needs the npm registry): "
                "`python -m textgrad_like.tools.python_interpreter --setup`"
            )
        # Granted paths are not on this list: the host copies them in and out (sandbox/grants.py).
        args = [
            find_deno(), "run", "--no-config", "--no-lock", "--no-remote", "--no-npm", "--no-prompt",
            "--node-modules-dir=none", "--cached-only",
            f"--allow-read={RUNNER_PATH},{pyo}",
            "--deny-write", "--deny-net", "--deny-run", "--deny-env", "--deny-sys", "--deny-ffi",
        ]
        if self.memory_limit_mb is not None:
            args.append(f"--v8-flags=--max-old-space-size={max(128, min(self.memory_limit_mb, 2048))}")
        args += [str(RUNNER_PATH), str(pyo) + "/"]
        return args

    def _env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(sandbox_cache_dir()),
            "DENO_DIR": str(sandbox_cache_dir() / "deno"),
            "DENO_NO_UPDATE_CHECK": "1",
            "DENO_NO_PACKAGE_JSON": "1",
            "NO_COLOR": "1",
        }
        for key in ("LANG", "LC_ALL", "TMPDIR"):
            if key in os.environ:
                env[key] = os.environ[key]
        return env

    def _tool_config(self) -> dict[str, list[str]]:
        for name, fn in self.tools.items():
            if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
                raise InterpreterError(f"Tool name {name!r} is not a Python identifier; rename the tool.")
            if not callable(fn):
                raise InterpreterError(f"Tool {name!r} is not callable; pass a function.")
        outputs = []
        for field in self.output_fields or []:
            fname = field.get("name") if isinstance(field, Mapping) else None
            if not isinstance(fname, str) or not fname.isidentifier() or keyword.iskeyword(fname):
                raise InterpreterError(f"Output field {fname!r} is not a Python identifier.")
            outputs.append(fname)
        return {"tools": list(self.tools), "outputs": outputs}

    def start(self) -> None:
        """Start the sandbox now (otherwise the first :meth:`execute` starts it)."""
        with self._lock:
            if self._closed:
                raise InterpreterError("This PythonInterpreter was shut down; create a new one.")
            if self._proc is not None and self._proc.poll() is None:
                return
            self._spawn()

    def _spawn(self) -> None:
        began = time.perf_counter()
        cmd = self._command()
        for grant in self._grants.values():
            if not os.path.exists(grant.host):
                if grant.writable:
                    Path(grant.host).touch()
                else:
                    raise InterpreterError(f"Granted read path {grant.host!r} (for /sandbox/{grant.name}) does not exist.")
        sandbox_cache_dir().mkdir(parents=True, exist_ok=True)
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=self._env(), cwd=str(sandbox_cache_dir()), start_new_session=True,
            )
        except OSError as exc:
            raise SandboxSetupError(f"Could not start Deno ({cmd[0]}): {exc}. Install it with `pip install deno`.") from exc
        if self.memory_limit_mb is not None and hasattr(__import__("resource"), "prlimit"):
            import resource

            limit = (self.memory_limit_mb + _RUNTIME_DATA_OVERHEAD_MB) * 1024 * 1024
            with contextlib.suppress(OSError, ValueError):
                resource.prlimit(proc.pid, resource.RLIMIT_DATA, (limit, limit))
        self._proc = proc
        token = secrets.token_hex(16)
        # The largest line the runner sends: a reply (the driver keeps it under 8 bytes per
        # output character) or a 1 MiB file chunk in base64.
        line_cap = max(8 * self.max_output_chars + 65536, 2 * CHUNK_BYTES) + 65536
        self._channel = Channel(proc, token, line_cap=line_cap)
        self._baseline_threads = None
        try:
            self._channel.send_raw_line(token.encode("ascii"))  # before any sandboxed code exists
            ready = self._read_message(time.monotonic() + self.startup_timeout, "while starting")
            if ready.get("op") != "ready":
                raise SandboxSetupError(f"The sandbox sent {ready!r} instead of 'ready'.")
            config = {
                **self._tool_config(),
                "env": {k: os.environ[k] for k in self.enable_env_vars if k in os.environ},
                "max_output": self.max_output_chars,
            }
            self._roundtrip({"op": "init", "driver": _driver_source(), "config": json.dumps(config)}, "init_ok",
                            "while initialising")
            self._sent_config = (tuple(config["tools"]), tuple(config["outputs"]))
            self._tools_registered = True
            for grant in self._grants.values():
                self._mount(grant)
            self._roundtrip({"op": "put", "dir": True, "path": "/sandbox", "ack": True}, "put_ok", "while granting files")
        except (ChannelTimeout, SandboxTimeoutError) as exc:
            self._kill()
            raise SandboxSetupError(f"The sandbox did not start within {self.startup_timeout} s.") from exc
        except (OSError, ValueError) as exc:
            self._kill()
            raise SandboxSetupError(f"The sandbox failed to start: {exc}") from exc
        except InterpreterError as exc:
            self._kill()
            if isinstance(exc, SandboxSetupError):
                raise
            raise SandboxSetupError(f"The sandbox failed to start: {exc}") from exc
        # Every thread the runner has now is its own; one more after a call is sandboxed code's.
        self._baseline_threads = _threads(proc.pid)
        self.startup_seconds = time.perf_counter() - began
        logger.debug("Sandbox started in %.2f s", self.startup_seconds)

    def _mount(self, grant: Grant) -> None:
        root = f"/sandbox/{grant.name}"
        if os.path.isdir(grant.host):
            self._send({"op": "put", "path": root, "dir": True})  # shown even when empty
        for rel, is_dir, chunk, first in read_grant(grant.host):
            path = f"{root}/{rel}" if rel else root
            message: dict[str, Any] = {"op": "put", "path": path, "dir": is_dir}
            if not is_dir:
                message.update(data=base64.b64encode(chunk).decode("ascii"), append=not first)
            self._send(message)

    def _stderr_text(self) -> str:
        return self._channel.stderr_text() if self._channel is not None else ""

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        channel, self._channel = self._channel, None
        self._baseline_threads = None
        if channel is not None:
            channel.close()
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, OSError):
                proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            with contextlib.suppress(OSError, ValueError):
                if stream is not None:
                    stream.close()

    def shutdown(self) -> None:
        """Stop the sandbox process. The interpreter cannot be used afterwards."""
        with self._lock:
            self._closed = True
            proc, channel = self._proc, self._channel
            if proc is not None and channel is not None and proc.poll() is None:
                with contextlib.suppress(OSError, ValueError):
                    channel.send({"op": "shutdown"})
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=2)
            self._kill()

    def __enter__(self) -> PythonInterpreter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._kill()

    # -- protocol ------------------------------------------------------------

    def _send(self, message: Mapping[str, Any]) -> None:
        channel = self._channel
        if channel is None:
            raise SandboxCrashedError("The sandbox is not running; it will restart on the next call.")
        try:
            channel.send(dict(message))
        except (BrokenPipeError, OSError, ValueError):
            self._raise_dead("while sending a request")

    def _read_message(self, deadline: float | None, context: str) -> dict[str, Any]:
        channel = self._channel
        if channel is None:
            raise SandboxCrashedError("The sandbox is not running; it will restart on the next call.")
        try:
            message = channel.receive(deadline)
        except ChannelTimeout:
            raise SandboxTimeoutError(f"The sandbox did not answer {context}.") from None
        if message is None:
            self._raise_dead(context)
        op = message.get("op")
        if op == "fatal":
            self._kill()
            raise SandboxCrashedError(
                f"The sandboxed Python hit a fatal error {context}: {message.get('message')}. "
                "It will restart with empty state on the next call."
            )
        if op in ("host_error", "protocol_error"):
            raise SandboxCrashedError(f"The sandbox reported an internal error {context}: {message.get('message')}")
        return message

    def _roundtrip(self, message: Mapping[str, Any], expect: str, context: str) -> dict[str, Any]:
        self._send(message)
        reply = self._read_message(time.monotonic() + self.startup_timeout, context)
        if reply.get("op") != expect:
            raise SandboxCrashedError(f"Unexpected reply {context}: {str(reply)[:300]}")
        return reply

    def _raise_dead(self, context: str) -> None:
        proc = self._proc
        code = None
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = proc.wait(timeout=5)
        time.sleep(0.05)  # let the stderr pump catch up
        stderr = self._stderr_text()[-8000:]
        self._kill()
        lowered = stderr.lower()
        if "out of memory" in lowered or "allocation failed" in lowered or "memoryerror" in lowered:
            raise SandboxMemoryError(
                f"The sandbox ran out of memory {context} (limit {self.memory_limit_mb} MB) and was stopped; "
                "it will restart with empty state on the next call. Use less memory.",
                error_type="MemoryError",
            )
        raise SandboxCrashedError(
            f"The sandbox process exited (code {code}) {context}; it will restart with empty state on the next call."
            + (f"\n--- sandbox stderr ---\n{stderr}" if stderr else "")
        )

    def _check_threads(self) -> None:
        """Stop the sandbox if sandboxed code left a thread behind (a Worker that escaped the runner's guard)."""
        proc, baseline = self._proc, self._baseline_threads
        if proc is None or baseline is None:
            return
        current = _threads(proc.pid)
        if current is None or current <= baseline:
            return
        self._kill()
        raise SandboxPermissionError(
            "The code started a thread that would have outlived the call (a Web Worker, or an asynchronous Deno "
            "operation such as Deno.stdin.read); the sandbox was stopped and restarts with empty state on the next "
            "call. Do the work in the call itself, with synchronous APIs: threads and workers are not allowed.",
            error_type="PermissionError",
        )

    # -- execution -----------------------------------------------------------

    @with_callbacks
    def execute(self, code: str, variables: Mapping[str, Any] | None = None) -> Any:
        """Run ``code`` in the sandbox.

        Returns the value of the last expression if it is not None, else the printed
        output (a string), or a :class:`FinalOutput` when the code called ``SUBMIT``.
        Values come back as JSON-compatible data (tuples as lists, other objects as
        their ``repr``). Raises a :class:`CodeExecutionError` subclass when the code
        fails (the sandbox keeps its state), :class:`SandboxTimeoutError` past the time
        limit and :class:`SandboxCrashedError` if the sandbox died (both restart it).
        No code of the call runs after it returns.
        """
        if not isinstance(code, str):
            raise InterpreterError(f"execute() needs the code as a string, not {type(code).__name__}.")
        if self._in_tool_call == threading.get_ident():
            raise InterpreterError("A host tool cannot call execute() on the interpreter that is running it.")
        variables = dict(variables or {})
        for key in variables:
            if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key):
                raise InterpreterError(f"Variable name {key!r} is not a Python identifier; rename it.")
        with self._lock:
            if self._closed:
                raise InterpreterError("This PythonInterpreter was shut down; create a new one.")
            if self._proc is None or self._proc.poll() is not None:
                if self._proc is not None:
                    self._kill()
                self._spawn()
            request_id = secrets.token_hex(8)
            payload: dict[str, Any] = {"id": request_id, "code": code, "variables": _jsonable(variables)}
            config = self._tool_config()
            signature = (tuple(config["tools"]), tuple(config["outputs"]))
            if not self._tools_registered or signature != self._sent_config:
                payload["config"] = config
                self._sent_config = signature
                self._tools_registered = True
            self._send({"op": "exec", "id": request_id, "request": json.dumps(payload)})
            reply = self._await_result(request_id)
            self._check_threads()
            refused = self._sync_back()
            self._check_threads()
            result = self._interpret(reply)
            if refused:
                raise SandboxPermissionError(
                    "The sandbox refused to write outside the granted paths: " + "; ".join(refused)
                    + ". Links and files with several hard links inside a granted directory are never written "
                    "through; write to a new name instead.",
                    error_type="PermissionError", stdout=str(reply.get("stdout") or ""),
                )
            return result

    def __call__(self, code: str, variables: Mapping[str, Any] | None = None) -> Any:
        return self.execute(code, variables)

    def _await_result(self, request_id: str) -> dict[str, Any]:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            try:
                message = self._read_message(deadline, "while running the code")
            except SandboxTimeoutError:
                self._kill()
                raise SandboxTimeoutError(
                    f"The code ran longer than the {self.timeout} s time limit and was stopped. The sandbox will "
                    "restart with empty state on the next call: define your variables again, and make the code "
                    "faster (or raise timeout=)."
                ) from None
            op = message.get("op")
            if op == "tool_call":
                began = time.monotonic()
                request = message.get("request")
                self._send(self._run_tool(request if isinstance(request, Mapping) else {}))
                if deadline is not None:
                    deadline += time.monotonic() - began
                continue
            if op == "result" and message.get("id") == request_id:
                reply = message.get("reply")
                if not isinstance(reply, dict):
                    return {"ok": False, "type": "RuntimeError", "category": "error",
                            "message": "the sandbox's driver returned no valid result (did the code replace it?)"}
                return reply
            logger.debug("Ignoring unexpected sandbox message: %s", str(message)[:200])

    def _run_tool(self, message: Mapping[str, Any]) -> dict[str, Any]:
        name = message.get("name")
        fn = self.tools.get(name) if isinstance(name, str) else None
        if fn is None:
            return {"ok": False, "type": "NameError", "message": f"no host tool named {name!r}"}
        args = message.get("args") or []
        kwargs = message.get("kwargs") or {}
        try:
            inspect.signature(fn).bind(*args, **kwargs)
        except TypeError as exc:
            return {"ok": False, "type": "TypeError", "message": str(exc)}
        except ValueError:
            pass  # builtins without a signature: let the call decide
        self._in_tool_call = threading.get_ident()
        try:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                result = _run_awaitable(result)
            return {"ok": True, "value": _jsonable(result)}
        except Exception as exc:
            return {"ok": False, "type": type(exc).__name__, "message": str(exc)}
        finally:
            self._in_tool_call = None

    def _sync_back(self) -> list[str]:
        """Write the files under writable grants back to the host; the refused paths, if any."""
        if not self.sync_files or self._proc is None:
            return []
        refused: list[str] = []
        writable = [grant for grant in self._grants.values() if grant.writable]
        for i, grant in enumerate(writable):
            writer = GrantWriter(grant)
            context = f"while copying /sandbox/{grant.name} back to {grant.host}"
            # The runner sends only files changed since the last copy ("last" closes the round).
            self._send({"op": "sync", "virtual_path": f"/sandbox/{grant.name}", "last": i == len(writable) - 1})
            deadline = time.monotonic() + self.startup_timeout
            try:
                while True:
                    message = self._read_message(deadline, context)
                    op = message.get("op")
                    if op == "sync_ok":
                        break
                    if op == "file":
                        writer.chunk(str(message.get("path", "")), str(message.get("data", "")),
                                     bool(message.get("first")), bool(message.get("last")))
                    elif op == "dir":
                        writer.directory(str(message.get("path", "")))
                    else:
                        self._kill()
                        raise SandboxCrashedError(f"Unexpected message {context}: {str(message)[:200]}")
            except SandboxTimeoutError:
                self._kill()
                raise
            finally:
                refused += writer.finish()
        for line in refused:
            logger.warning("Sandbox write refused: %s", line)
        return refused

    def _interpret(self, reply: Mapping[str, Any]) -> Any:
        stdout = str(reply.get("stdout") or "")
        if reply.get("stderr"):
            logger.debug("sandboxed code wrote to stderr: %s", reply["stderr"][:2000])
        if reply.get("ok"):
            if "final" in reply:
                return FinalOutput(reply["final"])
            return reply.get("value") if reply.get("has_value") else stdout
        category = reply.get("category")
        error_type = str(reply.get("type") or "Error")
        message = str(reply.get("message") or error_type)
        tb = str(reply.get("traceback") or "")
        details = f"\n{tb.rstrip()}" if tb and tb.strip() != message else ""
        if category == "syntax":
            raise SandboxSyntaxError(
                f"The code is not valid Python: {message}{details}", error_type=error_type, traceback_text=tb, stdout=stdout
            )
        if category == "permission":
            raise SandboxPermissionError(
                f"The sandbox refused an operation: {message}. Files are only reachable under /sandbox when "
                f"granted (enable_read_paths/enable_write_paths); network and subprocesses are disabled.{details}",
                error_type=error_type, traceback_text=tb, stdout=stdout,
            )
        if category == "memory":
            raise SandboxMemoryError(
                f"The code ran out of memory (limit {self.memory_limit_mb} MB): {message}. Use less memory.{details}",
                error_type=error_type, traceback_text=tb, stdout=stdout,
            )
        raise CodeExecutionError(f"{message}{details}", error_type=error_type, traceback_text=tb, stdout=stdout)



def _driver_source() -> str:
    return _DRIVER_PATH.read_text(encoding="utf-8")


def _run_awaitable(awaitable: Any) -> Any:
    async def wrap() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wrap())
    # Called from inside a running loop: run the coroutine on a private loop in a thread.
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(wrap())
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")



if __name__ == "__main__":
    raise SystemExit(main())
