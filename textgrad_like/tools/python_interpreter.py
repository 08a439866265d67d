"""A real sandbox for Python code written by a language model.

``PythonInterpreter`` runs code in CPython compiled to WebAssembly (Pyodide) inside a
Deno process that has almost no permissions. Nothing is ever ``exec``-ed in the host
process. It keeps DSPy 3.x's interface: ``PythonInterpreter(...).execute(code,
variables)`` returns the value of the last expression (or the printed output when there
is none), state persists across calls, host tools are callable from the sandbox, and
``SUBMIT(...)`` returns a :class:`FinalOutput`.

Why Deno + Pyodide
------------------
Two candidates were put through the same security test (read ``/etc/passwd``, write a
file, open a socket, run ``os.system``/``subprocess``, loop forever, allocate 8 GB):

* ``pydantic-monty`` (a Python interpreter written in Rust, worker subprocesses): it
  refused every attack (``PermissionError`` for files, no ``subprocess``/``socket``
  modules, ``os.system`` missing) and starts in milliseconds. But it runs a subset of
  Python: ``yield`` is a syntax error and ``statistics``, ``fractions`` and much of the
  standard library do not exist. LM-written code uses all of those, so a failure there
  would be "the sandbox cannot run this", not "the code is wrong".
* Deno + Pyodide: real CPython 3.13 with the full standard library. Python's own
  file/socket/process calls never leave WebAssembly (an in-memory file system), and
  everything that could reach the machine (``import js; js.Deno.readTextFileSync``,
  ``fetch``, ``node:child_process``) is checked by Deno's permission system. The test
  showed every attack refused: files outside granted paths -> ``NotCapable`` /
  ``PermissionError``; sockets and ``subprocess`` -> ``PermissionError``; an infinite
  loop -> killed at the time limit; 8 GB -> ``MemoryError`` (a kernel ``RLIMIT_DATA`` on
  the Deno process, plus WebAssembly's 4 GB address space). The host stays intact and
  the interpreter is usable afterwards. Cost: start-up is CPU-bound (V8 compiles the
  WebAssembly): 3.7-5 s on an idle 2-core machine, up to ~20 s on a busy one; then
  ~1-3 ms per ``execute`` (median, ``benchmarks/sandbox.py``). Limits: no third-party
  packages (numpy etc. would need the network), no ``sqlite3``, no top-level ``await``;
  asynchronous JavaScript (``fetch``) never runs because the runner's loop is synchronous.

Deno + Pyodide was chosen for compatibility at equal security.

Layers of isolation
-------------------
1. Deno runs with ``--allow-read`` for the runner, the local Pyodide files and granted
   paths only (the runner revokes the Pyodide and runner paths once loaded),
   ``--allow-write`` for granted write paths only, and explicit ``--deny-net``,
   ``--deny-run``, ``--deny-env``, ``--deny-sys``, ``--deny-ffi``, ``--no-prompt``,
   ``--no-remote`` and ``--no-npm``. The process gets a minimal environment (no API keys).
2. Inside Python, ``os.system``, ``subprocess`` and socket connections raise
   ``PermissionError`` with a clear message; the JS runner also refuses Node's
   ``child_process`` and ``ws`` modules so a bypass cannot crash Pyodide.
3. Time limit: the host kills the process group after ``timeout`` seconds and starts a
   fresh sandbox on the next call (variables are lost; the error says so).
4. Memory limit: ``RLIMIT_DATA`` (Linux) on the Deno process = ``memory_limit_mb`` plus the
   runtime's own reservation, and ``--max-old-space-size`` for the JS heap. Python sees a
   ``MemoryError`` and the sandbox survives.

Setup
-----
Pyodide is not on PyPI; it is installed from the npm registry into a local cache by an
explicit step, and runs offline afterwards::

    python -m textgrad_like.tools.python_interpreter --setup

The Deno binary comes from the ``deno`` PyPI package. ``TEXTGRAD_LIKE_SANDBOX_DIR``
overrides the cache directory (default ``~/.cache/textgrad_like/sandbox``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import inspect
import json
import keyword
import logging
import math
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from textgrad_like.callbacks import with_callbacks
from textgrad_like.errors import InterpreterError

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
    "pyodide_dir",
    "sandbox_cache_dir",
    "setup_sandbox",
]

logger = logging.getLogger(__name__)

PYODIDE_VERSION = "0.29.4"
_RUNNER_PATH = Path(__file__).resolve().parent / "sandbox" / "runner.js"
# V8 reserves this much writable memory before any Python code runs (measured ~700 MB
# with Deno 2.x); the data limit is memory_limit_mb on top of it.
_RUNTIME_DATA_OVERHEAD_MB = 900
_STDERR_TAIL_CHARS = 8000
_MAX_LINE_BYTES = 256 * 1024 * 1024


# =============================================================================
# Errors
# =============================================================================

CodeInterpreterError = InterpreterError  # DSPy's name for the base class


class SandboxSetupError(InterpreterError):
    """Deno or the local Pyodide files are missing or do not start."""


class CodeExecutionError(InterpreterError):
    """The submitted code raised inside a healthy sandbox (its state is kept).

    Attributes:
        error_type: the Python exception class name raised in the sandbox.
        traceback_text: the Python traceback, as the sandboxed interpreter printed it.
        stdout: what the code printed before it failed.
    """

    def __init__(self, message: str, *, error_type: str = "Error", traceback_text: str = "", stdout: str = "") -> None:
        self.message = message
        self.error_type = error_type
        self.traceback_text = traceback_text
        self.stdout = stdout
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


class SandboxSyntaxError(CodeExecutionError, SyntaxError):
    """The submitted code is not valid Python; fix the code and run it again."""


class SandboxPermissionError(CodeExecutionError, PermissionError):
    """The code tried something the sandbox refuses (file outside granted paths, network, subprocess)."""


class SandboxMemoryError(CodeExecutionError, MemoryError):
    """The code passed the sandbox's memory limit."""


