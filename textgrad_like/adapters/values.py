"""Formatting field values for prompts and parsing completion text back into declared types."""

from __future__ import annotations

import enum
import functools
import json
import re
import typing
from typing import Any

import pydantic

from ..errors import TextgradLikeError
from ..signatures.field import describe_constraints, field_constraints
from ..signatures.types import literal_values, strip_optional, type_name
from .types import PROMPT_CONTEXT

_NUMBER = re.compile(r"[-+]?(?:\d+(?:,\d{3})*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


class ValueParseError(TextgradLikeError, ValueError):
    """A value does not fit its declared type (adapters wrap it in AdapterParseError)."""


def format_value(value: Any) -> str:
    """Render an input value for a prompt: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, enum.Enum):
        return str(value.value)
    if _is_tool(value):
        return _format_tool(value)
    if callable(getattr(value, "format_for_prompt", None)):  # Code and other special types
        return str(value.format_for_prompt())
    if isinstance(value, (list, tuple)) and value and all(_is_tool(v) for v in value):
        return "\n".join(f"({i}) {_format_tool(v)}" for i, v in enumerate(value, 1))
    if hasattr(value, "value") and hasattr(value, "role_description"):  # nn.Variable
        return str(value.value)
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump_json(context=PROMPT_CONTEXT)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "\n".join(f"[{i + 1}] {v}" for i, v in enumerate(value))
    try:
        return json.dumps(_jsonable(value), ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _is_tool(value: Any) -> bool:
    """A tool object (``Tool``): callable with a ``name`` and an ``args`` schema dict."""
    return callable(value) and isinstance(getattr(value, "name", None), str) \
        and isinstance(getattr(value, "args", None), dict) and not isinstance(value, type)


def _format_tool(tool: Any) -> str:
    desc = str(getattr(tool, "desc", "") or "").strip()
    return f"`{tool.name}`{': ' + desc if desc else ''} Arguments: {tool.args}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json", context=PROMPT_CONTEXT)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "toDict"):
        return _jsonable(value.toDict())
    return value


def format_output_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, enum.Enum):
        return str(value.value)
    try:
        return json.dumps(_jsonable(value), ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


@functools.lru_cache(maxsize=1024)
def _type_adapter(annotation: Any) -> pydantic.TypeAdapter:
    return pydantic.TypeAdapter(annotation)


def type_adapter(annotation: Any) -> pydantic.TypeAdapter:
    try:
        return _type_adapter(annotation)
    except TypeError:  # unhashable annotation
        return pydantic.TypeAdapter(annotation)


def type_hint(annotation: Any) -> str:
    """A short description of what a reply for this type must look like."""
    annotation, optional = strip_optional(annotation)
    values = literal_values(annotation)
    describe = getattr(annotation, "description", None)
    described = str(describe() or "") if isinstance(annotation, type) and callable(describe) \
        and not isinstance(describe, property) else ""
    if described:
        hint = described  # a special type (Code, ToolCalls, a Type subclass) says how to write it
    elif values is not None:
        hint = "exactly one of: " + ", ".join(json.dumps(v) if not isinstance(v, str) else v for v in values)
    elif annotation is bool:
        hint = "true or false"
    elif annotation is int:
        hint = "an integer"
    elif annotation is float:
        hint = "a number"
    elif annotation is str:
        hint = ""
    else:
        try:
            schema = type_adapter(annotation).json_schema()
            hint = f"JSON of type {type_name(annotation)} (schema: {json.dumps(schema)})"
        except Exception:
            hint = f"JSON of type {type_name(annotation)}"
    if optional and hint:
        hint += " (or null)"
    return hint


def _strip_fences(text: str) -> str:
    text = text.strip()
    fence = re.match(r"^```[a-zA-Z0-9_-]*\s*\n(.*?)\n?```$", text, re.S)
    return fence.group(1).strip() if fence else text


def parse_value(text: Any, annotation: Any) -> Any:
    """Parse ``text`` into ``annotation``. Raises :class:`ValueParseError` when it does not fit."""
    annotation, optional = strip_optional(annotation)
    if text is None and optional:  # JSON null for an Optional field
        return None
    if not isinstance(text, str):
        try:
            return type_adapter(annotation).validate_python(text)
        except pydantic.ValidationError as exc:
            raise ValueParseError(_short(exc)) from None
    raw = _strip_fences(text)
    if optional and raw.lower() in ("", "null", "none", "n/a"):
        return None
    if annotation is str:
        return raw
    if annotation is typing.Any:
        return _loads(raw) if raw[:1] in "[{" else raw
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _parse_enum(raw, annotation)
    if isinstance(annotation, type) and callable(getattr(annotation, "from_text", None)):  # Code
        return annotation.from_text(raw)
    values = literal_values(annotation)
    if values is not None:
        return _parse_choice(raw, values, annotation)
    if annotation is bool:
        low = raw.strip().strip("\"'.").lower()
        if low in ("true", "yes", "1"):
            return True
        if low in ("false", "no", "0"):
            return False
        raise ValueParseError(f"expected true or false, got {raw[:80]!r}")
    if annotation in (int, float):
        return _parse_number(raw, annotation)
    candidate: Any = raw
    if raw[:1] in "[{\"" or annotation not in (str,):
        try:
            candidate = _loads(raw)
        except ValueParseError:
            candidate = raw
    try:
        return type_adapter(annotation).validate_python(candidate)
    except pydantic.ValidationError as exc:
        # a bare item for a list type: wrap it
        if typing.get_origin(annotation) is list and not isinstance(candidate, list):
            try:
                return type_adapter(annotation).validate_python([candidate])
            except pydantic.ValidationError:
                pass
        raise ValueParseError(f"expected {type_name(annotation)}: {_short(exc)}") from None


def _short(exc: pydantic.ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return str(exc)
    first = errors[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    return f"{first.get('msg')}{' at ' + loc if loc else ''}"


def _loads(raw: str) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        pass
    try:
        import json_repair

        value = json_repair.loads(raw)
    except Exception as exc:
        raise ValueParseError(f"not JSON: {exc}") from None
    if value == "" and raw.strip() not in ('""', "''"):
        raise ValueParseError("not JSON")
    return value


def _parse_choice(raw: str, values: tuple[Any, ...], annotation: Any) -> Any:
    cleaned = raw.strip().strip("`\"'*. ").strip()
    for value in values:
        if cleaned == str(value):
            return value
    lowered = cleaned.lower()
    for value in values:
        if lowered == str(value).lower():
            return value
    # the reply names exactly one allowed value somewhere
    found = [v for v in values if re.search(rf"(?<![\w-]){re.escape(str(v).lower())}(?![\w-])", lowered)]
    if len(found) == 1:
        return found[0]
    raise ValueParseError(f"expected one of {list(values)}, got {raw[:80]!r}")


def _parse_enum(raw: str, annotation: type[enum.Enum]) -> enum.Enum:
    """An Enum member from its value or its name (``"red"``, ``"RED"``, ``"Color.RED"``)."""
    cleaned = raw.strip().strip("`\"'*. ").strip()
    cleaned = cleaned.split(".", 1)[1] if cleaned.startswith(annotation.__name__ + ".") else cleaned
    for member in annotation:
        if cleaned == str(member.value) or cleaned == member.name:
            return member
    lowered = cleaned.lower()
    for member in annotation:
        if lowered in (str(member.value).lower(), member.name.lower()):
            return member
    value = _parse_choice(raw, tuple(m.value for m in annotation), annotation)
    return annotation(value)


def check_constraints(value: Any, info: Any) -> Any:
    """``value`` checked against its field's constraints; :class:`ValueParseError` when it breaks one."""
    constraints = field_constraints(info)
    if not constraints or value is None:
        return value
    base, _ = strip_optional(info.annotation)
    annotated = typing.Annotated[base, pydantic.Field(**constraints)]
    try:
        return pydantic.TypeAdapter(annotated).validate_python(value)
    except pydantic.ValidationError as exc:
        raise ValueParseError(f"the value breaks the field's constraints ({describe_constraints(info)}): "
                              f"{_short(exc)}") from None


def _parse_number(raw: str, annotation: type) -> int | float:
    text = raw.strip().strip("`\"'*$").strip()
    try:
        value = float(text.replace(",", "")) if annotation is float else int(text.replace(",", ""))
        return value
    except ValueError:
        pass
    frac = re.fullmatch(r"\s*([-+]?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*", text)
    if frac and float(frac.group(2)) != 0:
        value = float(frac.group(1)) / float(frac.group(2))
        return value if annotation is float else _as_int(value, raw)
    numbers = _NUMBER.findall(text)
    if len(numbers) == 1 or (numbers and len(set(numbers)) == 1):
        value = float(numbers[0].replace(",", ""))
        return value if annotation is float else _as_int(value, raw)
    raise ValueParseError(f"expected {'an integer' if annotation is int else 'a number'}, got {raw[:80]!r}")


def _as_int(value: float, raw: str) -> int:
    if float(value).is_integer():
        return int(value)
    raise ValueParseError(f"expected an integer, got {raw[:80]!r}")
