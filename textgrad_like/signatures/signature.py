"""Signatures: the typed interface of an LM call (input fields -> output fields + instructions).

Two ways to write one::

    Signature("context: list[str], question -> answer: float", "Answer from the context.")

    class Classify(Signature):
        \"\"\"Classify the sentiment of a sentence.\"\"\"
        sentence: str = InputField()
        sentiment: Literal["positive", "negative"] = OutputField()

A signature is a class; its methods that "change" it return a new class.
"""

from __future__ import annotations

import re
import sys
import types
import typing
from collections.abc import Iterable
from typing import Any, ClassVar

from ..errors import SignatureError, SignatureFieldError
from .field import FieldInfo, InputField, OutputField
from .types import parse_type, type_name

_RESERVED = {"instructions", "fields", "input_fields", "output_fields", "signature"}


def default_instructions(inputs: Iterable[str], outputs: Iterable[str]) -> str:
    ins = ", ".join(f"`{n}`" for n in inputs)
    outs = ", ".join(f"`{n}`" for n in outputs)
    return f"Given the fields {ins}, produce the fields {outs}." if ins else f"Produce the fields {outs}."


def _check_name(name: str, where: str) -> None:
    if not name.isidentifier() or name.startswith("_") or name in _RESERVED:
        raise SignatureError(f"Bad field name {name!r} in {where!r}: field names must be Python identifiers "
                             f"without a leading underscore and not one of {sorted(_RESERVED)}.")


