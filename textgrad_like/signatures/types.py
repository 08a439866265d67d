"""Type annotations of fields: parsing them from strings safely and naming them for prompts."""

from __future__ import annotations

import ast
import builtins
import datetime
import enum
import types
import typing
from typing import Any, Literal, Optional, Union

from ..errors import SignatureError

_SAFE_NAMES: dict[str, Any] = {
    "str": str, "int": int, "float": float, "bool": bool, "bytes": bytes, "list": list, "dict": dict,
    "tuple": tuple, "set": set, "Any": Any, "Optional": Optional, "Union": Union, "Literal": Literal,
    "List": list, "Dict": dict, "Tuple": tuple, "Set": set, "None": type(None), "NoneType": type(None),
    "datetime": datetime.datetime, "date": datetime.date,
}


def parse_type(text: str, names: dict[str, Any] | None = None) -> Any:
    """Turn a type expression such as ``"list[dict[str, int]]"`` into a type, without ``eval``.

    ``names`` adds custom types (e.g. pydantic models) that the expression may mention.
    """
    if not isinstance(text, str):
        raise SignatureError(f"A type expression must be a string such as 'list[str]', got {type(text).__name__}.")
    lookup = {**_SAFE_NAMES, **(names or {})}
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise SignatureError(f"Cannot read the type {text!r}. Write a Python type such as 'list[str]' or "
                             "'Literal[\"a\", \"b\"]'.") from None
    try:
        result = _build(tree.body, lookup, text)
    except SignatureError:
        raise
    except Exception as exc:  # typing's own checks (TypeError), str constants indexed (IndexError), deep nesting
        raise SignatureError(f"Bad type {text!r}: {type(exc).__name__}: {exc}") from None
    if not _is_type(result):
        raise SignatureError(f"{text!r} is not a type. Write a Python type such as 'list[str]', 'int | None' or "
                             "'Literal[\"a\", \"b\"]'.")
    return result


_NOT_TYPES = (str, bytes, int, float, complex, tuple, list, dict, set, types.FunctionType, types.BuiltinFunctionType,
              types.MethodType, types.MethodWrapperType, types.WrapperDescriptorType, types.MethodDescriptorType,
              types.MappingProxyType, typing._SpecialForm)


def _is_type(value: Any) -> bool:
    """False for values that are clearly no type (constants outside Literal, functions, bare ``Optional``)."""
    if value is Any or isinstance(value, type):
        return True
    if isinstance(value, _NOT_TYPES):
        return False
    origin = typing.get_origin(value)
    if origin is Literal:
        return True
    if origin is typing.Annotated:
        return _is_type(typing.get_args(value)[0])
    return all(a is Ellipsis or _is_type(a) for a in typing.get_args(value))


def _build(node: ast.AST, lookup: dict[str, Any], source: str) -> Any:
    if isinstance(node, ast.Name):
        if node.id not in lookup:
            raise SignatureError(
                f"Unknown type {node.id!r} in {source!r}. Use str, int, float, bool, list[...], dict[...], "
                f"Literal[...], Optional[...], or pass the class with custom_types={{'{node.id}': {node.id}}}."
            )
        return lookup[node.id]
    if isinstance(node, ast.Attribute):
        base = _build(node.value, lookup, source)
        try:
            return getattr(base, node.attr)
        except AttributeError:
            raise SignatureError(f"Unknown type {ast.unparse(node)!r} in {source!r}.") from None
    if isinstance(node, ast.Constant):
        if node.value is None:
            return type(None)
        return node.value
    if isinstance(node, ast.Subscript):
        base = _build(node.value, lookup, source)
        inner = node.slice
        if isinstance(inner, ast.Tuple):
            args = tuple(_build(e, lookup, source) for e in inner.elts)
        else:
            args = (_build(inner, lookup, source),)
        if base is Literal:
            return Literal[args]  # type: ignore[valid-type]
        try:
            return base[args] if len(args) > 1 else base[args[0]]
        except TypeError as exc:
            raise SignatureError(f"Bad type {ast.unparse(node)!r} in {source!r}: {exc}") from None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return Union[_build(node.left, lookup, source), _build(node.right, lookup, source)]
    if isinstance(node, ast.Tuple):
        return tuple(_build(e, lookup, source) for e in node.elts)
    raise SignatureError(f"Unsupported type expression {ast.unparse(node)!r} in {source!r}.")


def type_name(annotation: Any) -> str:
    """A readable name for a type: ``list[dict[str, str]]``, ``Literal['a', 'b']``."""
    if annotation is type(None):
        return "None"
    if annotation is Ellipsis:
        return "..."
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "Literal[" + ", ".join(repr(a) for a in typing.get_args(annotation)) + "]"
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = typing.get_args(annotation)
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_name(a) for a in args)}]" if args else name
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def is_str(annotation: Any) -> bool:
    return annotation is str


def literal_values(annotation: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return tuple(m.value for m in annotation)
    return None


def strip_optional(annotation: Any) -> tuple[Any, bool]:
    """``Optional[X]`` -> ``(X, True)``; other types unchanged."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) < len(typing.get_args(annotation)):
            return (args[0] if len(args) == 1 else Union[tuple(args)]), True
    return annotation, False


builtin_names = set(dir(builtins))