class SandboxTimeoutError(InterpreterError, TimeoutError):
    """The code ran past the time limit; the sandbox was killed and will restart on the next call."""


class SandboxCrashedError(InterpreterError):
    """The sandbox process died; it will restart (with empty state) on the next call."""


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
# Setup: Deno binary and local Pyodide files
# =============================================================================


def sandbox_cache_dir() -> Path:
    """Directory that holds the sandbox's local files (``TEXTGRAD_LIKE_SANDBOX_DIR`` overrides)."""
    env = os.environ.get("TEXTGRAD_LIKE_SANDBOX_DIR")
    if env:
        return Path(env).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base).resolve() / "textgrad_like" / "sandbox"


def pyodide_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the pinned Pyodide release lives once :func:`setup_sandbox` has run."""
    root = Path(cache_dir).expanduser().resolve() if cache_dir else sandbox_cache_dir()
    return root / f"pyodide-{PYODIDE_VERSION}" / "node_modules" / "pyodide"


_PYODIDE_FILES = ("pyodide.mjs", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json")


def _pyodide_ready(path: Path) -> bool:
    return all((path / name).is_file() for name in _PYODIDE_FILES)


def setup_sandbox(cache_dir: str | os.PathLike[str] | None = None, *, force: bool = False) -> Path:
    """Install Pyodide from the npm registry into the local cache (needs ``npm``); returns its path.

    This is the only step that uses the network; the sandbox runs offline afterwards.
    """
    target = pyodide_dir(cache_dir)
    if _pyodide_ready(target) and not force:
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise SandboxSetupError(
            "npm was not found. Install Node.js/npm (e.g. `apt-get install -y npm`), then run "
            "`python -m textgrad_like.tools.python_interpreter --setup`."
        )
    prefix = target.parent.parent
    prefix.mkdir(parents=True, exist_ok=True)
    cmd = [
        npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--ignore-scripts",
        "--no-save", "--loglevel=error", f"pyodide@{PYODIDE_VERSION}",
    ]
    logger.info("Installing Pyodide %s into %s", PYODIDE_VERSION, prefix)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0 or not _pyodide_ready(target):
        raise SandboxSetupError(
            f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}\n"
            "Check that the npm registry is reachable, then run the setup again."
        )
    return target


def _find_deno() -> str:
    try:
        from deno import find_deno_bin

        return str(find_deno_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("deno")
        if found:
            return found
    raise SandboxSetupError("Deno was not found. Install it with `pip install deno` (the PyPI package ships the binary).")


# =============================================================================
# The Python driver that runs inside the sandbox
# =============================================================================

_DRIVER = r'''
import ast as _ast
import builtins as _builtins
import io as _io
import json as _json
import linecache as _linecache
import os as _os
import sys as _sys
import traceback as _traceback


class ToolError(Exception):
    """A host tool failed."""


class _TGFinal(BaseException):
    pass


def _tg_refuse_process(*args, **kwargs):
    raise PermissionError("subprocesses are disabled in this sandbox; compute the result in Python instead")


for _name in ("system", "popen", "fork", "forkpty", "execv", "execve", "execvp", "execvpe", "execl", "execle",
              "execlp", "execlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe", "spawnl", "spawnle", "spawnlp",
              "spawnlpe", "posix_spawn", "posix_spawnp", "kill", "killpg"):
    if hasattr(_os, _name):
        setattr(_os, _name, _tg_refuse_process)

import subprocess as _subprocess


class _RefusedPopen:
    def __init__(self, *args, **kwargs):
        _tg_refuse_process()


_subprocess.Popen = _RefusedPopen

import socket as _socket


def _tg_refuse_network(*args, **kwargs):
    raise PermissionError("network access is disabled in this sandbox")


for _name in ("connect", "connect_ex", "bind", "listen", "sendto"):
    setattr(_socket.socket, _name, _tg_refuse_network)
_socket.create_connection = _tg_refuse_network
_socket.getaddrinfo = _tg_refuse_network
_socket.gethostbyname = _tg_refuse_network

_TG_NS = {"__name__": "__main__", "__builtins__": _builtins, "ToolError": ToolError}
_TG_STATE = {"cell": 0, "max_output": 1000000, "outputs": []}


def _tg_jsonable(value, depth=0):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else repr(value)
    if depth < 50 and isinstance(value, (list, tuple)):
        return [_tg_jsonable(v, depth + 1) for v in value]
    if depth < 50 and isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _tg_jsonable(v, depth + 1) for k, v in value.items()}
    return repr(value)


def _tg_call_tool(name, args, kwargs):
    try:
        request = _json.dumps({"op": "tool_call", "name": name, "args": list(args), "kwargs": kwargs})
    except (TypeError, ValueError) as exc:
        raise TypeError(f"arguments to host tool {name!r} must be JSON-serializable: {exc}") from None
    reply = _json.loads(_tg_host_call(request))
    if reply.get("ok"):
        return reply.get("value")
    kind = reply.get("type") or "ToolError"
    message = reply.get("message") or "tool failed"
    exc_class = getattr(_builtins, kind, None)
    if isinstance(exc_class, type) and issubclass(exc_class, Exception) and kind != "Exception":
        raise exc_class(f"host tool {name!r} failed: {message}")
    raise ToolError(f"host tool {name!r} failed with {kind}: {message}")


def _tg_make_tool(name):
    def tool(*args, **kwargs):
        return _tg_call_tool(name, args, kwargs)
    tool.__name__ = name
    tool.__qualname__ = name
    return tool


def _tg_make_submit(fields):
    def SUBMIT(*args, **kwargs):
        if not fields:
            if len(args) + len(kwargs) != 1:
                raise TypeError("SUBMIT takes exactly one value")
            value = args[0] if args else next(iter(kwargs.values()))
            raise _TGFinal({"output": value})
        if len(args) > len(fields):
            raise TypeError(f"SUBMIT takes {len(fields)} values: {', '.join(fields)}")
        result = dict(zip(fields, args))
        for key, value in kwargs.items():
            if key not in fields:
                raise TypeError(f"SUBMIT got an unknown field {key!r}; expected {', '.join(fields)}")
            if key in result:
                raise TypeError(f"SUBMIT got {key!r} twice")
            result[key] = value
        missing = [f for f in fields if f not in result]
        if missing:
            raise TypeError(f"SUBMIT is missing {', '.join(missing)}")
        raise _TGFinal(result)
    return SUBMIT


def _tg_configure(config):
    for name in config.get("tools", []):
        _TG_NS[name] = _tg_make_tool(name)
    _TG_NS["SUBMIT"] = _tg_make_submit(config.get("outputs", []))


def _tg_init(config_json):
    config = _json.loads(config_json)
    _tg_configure(config)
    for key, value in config.get("env", {}).items():
        _os.environ[key] = value
    _TG_STATE["max_output"] = int(config.get("max_output", 1000000))
    _os.makedirs("/sandbox", exist_ok=True)
    _os.chdir("/sandbox")


class _TGCapped(_io.StringIO):
    def __init__(self, limit):
        super().__init__()
        self._limit = limit
        self._size = 0
        self.truncated = False

    def write(self, text):
        if self._size >= self._limit:
            self.truncated = True
            return len(text)
        room = self._limit - self._size
        if len(text) > room:
            self.truncated = True
        chunk = text[:room]
        self._size += len(chunk)
        super().write(chunk)
        return len(text)


_TG_VIRTUAL_ROOTS = ("/sandbox", "/tmp", "/home/pyodide", "/lib")


def _tg_category(exc):
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, PermissionError):
        return "permission"
    if isinstance(exc, FileNotFoundError) and isinstance(exc.filename, str):
        path = _os.path.abspath(exc.filename)
        if not any(path == root or path.startswith(root + "/") for root in _TG_VIRTUAL_ROOTS):
            return "permission"  # a host path: not visible unless granted
    text = f"{type(exc).__name__}: {exc}"
    if "NotCapable" in text or "PermissionDenied" in text or "Requires " in text and " access" in text:
        return "permission"
    return "error"


def _tg_message(exc):
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _tg_format_tb(exc):
    tb = exc.__traceback__
    # Drop the driver's own frames so the traceback starts at the user's cell.
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell-"):
        tb = tb.tb_next
    return "".join(_traceback.format_exception(type(exc), exc, tb))


def _tg_run(request_json):
    request = _json.loads(request_json)
    code = request["code"]
    if request.get("config"):
        _tg_configure(request["config"])
    _TG_NS.update(request.get("variables") or {})
    _TG_STATE["cell"] += 1
    filename = f"<cell-{_TG_STATE['cell']}>"
    _linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    out = _TGCapped(_TG_STATE["max_output"])
    err = _TGCapped(_TG_STATE["max_output"])
    old_out, old_err = _sys.stdout, _sys.stderr
    reply = {"op": "result", "id": request.get("id")}
    try:
        try:
            tree = _ast.parse(code, filename=filename, mode="exec")
        except SyntaxError as exc:
            reply.update(ok=False, type="SyntaxError", category="syntax", message=str(exc),
                         traceback="".join(_traceback.format_exception_only(type(exc), exc)))
            return _json.dumps(reply)
        last_expr = None
        if tree.body and isinstance(tree.body[-1], _ast.Expr):
            last_expr = _ast.Expression(tree.body.pop().value)
        _sys.stdout, _sys.stderr = out, err
        try:
            exec(compile(tree, filename, "exec"), _TG_NS)
            value = eval(compile(last_expr, filename, "eval"), _TG_NS) if last_expr is not None else None
            _TG_NS["_"] = value
            reply.update(ok=True, value=_tg_jsonable(value), has_value=value is not None)
        except _TGFinal as final:
            reply.update(ok=True, final=_tg_jsonable(final.args[0]))
        except BaseException as exc:  # the user's error, reported to the host
            reply.update(ok=False, type=type(exc).__name__, category=_tg_category(exc),
                         message=_tg_message(exc), traceback=_tg_format_tb(exc))
        finally:
            _sys.stdout, _sys.stderr = old_out, old_err
    except BaseException as exc:
        reply = {"op": "result", "id": request.get("id"), "ok": False, "type": type(exc).__name__, "category": _tg_category(exc),
                 "message": _tg_message(exc), "traceback": ""}
    reply["stdout"] = out.getvalue() + ("\n[output truncated]" if out.truncated else "")
    reply["stderr"] = err.getvalue()
    try:
        encoded = _json.dumps(reply)
        if len(encoded) > 4 * _TG_STATE["max_output"] + 65536 and "value" in reply:
            text = repr(reply["value"])
            reply["value"] = text[: _TG_STATE["max_output"]] + " ... [value truncated]"
            encoded = _json.dumps(reply)
        return encoded
    except (TypeError, ValueError):
        reply.pop("value", None)
        reply.pop("final", None)
        reply.update(ok=False, type="TypeError", category="error", message="the result could not be encoded",
                     traceback="")
        return _json.dumps(reply)
'''


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

        self._mounts: dict[str, tuple[str, bool]] = {}  # virtual name -> (host path, writable)
        for path, writable in [*((p, False) for p in self.enable_read_paths), *((p, True) for p in self.enable_write_paths)]:
            name = os.path.basename(os.path.normpath(path))
            host = _canonical(path)
            if not name or name in (".", ".."):
                raise InterpreterError(f"Cannot grant {path!r}: give a named file or directory.")
            if name in self._mounts and self._mounts[name][0] != host:
                raise InterpreterError(f"Two granted paths share the name {name!r}; granted paths need unique basenames.")
            self._mounts[name] = (host, writable or self._mounts.get(name, ("", False))[1])
        runtime = [str(_RUNNER_PATH.parent), str(pyodide_dir(cache_dir))]
        for path in self.enable_write_paths:
            host = _canonical(path)
            if any(host == r or r.startswith(host + os.sep) or host.startswith(r + os.sep) for r in runtime):
                raise InterpreterError(f"Write path {path!r} overlaps the sandbox's own files; choose another path.")

        self._custom_command = custom_command
        self._proc: subprocess.Popen[bytes] | None = None
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=200)
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
        if not _pyodide_ready(pyo):
            raise SandboxSetupError(
                f"Pyodide {PYODIDE_VERSION} is not installed in {pyo.parent.parent}. Run once (needs the npm registry): "
                "`python -m textgrad_like.tools.python_interpreter --setup`"
            )
        read = [str(_RUNNER_PATH), str(pyo), *(host for host, _ in self._mounts.values())]
        write = [host for host, writable in self._mounts.values() if writable]
        args = [
            _find_deno(), "run", "--no-config", "--no-lock", "--no-remote", "--no-npm", "--no-prompt",
            "--node-modules-dir=none", "--cached-only",
            f"--allow-read={','.join(read)}",
            "--deny-run", "--deny-env", "--deny-sys", "--deny-ffi",
        ]
        args.append(f"--allow-write={','.join(write)}" if write else "--deny-write")
        args.append("--deny-net")
        if self.memory_limit_mb is not None:
            args.append(f"--v8-flags=--max-old-space-size={max(128, min(self.memory_limit_mb, 2048))}")
        args += [str(_RUNNER_PATH), str(pyo) + "/"]
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
        for name, (host, writable) in self._mounts.items():
            if not os.path.exists(host):
                if writable:
                    Path(host).touch()
                else:
                    raise InterpreterError(f"Granted read path {host!r} (for /sandbox/{name}) does not exist.")
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
        self._lines = queue.Queue()
        self._stderr_tail.clear()
        threading.Thread(target=self._pump_stdout, args=(proc, self._lines), daemon=True).start()
        threading.Thread(target=self._pump_stderr, args=(proc,), daemon=True).start()
        try:
            ready = self._read_message(time.monotonic() + self.startup_timeout, "while starting")
            if ready.get("op") != "ready":
                raise SandboxSetupError(f"The sandbox sent {ready!r} instead of 'ready'.")
            config = {
                **self._tool_config(),
                "env": {k: os.environ[k] for k in self.enable_env_vars if k in os.environ},
                "max_output": self.max_output_chars,
            }
            driver = _DRIVER + f"\n_tg_init({json.dumps(json.dumps(config))})\n"
            self._roundtrip({"op": "init", "driver": driver}, "init_ok", "while initialising")
            self._sent_config = (tuple(config["tools"]), tuple(config["outputs"]))
            self._tools_registered = True
            for name, (host, _) in self._mounts.items():
                self._roundtrip({"op": "mount", "host_path": host, "virtual_path": f"/sandbox/{name}"}, "mount_ok",
                                f"while granting {host}")
        except SandboxTimeoutError as exc:
            self._kill()
            raise SandboxSetupError(f"The sandbox did not start within {self.startup_timeout} s: {exc}") from exc
        except InterpreterError as exc:
            self._kill()
            if isinstance(exc, SandboxSetupError):
                raise
            raise SandboxSetupError(f"The sandbox failed to start: {exc}") from exc
        self.startup_seconds = time.perf_counter() - began
        logger.debug("Sandbox started in %.2f s", self.startup_seconds)

    @staticmethod
    def _pump_stdout(proc: subprocess.Popen[bytes], lines: queue.Queue[bytes | None]) -> None:
        stream = proc.stdout
        if stream is None:
            lines.put(None)
            return
        for line in iter(lambda: stream.readline(_MAX_LINE_BYTES), b""):
            lines.put(line)
        lines.put(None)

    def _pump_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.stderr is None:
            return
        for raw in iter(proc.stderr.readline, b""):
            text = raw.decode("utf-8", "replace").rstrip()
            self._stderr_tail.append(text)
            logger.debug("sandbox: %s", text)

    def _stderr_text(self) -> str:
        text = "\n".join(self._stderr_tail)
        return text[-_STDERR_TAIL_CHARS:]

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
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
            proc = self._proc
            if proc is not None and proc.poll() is None and proc.stdin is not None:
                with contextlib.suppress(OSError, ValueError):
                    proc.stdin.write(b'{"op":"shutdown"}\n')
                    proc.stdin.flush()
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
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise SandboxCrashedError("The sandbox is not running; it will restart on the next call.")
        try:
            proc.stdin.write(json.dumps(message).encode("utf-8") + b"\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            self._raise_dead("while sending a request")

    def _read_message(self, deadline: float | None, context: str) -> dict[str, Any]:
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                line = self._lines.get(timeout=wait)
            except queue.Empty:
                raise SandboxTimeoutError(f"The sandbox did not answer {context}.") from None
            if line is None:
                self._raise_dead(context)
            text = line.decode("utf-8", "replace").strip()
            if not text:
                continue
            try:
                message = json.loads(text)
            except json.JSONDecodeError:
                logger.debug("Skipping non-protocol output from the sandbox: %s", text[:200])
                continue
            if not isinstance(message, dict):
                continue
            if message.get("op") == "fatal":
                self._kill()
                raise SandboxCrashedError(
                    f"The sandboxed Python hit a fatal error {context}: {message.get('message')}. "
                    "It will restart with empty state on the next call."
                )
            if message.get("op") in ("host_error", "protocol_error"):
                raise SandboxCrashedError(f"The sandbox reported an internal error {context}: {message.get('message')}")
            return message

    def _roundtrip(self, message: Mapping[str, Any], expect: str, context: str) -> dict[str, Any]:
        self._send(message)
        reply = self._read_message(time.monotonic() + self.startup_timeout, context)
        if reply.get("op") != expect:
            raise SandboxCrashedError(f"Unexpected reply {context}: {reply!r}")
        return reply

    def _raise_dead(self, context: str) -> None:
        proc = self._proc
        code = None
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = proc.wait(timeout=5)
        time.sleep(0.05)  # let the stderr pump catch up
        stderr = self._stderr_text()
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
            request = json.dumps(payload)
            self._send({"op": "exec", "request": request})
            reply = self._await_result(request_id)
            self._sync_back()
            return self._interpret(reply)

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
                self._send(self._run_tool(message))
                if deadline is not None:
                    deadline += time.monotonic() - began
                continue
            if op == "result" and message.get("id") == request_id:
                return message
            logger.debug("Ignoring unexpected sandbox message: %r", message)

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

    def _sync_back(self) -> None:
        if not self.sync_files:
            return
        for name, (host, writable) in self._mounts.items():
            if writable and self._proc is not None:
                self._roundtrip({"op": "sync", "virtual_path": f"/sandbox/{name}", "host_path": host}, "sync_ok",
                                f"while copying /sandbox/{name} back to {host}")

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


# =============================================================================
# Command line: setup and a quick self-check
# =============================================================================


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m textgrad_like.tools.python_interpreter --setup [--check]``."""
    parser = argparse.ArgumentParser(prog="python -m textgrad_like.tools.python_interpreter")
    parser.add_argument("--setup", action="store_true", help=f"install Pyodide {PYODIDE_VERSION} from npm into the cache")
    parser.add_argument("--force", action="store_true", help="reinstall even if present")
    parser.add_argument("--check", action="store_true", help="start a sandbox and run a one-line program")
    parser.add_argument("--cache-dir", default=None, help="cache directory (default: TEXTGRAD_LIKE_SANDBOX_DIR or ~/.cache)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not (args.setup or args.check):
        parser.print_help(sys.stderr)
        return 2
    try:
        if args.setup:
            path = setup_sandbox(args.cache_dir, force=args.force)
            logger.info("Pyodide %s is ready in %s", PYODIDE_VERSION, path)
        if args.check:
            with PythonInterpreter(cache_dir=args.cache_dir) as interp:
                value = interp.execute("import sys; sys.version.split()[0]")
                logger.info("Sandbox OK: Python %s started in %.2f s", value, interp.startup_seconds or 0.0)
    except InterpreterError as exc:
        logger.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
