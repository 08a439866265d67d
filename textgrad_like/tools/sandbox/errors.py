"""Errors raised by the sandboxed :class:`~textgrad_like.tools.python_interpreter.PythonInterpreter`.

All derive from :class:`textgrad_like.errors.InterpreterError`; each message says what to do.
"""

from __future__ import annotations

from textgrad_like.errors import InterpreterError

__all__ = [
    "CodeExecutionError",
    "CodeInterpreterError",
    "SandboxCrashedError",
    "SandboxMemoryError",
    "SandboxPermissionError",
    "SandboxSetupError",
    "SandboxSyntaxError",
    "SandboxTimeoutError",
]

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
    """The code tried something the sandbox refuses (file outside granted paths, network, subprocess,
    a background thread); when the message says so, the sandbox was restarted with empty state."""


class SandboxMemoryError(CodeExecutionError, MemoryError):
    """The code passed the sandbox's memory limit."""


class SandboxTimeoutError(InterpreterError, TimeoutError):
    """The code ran past the time limit; the sandbox was killed and will restart on the next call."""


class SandboxCrashedError(InterpreterError):
    """The sandbox process died; it will restart (with empty state) on the next call."""
