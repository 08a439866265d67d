"""The Python side of the sandbox: runs *inside* Pyodide, never in the host process.

The host sends this file's text to the runner (``runner.js``), which executes it in
Pyodide's ``__main__`` and then calls ``_tg_init(config_json)`` once and
``_tg_run(request_json)`` for every ``execute``. ``_tg_run`` returns the complete JSON
reply as a string; the runner frames and sends it. Importing this module on the host
defines functions only (the tests do that); ``_tg_init`` is what patches ``os``,
``subprocess`` and ``socket`` — call it only inside the sandbox.

``_tg_host_call`` (a JavaScript function the runner puts in ``__main__``) sends a tool
request to the host and returns its JSON reply.
"""

# ruff: noqa: N802  (SUBMIT is the name the LM-written code calls)

import ast as _ast
import builtins as _builtins
import io as _io
import json as _json
import linecache as _linecache
import os as _os
import sys as _sys
import traceback as _traceback

_PROCESS_FUNCTIONS = (
    "system", "popen", "fork", "forkpty", "execv", "execve", "execvp", "execvpe", "execl", "execle", "execlp",
    "execlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "posix_spawn",
    "posix_spawnp", "kill", "killpg",
)
_TG_VIRTUAL_ROOTS = ("/sandbox", "/tmp", "/home/pyodide", "/lib")


class ToolError(Exception):
    """A host tool failed."""


class _TGFinal(BaseException):
    pass


_TG_NS = {"__name__": "__main__", "__builtins__": _builtins, "ToolError": ToolError}
_TG_STATE = {"cell": 0, "max_output": 1000000}


def _tg_reply_limit():
    """Bytes one encoded reply (or tool request) may take; the host's line cap is above it."""
    return 8 * _TG_STATE["max_output"] + 65536


# ---------------------------------------------------------------------------
# Guards: processes and sockets raise PermissionError with a clear message
# ---------------------------------------------------------------------------


def _tg_refuse_process(*args, **kwargs):
    raise PermissionError("subprocesses are disabled in this sandbox; compute the result in Python instead")


def _tg_refuse_network(*args, **kwargs):
    raise PermissionError("network access is disabled in this sandbox")


class _RefusedPopen:
    def __init__(self, *args, **kwargs):
        _tg_refuse_process()


def _tg_install_guards():
    import socket as _socket
    import subprocess as _subprocess

    for name in _PROCESS_FUNCTIONS:
        if hasattr(_os, name):
            setattr(_os, name, _tg_refuse_process)
    _subprocess.Popen = _RefusedPopen
    for name in ("connect", "connect_ex", "bind", "listen", "sendto"):
        setattr(_socket.socket, name, _tg_refuse_network)
    _socket.create_connection = _tg_refuse_network
    _socket.getaddrinfo = _tg_refuse_network
    _socket.gethostbyname = _tg_refuse_network


# ---------------------------------------------------------------------------
# Values, tools and SUBMIT
# ---------------------------------------------------------------------------


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
        request = _json.dumps({"name": name, "args": list(args), "kwargs": kwargs})
    except (TypeError, ValueError) as exc:
        raise TypeError(f"arguments to host tool {name!r} must be JSON-serializable: {exc}") from None
    if len(request) > _tg_reply_limit():
        raise ValueError(f"arguments to host tool {name!r} are too large ({len(request)} bytes as JSON)")
    reply = _json.loads(_tg_host_call(request))  # noqa: F821  (put in __main__ by the runner)
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
        result = dict(zip(fields, args, strict=False))
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
    """Inside the sandbox only: install the guards, the tools and the environment."""
    config = _json.loads(config_json)
    _tg_install_guards()
    _tg_configure(config)
    for key, value in config.get("env", {}).items():
        _os.environ[key] = value
    _TG_STATE["max_output"] = int(config.get("max_output", 1000000))
    _os.makedirs("/sandbox", exist_ok=True)
    _os.chdir("/sandbox")


# ---------------------------------------------------------------------------
# Running one cell
# ---------------------------------------------------------------------------


class _TGCapped(_io.StringIO):
    """A text stream that keeps the first ``limit`` characters."""

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
    if "NotCapable" in text or "PermissionDenied" in text or ("Requires " in text and " access" in text):
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


_TG_SHRINKABLE = ("value", "final", "stdout", "stderr", "traceback", "message")


def _tg_encode(reply):
    """The reply as JSON within :func:`_tg_reply_limit` bytes: the longest texts are cut until it fits."""
    try:
        encoded = _json.dumps(reply)
    except (TypeError, ValueError):
        reply.pop("value", None)
        reply.pop("final", None)
        reply.update(ok=False, type="TypeError", category="error", message="the result could not be encoded",
                     traceback="")
        encoded = _json.dumps(reply)
    limit = _tg_reply_limit()
    for _ in range(64):
        if len(encoded) <= limit:
            return encoded
        sizes = {key: len(_json.dumps(reply[key])) for key in _TG_SHRINKABLE if key in reply}
        key = max(sizes, key=sizes.get)
        text = reply[key] if isinstance(reply[key], str) else repr(reply[key])
        reply[key] = text[: len(text) // 2] + f" ... [{key} truncated]"
        encoded = _json.dumps(reply)
    return _json.dumps({"op": "result", "id": reply.get("id"), "ok": False, "type": "ValueError", "category": "error",
                        "message": "the result is too large to return", "traceback": ""})


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
            return _tg_encode(reply)
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
        reply = {"op": "result", "id": request.get("id"), "ok": False, "type": type(exc).__name__,
                 "category": _tg_category(exc), "message": _tg_message(exc), "traceback": ""}
    reply["stdout"] = out.getvalue() + ("\n[output truncated]" if out.truncated else "")
    reply["stderr"] = err.getvalue()
    return _tg_encode(reply)
