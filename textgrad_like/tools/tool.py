"""``Tool``: a Python function an agent can call, with a JSON schema of its arguments.

The name comes from the function, the description from its docstring and the argument schema
from its type annotations (through pydantic). Calling a tool validates and coerces the arguments
an LM wrote (``"3"`` for an ``int`` becomes ``3``, a JSON string for a ``list`` is read); arguments
that do not fit raise :class:`~textgrad_like.errors.ToolError` with a message the LM can act on.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import json
import typing
from collections.abc import Callable
from typing import Any

import pydantic

from ..callbacks import with_callbacks
from ..errors import ToolError
from ..settings import settings

_JSON_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "array": list,
                               "object": dict, "null": type(None)}


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace ``$ref`` pointers by the definitions they point to and drop ``$defs``."""
    defs = schema.get("$defs", {}) or {}

    def resolve(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                key = ref.split("/")[-1]
                if key in seen or key not in defs:  # recursive model: keep the pointer
                    return {k: v for k, v in node.items()}
                merged = {**resolve(defs[key], (*seen, key)), **{k: v for k, v in node.items() if k != "$ref"}}
                return merged
            return {k: resolve(v, seen) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v, seen) for v in node]
        return node

    return resolve(schema, ())


def _jsonable_default(value: Any) -> Any:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _adapter(annotation: Any) -> pydantic.TypeAdapter:
    try:
        return pydantic.TypeAdapter(annotation, config=pydantic.ConfigDict(coerce_numbers_to_str=True))
    except pydantic.PydanticUserError:  # types with their own config (models, TypedDicts, dataclasses)
        return pydantic.TypeAdapter(annotation)