class SignatureMeta(type):
    """Collects annotated fields in declaration order and lets ``Signature("a -> b")`` build a class."""

    _fields_: dict[str, FieldInfo]
    _instructions_: str

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> Any:
        fields: dict[str, FieldInfo] = {}
        for base in reversed(bases):
            fields.update(getattr(base, "_fields_", {}))
        annotations = namespace.get("__annotations__", {})
        module = sys.modules.get(namespace.get("__module__", ""), None)
        globalns = dict(vars(module)) if module else {}
        if any(isinstance(a, str) for a in annotations.values()):
            # string annotations (``from __future__ import annotations``) may name a class local to the
            # function that declares the signature
            try:
                caller = sys._getframe(1)
                globalns.update({k: v for k, v in caller.f_locals.items() if not k.startswith("__")})
            except ValueError:
                pass
        # fields in declaration order, annotated or not (an unannotated field is ``str``)
        declared = [k for k in namespace if isinstance(namespace[k], FieldInfo) or k in annotations]
        declared += [k for k in annotations if k not in declared]
        for field_name in declared:
            annotation = annotations.get(field_name, str)
            untyped = field_name not in annotations
            if field_name.startswith("_") or typing.get_origin(annotation) is ClassVar:
                continue
            value = namespace.get(field_name)
            if not isinstance(value, FieldInfo):
                if annotation in ("ClassVar",) or str(annotation).startswith("ClassVar"):
                    continue
                raise SignatureFieldError(
                    f"Field {field_name!r} of signature {name!r} must be declared with InputField() or OutputField()."
                )
            _check_name(field_name, name)
            if isinstance(annotation, str):
                annotation = parse_type(annotation, globalns)
            fields[field_name] = value.copy(annotation=annotation, prefix=value.prefix or default_prefix(field_name),
                                            **({"type_undefined": True} if untyped else {}))
            namespace.pop(field_name, None)
        cls = super().__new__(mcs, name, bases, namespace)
        ordered = {k: v for k, v in fields.items() if v.is_input}
        ordered.update({k: v for k, v in fields.items() if not v.is_input})
        cls._fields_ = ordered
        cls._input_fields_ = {k: v for k, v in ordered.items() if v.is_input}
        cls._output_fields_ = {k: v for k, v in ordered.items() if not v.is_input}
        doc = namespace.get("__doc__")
        if doc and doc.strip():
            cls._instructions_ = _dedent(doc)
        else:
            inherited = next((getattr(b, "_instructions_", None) for b in bases
                              if getattr(b, "_fields_", None) and getattr(b, "_instructions_", None)), None)
            cls._instructions_ = inherited or default_instructions(
                [k for k, v in ordered.items() if v.is_input], [k for k, v in ordered.items() if not v.is_input])
        return cls

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Signature and args and isinstance(args[0], (str, dict)):
            return make_signature(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    # read-only views ------------------------------------------------------------------------
    @property
    def instructions(cls) -> str:
        return cls._instructions_

    @instructions.setter
    def instructions(cls, value: str) -> None:
        cls._instructions_ = value

    @property
    def fields(cls) -> dict[str, FieldInfo]:
        return dict(cls._fields_)

    @property
    def model_fields(cls) -> dict[str, FieldInfo]:
        return dict(cls._fields_)

    @property
    def input_fields(cls) -> dict[str, FieldInfo]:
        return cls._input_fields_

    @property
    def output_fields(cls) -> dict[str, FieldInfo]:
        return cls._output_fields_

    @property
    def signature(cls) -> str:
        def side(fields: dict[str, FieldInfo]) -> str:
            return ", ".join(fields)
        return f"{side(cls.input_fields)} -> {side(cls.output_fields)}"

    def __repr__(cls) -> str:
        def side(fields: dict[str, FieldInfo]) -> str:
            return ", ".join(f"{k}: {type_name(v.annotation)}" if v.annotation is not str else k
                             for k, v in fields.items())
        return f"{cls.__name__}({side(cls.input_fields)} -> {side(cls.output_fields)}\n    instructions={cls._instructions_!r})"

    # derivations (each returns a new signature class) -----------------------------------------
    def with_instructions(cls, instructions: str) -> type[Signature]:
        return _derive(cls, dict(cls._fields_), instructions)

    def append_instructions(cls, instructions: str) -> type[Signature]:
        """A new signature whose instructions are these ones, a blank line, then ``instructions``."""
        return _derive(cls, dict(cls._fields_), f"{cls._instructions_}\n\n{instructions}")

    def with_updated_fields(cls, name: str, type_: Any = None, **kwargs: Any) -> type[Signature]:
        if name not in cls._fields_:
            raise SignatureError(f"Signature {cls.__name__} has no field {name!r}; fields: {list(cls._fields_)}.")
        fields = dict(cls._fields_)
        changes = dict(kwargs)
        if type_ is not None:
            changes["annotation"] = type_
            changes["type_undefined"] = False
        fields[name] = fields[name].copy(**changes)
        return _derive(cls, fields, cls._instructions_)

    def append(cls, name: str, field: FieldInfo, type_: Any = None) -> type[Signature]:
        return cls.insert(-1, name, field, type_)

    def prepend(cls, name: str, field: FieldInfo, type_: Any = None) -> type[Signature]:
        return cls.insert(0, name, field, type_)

    def insert(cls, index: int, name: str, field: FieldInfo, type_: Any = None) -> type[Signature]:
        _check_name(name, cls.__name__)
        if not isinstance(field, FieldInfo):
            raise SignatureError("insert/append/prepend need a field made with InputField() or OutputField().")
        if name in cls._fields_:
            raise SignatureError(f"Signature {cls.__name__} already has a field {name!r}; use with_updated_fields.")
        field = field.copy(annotation=type_ if type_ is not None else field.annotation)
        inputs = list(cls.input_fields.items())
        outputs = list(cls.output_fields.items())
        group = inputs if field.is_input else outputs
        if index < 0:
            index = len(group) + 1 + index
        if not 0 <= index <= len(group):
            raise SignatureError(f"Index {index} is out of range for the {field.kind} fields of {cls.__name__}.")
        group.insert(index, (name, field))
        return _derive(cls, dict(inputs + outputs), cls._instructions_)

    def delete(cls, name: str) -> type[Signature]:
        fields = dict(cls._fields_)
        fields.pop(name, None)
        return _derive(cls, fields, cls._instructions_)

    def equals(cls, other: Any) -> bool:
        return (isinstance(other, SignatureMeta) and cls._instructions_ == other._instructions_
                and list(cls._fields_.items()) == list(other._fields_.items()))

    def dump_state(cls) -> dict[str, Any]:
        """Instructions and field texts, in order (DSPy's ``prefix``/``description`` keys plus ours)."""
        return {
            "instructions": cls._instructions_,
            "fields": [{"name": k, "kind": v.kind, "type": type_name(v.annotation), "desc": v.desc,
                        "description": v.desc, "prefix": v.prefix} for k, v in cls._fields_.items()],
        }

    def load_state(cls, state: dict[str, Any]) -> type[Signature]:
        if not isinstance(state, dict):
            raise SignatureError("A signature state must be a dict with 'instructions' and 'fields'.")
        new = cls.with_instructions(str(state.get("instructions", cls._instructions_)))
        items = state.get("fields", []) or []
        if not isinstance(items, list):
            raise SignatureError("A signature state's 'fields' must be a list of {'name', 'desc', 'prefix'} dicts.")
        order = list(new._fields_)
        for position, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            # ours name each field; DSPy's state lists the fields in order without names
            name = item.get("name") if "name" in item else (order[position] if position < len(order) else None)
            if isinstance(name, str) and name in new._fields_:
                desc, prefix = item.get("desc", item.get("description")), item.get("prefix")
                if not all(v is None or isinstance(v, str) for v in (desc, prefix)):
                    raise SignatureError(f"The desc and prefix of field {name!r} in a signature state must be text.")
                new = new.with_updated_fields(name, desc=desc, prefix=prefix)
        return new


_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def infer_prefix(attribute_name: str) -> str:
    """A readable label from a field name: ``"questionText"``/``"question_text"`` → ``"Question Text"``,
    ``"HTMLParser"`` → ``"HTML Parser"``, ``"text2number"`` → ``"Text 2 Number"`` (acronyms kept)."""
    words = [w for chunk in attribute_name.split("_") for w in _WORDS.findall(chunk)]
    return " ".join(w if w.isupper() else w[:1].upper() + w[1:] for w in words)


def default_prefix(name: str) -> str:
    """The label DSPy gives a field by default: ``"question_text"`` → ``"Question Text:"``."""
    return infer_prefix(name) + ":"


def _dedent(text: str) -> str:
    import inspect

    return inspect.cleandoc(text)


def _derive(cls: SignatureMeta, fields: dict[str, FieldInfo], instructions: str) -> type[Signature]:
    namespace: dict[str, Any] = {"__doc__": instructions, "__annotations__": {}, "__module__": cls.__module__}
    for name, info in fields.items():
        namespace["__annotations__"][name] = info.annotation
        namespace[name] = info
    base = Signature
    return SignatureMeta(cls.__name__, (base,), namespace)  # type: ignore[return-value]


class Signature(metaclass=SignatureMeta):
    """Base class of every signature. ``Signature("question -> answer")`` builds one from a string.

    An instance holds one value per field (``MySignature(question="...", answer="...")``).
    """

    def __init__(self, **values: Any) -> None:
        unknown = [k for k in values if k not in type(self)._fields_]
        if unknown:
            raise SignatureError(f"{type(self).__name__} has no field(s) {unknown}; fields: {list(type(self)._fields_)}.")
        for key, value in values.items():
            setattr(self, key, value)

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={getattr(self, k)!r}" for k in type(self)._fields_ if hasattr(self, k))
        return f"{type(self).__name__}({values})"


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
            if depth < 0:
                raise SignatureError(f"Unbalanced brackets in {text!r}.")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth != 0:
        raise SignatureError(f"Unbalanced brackets in {text!r}.")
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_signature_string(text: str, custom_types: dict[str, Any] | None = None) -> dict[str, FieldInfo]:
    if not isinstance(text, str) or text.count("->") != 1:
        raise SignatureError(f"A signature string needs exactly one '->' between inputs and outputs, got {text!r}. "
                             "Example: 'question -> answer: float'.")
    left, right = text.split("->")
    fields: dict[str, FieldInfo] = {}
    for side, maker in ((left, InputField), (right, OutputField)):
        items = _split_top_level(side)
        if maker is OutputField and not items:
            raise SignatureError(f"Signature {text!r} has no output field after '->'.")
        for item in items:
            if ":" in item:
                name, type_text = item.split(":", 1)
                name = name.strip()
                annotation = parse_type(type_text, custom_types)
            else:
                name, annotation = item.strip(), str
            _check_name(name, text)
            untyped = ":" not in item
            if name in fields:
                raise SignatureError(f"Field {name!r} appears twice in {text!r}; input and output fields need "
                                     "distinct names.")
            fields[name] = maker().copy(annotation=annotation, **({"type_undefined": True} if untyped else {}))
    return fields


def _caller_names(depth: int = 3) -> dict[str, Any]:
    names: dict[str, Any] = {}
    try:
        frame = sys._getframe(depth)
    except ValueError:
        return names
    for _ in range(4):
        if frame is None:
            break
        mod = frame.f_globals.get("__name__", "")
        if not mod.startswith("textgrad_like"):
            # classes, and modules for dotted names such as "dspy.Image"
            names.update({k: v for k, v in frame.f_globals.items() if isinstance(v, (type, types.ModuleType))})
            names.update({k: v for k, v in frame.f_locals.items() if isinstance(v, (type, types.ModuleType))})
            break
        frame = frame.f_back
    return names


def make_signature(spec: str | dict[str, Any], instructions: str | None = None, signature_name: str = "StringSignature",
                   custom_types: dict[str, Any] | None = None) -> type[Signature]:
    """Build a signature class from ``"a, b: int -> c: list[str]"`` or a dict of fields."""
    if isinstance(spec, str):
        names = {**_caller_names(), **(custom_types or {})}
        fields = parse_signature_string(spec, names)
    elif isinstance(spec, dict):
        fields = {}
        for name, value in spec.items():
            if isinstance(value, tuple) and len(value) == 2:
                annotation, info = value
            else:
                annotation, info = getattr(value, "annotation", str), value
            if not isinstance(info, FieldInfo):
                raise SignatureError(f"Field {name!r} must be InputField()/OutputField() or (type, field).")
            _check_name(name, signature_name)
            fields[name] = info.copy(annotation=annotation)
    else:
        raise SignatureError("Signature(...) takes a string like 'question -> answer' or a dict of fields.")
    namespace: dict[str, Any] = {"__annotations__": {}, "__module__": __name__}
    if instructions:
        namespace["__doc__"] = instructions
    for name, info in fields.items():
        namespace["__annotations__"][name] = info.annotation
        namespace[name] = info
    return SignatureMeta(signature_name, (Signature,), namespace)  # type: ignore[return-value]


def ensure_signature(signature: Any, instructions: str | None = None) -> type[Signature]:
    """Accept a signature class or a signature string; return a class."""
    if isinstance(signature, str):
        return make_signature(signature, instructions)
    if isinstance(signature, SignatureMeta):
        return signature.with_instructions(instructions) if instructions else signature  # type: ignore[return-value]
    raise SignatureError(f"Expected a Signature class or a string such as 'question -> answer', got {signature!r}.")
