"""Tools for agents: :class:`Tool` (a function with an argument schema) and the sandboxed
``PythonInterpreter`` (imported on first use)."""

from __future__ import annotations

import importlib
from typing import Any

from .tool import Tool

_LAZY: dict[str, tuple[str, str]] = {
    "PythonInterpreter": (".python_interpreter", "PythonInterpreter"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attribute = _LAZY[name]
        try:
            module = importlib.import_module(module_name, __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}{module_name}":
                raise
            raise AttributeError(f"textgrad_like.tools.{name} is not available: "
                                 f"textgrad_like/tools{module_name.replace('.', '/')}.py is missing.") from None
        value = getattr(module, attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'textgrad_like.tools' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["Tool", "PythonInterpreter"]