def _short_error(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{err.get('msg')}{' at ' + loc if loc else ''}")
    return "; ".join(parts) or str(exc)


class Tool:
    """Wrap a function as a tool: ``Tool(search)`` or ``Tool(lambda q: ..., name="search", desc="...")``.

    Args:
        func: the function (or callable object) to run.
        name: the tool's name; defaults to the function's ``__name__``.
        desc: what the tool does; defaults to the function's docstring.
        args: ``{arg name: JSON schema}``; inferred from the annotations when not given.
        arg_types: ``{arg name: Python type}`` used to validate and coerce arguments; inferred when not given.
        arg_desc: ``{arg name: description}`` added to the schema of each argument.
    """

    _callback_kind = "tool"

    def __init__(self, func: Callable[..., Any], name: str | None = None, desc: str | None = None,
                 args: dict[str, Any] | None = None, arg_types: dict[str, Any] | None = None,
                 arg_desc: dict[str, str] | None = None) -> None:
        if isinstance(func, Tool):
            func = func.func
        if not callable(func):
            raise ToolError(f"Tool(...) needs a function or callable object, got {type(func).__name__}.")
        self.func = func
        self.name = name
        self.desc = desc
        self.args = args
        self.arg_types = arg_types
        self.arg_desc = arg_desc
        self.has_kwargs = False
        self.callbacks: list[Any] = []
        self._required: set[str] = set()
        self._adapters: dict[str, pydantic.TypeAdapter] = {}
        self._parse_function(func, arg_desc)

    # --- introspection -------------------------------------------------------------------------
    def _parse_function(self, func: Callable[..., Any], arg_desc: dict[str, str] | None) -> None:
        if inspect.isroutine(func):
            target: Any = func
        elif isinstance(func, functools.partial):
            target = func.func
        else:
            target = type(func).__call__
        if inspect.isroutine(func) or isinstance(func, functools.partial):
            name = getattr(target, "__name__", None) or type(func).__name__
            raw_doc = getattr(target, "__doc__", None)
        else:
            name = type(func).__name__
            raw_doc = type(func).__doc__ or getattr(target, "__doc__", None)
        doc = inspect.cleandoc(raw_doc) if isinstance(raw_doc, str) else ""
        try:
            sig = inspect.signature(func)
        except (TypeError, ValueError):
            sig = None
        try:
            hints = typing.get_type_hints(target)
        except Exception:
            hints = dict(getattr(target, "__annotations__", {}) or {})
            hints = {k: (v if not isinstance(v, str) else Any) for k, v in hints.items()}

        args: dict[str, Any] = {}
        arg_types: dict[str, Any] = {}
        required: set[str] = set()
        if sig is not None:
            for pname, param in sig.parameters.items():
                if param.kind == param.VAR_KEYWORD:
                    self.has_kwargs = True
                    continue
                if param.kind == param.VAR_POSITIONAL:
                    continue
                annotation = hints.get(pname, Any)
                arg_types[pname] = annotation
                try:
                    schema = _inline_refs(_adapter(annotation).json_schema())
                except Exception:
                    schema = {}
                schema.pop("title", None)
                if param.default is not inspect.Parameter.empty:
                    schema["default"] = _jsonable_default(param.default)
                else:
                    required.add(pname)
                if arg_desc and pname in arg_desc:
                    schema["description"] = arg_desc[pname]
                args[pname] = schema

        self.name = self.name or name
        self.desc = self.desc if self.desc is not None else (doc or "")
        if self.args is None:
            self.args = args
            self._required = required
        else:
            self.args = copy.deepcopy(self.args)
            if arg_desc:
                for key, text in arg_desc.items():
                    if key in self.args and isinstance(self.args[key], dict):
                        self.args[key]["description"] = text
            self._required = {k for k, v in self.args.items() if not (isinstance(v, dict) and "default" in v)}
        if self.arg_types is None:
            self.arg_types = {k: arg_types.get(k, self._type_from_schema(self.args.get(k))) for k in self.args}
        else:
            self.arg_types = dict(self.arg_types)
            for key in self.args:
                self.arg_types.setdefault(key, arg_types.get(key, self._type_from_schema(self.args.get(key))))

    @staticmethod
    def _type_from_schema(schema: Any) -> Any:
        if isinstance(schema, dict) and isinstance(schema.get("type"), str):
            return _JSON_TYPES.get(schema["type"], Any)
        return Any

    # --- validation -------------------------------------------------------------------------------
    def _validate_and_parse_args(self, **kwargs: Any) -> dict[str, Any]:
        args = self.args or {}
        problems: list[str] = []
        unknown = [k for k in kwargs if k not in args]
        if unknown and not self.has_kwargs:
            problems.append(f"unknown argument(s) {unknown}")
        missing = sorted(k for k in self._required if k not in kwargs)
        if missing:
            problems.append(f"missing required argument(s) {missing}")
        parsed: dict[str, Any] = {}
        for key, value in kwargs.items():
            annotation = (self.arg_types or {}).get(key, Any)
            if key not in args or annotation is Any:
                parsed[key] = value
                continue
            try:
                parsed[key] = self._coerce(key, annotation, value)
            except pydantic.ValidationError as exc:
                problems.append(f"argument {key!r} is invalid: {_short_error(exc)} (got {value!r:.80})")
        if problems:
            raise ToolError(f"Tool {self.name!r} was called with bad arguments: {'; '.join(problems)}. "
                            f"It takes: {json.dumps(args, default=str)}.")
        return parsed

    def _coerce(self, key: str, annotation: Any, value: Any) -> Any:
        adapter = self._adapters.get(key)
        if adapter is None:
            adapter = _adapter(annotation)
            self._adapters[key] = adapter
        if isinstance(value, pydantic.BaseModel) and not (isinstance(annotation, type) and isinstance(value, annotation)):
            value = value.model_dump()
        try:
            return adapter.validate_python(value)
        except pydantic.ValidationError:
            if isinstance(value, str) and value.strip()[:1] in "[{\"":
                try:
                    return adapter.validate_python(json.loads(value))
                except (ValueError, pydantic.ValidationError):
                    pass
            raise

    # --- calling -----------------------------------------------------------------------------------
    @with_callbacks
    def __call__(self, **kwargs: Any) -> Any:
        parsed = self._validate_and_parse_args(**kwargs)
        result = self.func(**parsed)
        if inspect.isawaitable(result):
            return self._run_async_in_sync(result)
        return result

    @with_callbacks
    async def acall(self, **kwargs: Any) -> Any:
        parsed = self._validate_and_parse_args(**kwargs)
        result = self.func(**parsed)
        if inspect.isawaitable(result):
            return await result
        return result

    def _run_async_in_sync(self, awaitable: Any) -> Any:
        if not settings.get("allow_tool_async_sync_conversion"):
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            raise ToolError(f"Tool {self.name!r} is async: use `await tool.acall(...)`, or allow sync calls with "
                            "configure(allow_tool_async_sync_conversion=True).")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(_await(awaitable))
        if inspect.iscoroutine(awaitable):
            awaitable.close()
        raise ToolError(f"Tool {self.name!r} is async and was called synchronously inside a running event loop; "
                        "use `await tool.acall(...)` instead.")

    # --- formatting ----------------------------------------------------------------------------------
    def format(self) -> str:
        return str(self)

    def format_as_litellm_function_call(self) -> dict[str, Any]:
        """The tool in the OpenAI/litellm ``tools=[...]`` format."""
        args = self.args or {}
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.desc,
                "parameters": {
                    "type": "object",
                    "properties": args,
                    "required": [k for k in args if k in self._required],
                },
            },
        }

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r}, desc={self.desc!r}, args={self.args!r})"

    def __str__(self) -> str:
        desc = " ".join((self.desc or "").split())
        about = f": {desc}" if desc else ""
        return f"{self.name}{about} Arguments (JSON schema per argument): {json.dumps(self.args, default=str)}."


async def _await(awaitable: Any) -> Any:
    return await awaitable
