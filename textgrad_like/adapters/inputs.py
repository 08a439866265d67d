"""Checking the inputs of a predictor call against its signature, as DSPy does.

Extra keyword arguments (a label left in ``program(**example)``) and missing inputs are logged and
the call goes on; a value that does not fit its field's type is logged ("Type mismatch for field
..."); a value that contains itself (a cycle) or is nested absurdly deep cannot be rendered into a
prompt and is an :class:`InputError`.
"""

from __future__ import annotations

import logging
from typing import Any

import pydantic

from ..errors import InputError
from ..settings import settings
from ..signatures.types import strip_optional, type_name
from .values import type_adapter

logger = logging.getLogger(__name__)

MAX_DEPTH = 200


def positional_args_message(signature: Any, module: str = "Predict") -> str:
    names = list(signature.input_fields)
    first = names[0] if names else "field"
    return (f"Positional arguments are not allowed when calling `dspy.{module}`, must use keyword arguments that "
            f"match your signature input fields: '{', '.join(names)}'. For example: "
            f"`predict({first}=input_value, ...)`.")


def check_inputs(module: str, signature: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The inputs of one call: the signature's fields that were given (or have a default)."""
    expected = signature.input_fields
    extra = [k for k in kwargs if k not in expected]
    if extra:
        logger.warning("Input contains fields not in signature; ignoring %s (the signature takes %s).", extra,
                       list(expected))
    inputs = {k: (kwargs[k] if k in kwargs else info.default) for k, info in expected.items()
              if k in kwargs or info.has_default}
    missing = [k for k, info in expected.items() if k not in inputs and not strip_optional(info.annotation)[1]]
    if missing:
        present = [k for k in expected if k in inputs]
        logger.warning("Not all input fields were provided to module. Present: %s. Missing: %s.", present, missing)
    warn = settings.get("warn_on_type_mismatch", True)
    for name, value in inputs.items():
        check_acyclic(name, value)
        if warn:
            if not expected[name].extra.get("type_undefined"):
                _warn_type_mismatch(name, value, expected[name].annotation)
    return inputs


def check_acyclic(name: str, value: Any) -> None:
    """Raise :class:`InputError` when ``value`` contains itself or is nested deeper than ``MAX_DEPTH``."""
    if not isinstance(value, (list, tuple, set, frozenset, dict)):
        return
    on_path: set[int] = {id(value)}
    stack: list[tuple[int, Any]] = [(id(value), iter(_children(value)))]
    while stack:
        _, children = stack[-1]
        child = next(children, _DONE)
        if child is _DONE:
            on_path.discard(stack.pop()[0])
            continue
        if not isinstance(child, (list, tuple, set, frozenset, dict)):
            continue
        if id(child) in on_path:
            raise InputError(f"Input field {name!r} refers to itself (a cyclic {type(child).__name__}); it cannot be "
                             "written into a prompt. Pass a copy without the cycle.")
        if len(stack) >= MAX_DEPTH:
            raise InputError(f"Input field {name!r} is nested more than {MAX_DEPTH} levels deep; flatten it first.")
        on_path.add(id(child))
        stack.append((id(child), iter(_children(child))))


_DONE = object()


def _children(value: Any) -> Any:
    if isinstance(value, dict):
        return list(value.values())
    return list(value)


def _warn_type_mismatch(name: str, value: Any, annotation: Any) -> None:
    if value is None or annotation is Any or (annotation is str and isinstance(value, str)):
        return
    if hasattr(value, "role_description") or hasattr(value, "requires_grad"):  # a graph Variable / Parameter
        return
    if annotation is str and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return  # a list of passages for a text field is fine (as in DSPy)
    try:
        type_adapter(annotation).validate_python(value, strict=True)
    except pydantic.ValidationError:
        logger.warning("Type mismatch for field '%s': expected %s, got %s (%.80r).", name, type_name(annotation),
                       type(value).__name__, value)
    except Exception:  # an annotation pydantic cannot check: nothing to say
        return
