"""Input and output fields of a signature."""

from __future__ import annotations

from typing import Any

_MISSING = object()


class FieldInfo:
    """One field of a signature: its role (input/output), type annotation and description."""

    __slots__ = ("kind", "annotation", "desc", "prefix", "default", "extra")

    def __init__(self, kind: str, desc: str | None = None, prefix: str | None = None,
                 default: Any = _MISSING, annotation: Any = str, **extra: Any) -> None:
        self.kind = kind
        self.desc = desc
        self.prefix = prefix
        self.default = default
        self.annotation = annotation
        self.extra = extra

    @property
    def is_input(self) -> bool:
        return self.kind == "input"

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING

    def copy(self, **changes: Any) -> FieldInfo:
        new = FieldInfo(self.kind, self.desc, self.prefix, self.default, self.annotation, **dict(self.extra))
        for key, value in changes.items():
            if key in FieldInfo.__slots__:
                setattr(new, key, value)
            else:
                new.extra[key] = value
        return new

    @property
    def json_schema_extra(self) -> dict[str, Any]:
        """DSPy-style view: ``{"__dspy_field_type": "input", "desc": ..., "prefix": ...}`` (plus
        ``"constraints"``, in words, when the field has pydantic constraints such as ``ge=1``)."""
        view: dict[str, Any] = {"__dspy_field_type": self.kind, "desc": self.desc, "prefix": self.prefix}
        rules = describe_constraints(self)
        if rules:
            view["constraints"] = rules
        return view

    def __repr__(self) -> str:
        from .types import type_name

        desc = f", desc={self.desc!r}" if self.desc else ""
        return f"{'InputField' if self.is_input else 'OutputField'}(type={type_name(self.annotation)}{desc})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, FieldInfo) and self.kind == other.kind and self.desc == other.desc
                and self.annotation == other.annotation)

    def __hash__(self) -> int:
        return hash((self.kind, self.desc, repr(self.annotation)))


def InputField(desc: str | None = None, prefix: str | None = None, default: Any = _MISSING,  # noqa: N802
               **kwargs: Any) -> Any:
    """Declare an input field: ``question: str = InputField(desc="...")``."""
    return FieldInfo("input", desc=desc, prefix=prefix, default=default, **kwargs)


def OutputField(desc: str | None = None, prefix: str | None = None, default: Any = _MISSING,  # noqa: N802
                **kwargs: Any) -> Any:
    """Declare an output field: ``answer: float = OutputField(desc="...")``."""
    return FieldInfo("output", desc=desc, prefix=prefix, default=default, **kwargs)


# pydantic constraints a field may carry: InputField(ge=1), OutputField(max_length=80), ...
CONSTRAINT_KEYS = ("gt", "ge", "lt", "le", "multiple_of", "min_length", "max_length", "pattern",
                   "allow_inf_nan", "max_digits", "decimal_places")
_CONSTRAINT_WORDS = {"gt": "greater than", "ge": "greater than or equal to", "lt": "less than",
                     "le": "less than or equal to", "multiple_of": "a multiple of the given number",
                     "min_length": "minimum length", "max_length": "maximum length", "pattern": "matching the pattern",
                     "max_digits": "at most digits", "decimal_places": "at most decimal places",
                     "allow_inf_nan": "infinity and NaN allowed"}


def field_constraints(info: Any) -> dict[str, Any]:
    """The pydantic constraints given to a field (``OutputField(ge=0, le=10)``)."""
    extra = getattr(info, "extra", None) or {}
    return {k: extra[k] for k in CONSTRAINT_KEYS if extra.get(k) is not None}


def describe_constraints(info: Any) -> str:
    """The constraints of a field in words, for the prompt (``""`` when it has none)."""
    return ", ".join(f"{_CONSTRAINT_WORDS[k]}: {v}" for k, v in field_constraints(info).items())
