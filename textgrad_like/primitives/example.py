"""``Example``: one data point, a dict with attribute access and a notion of which keys are inputs."""

from __future__ import annotations

import copy as _copy
from collections.abc import Iterator
from typing import Any

from ..errors import InputError


class Example:
    """A record of named fields, some of which are marked as inputs with :meth:`with_inputs`.

    ``Example(question="2+2?", answer="4").with_inputs("question")`` is a labeled example whose
    ``inputs()`` holds the question and whose ``labels()`` hold the answer.
    """

    __slots__ = ("_store", "_input_keys")

    def __init__(self, base: Any = None, **kwargs: Any) -> None:
        store: dict[str, Any] = {}
        input_keys: frozenset[str] | None = None
        if isinstance(base, Example):
            store.update(base._store)
            input_keys = base._input_keys
        elif isinstance(base, dict):
            store.update(base)
        elif base is not None:
            raise TypeError(f"Example(base=...) takes an Example or a dict, not {type(base).__name__}")
        store.update(kwargs)
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "_input_keys", input_keys)

    # attribute and item access -------------------------------------------------------------
    def __getattr__(self, key: str) -> Any:
        if key.startswith("__") and key.endswith("__") or key in ("_store", "_input_keys"):
            raise AttributeError(key)  # dunders, and the store itself while unpickling (before __init__)
        try:
            return self._store[key]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no field {key!r}; fields: {list(self._store)}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        if key in ("_store", "_input_keys") or (key.startswith("_") and any(
                key in getattr(cls, "__slots__", ()) for cls in type(self).__mro__)):
            object.__setattr__(self, key, value)  # a slot (unpickling sets them by name)
        else:
            self._store[key] = value

    def __delattr__(self, key: str) -> None:
        try:
            del self._store[key]
        except KeyError:
            raise AttributeError(key) from None

    def __getitem__(self, key: str) -> Any:
        return self._store[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._store[key] = value

    def __delitem__(self, key: str) -> None:
        del self._store[key]

    def __contains__(self, key: object) -> bool:
        return key in self._store

    def __len__(self) -> int:
        return len([k for k in self._store if not k.startswith("dspy_")])

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Example):
            return self._store == other._store
        if isinstance(other, dict):  # a demo loaded from a saved program is a plain dict, as in DSPy
            return self._store == other
        return False

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, repr(v)) for k, v in self._store.items())))

    def __repr__(self) -> str:
        fields = {k: v for k, v in self._store.items() if not k.startswith("dspy_")}
        input_keys = set(self._input_keys) if self._input_keys is not None else None
        return f"Example({fields}) (input_keys={input_keys})"  # DSPy's printed form

    __str__ = __repr__

    def __deepcopy__(self, memo: dict[int, Any]) -> Example:
        new = type(self).__new__(type(self))
        object.__setattr__(new, "_store", _copy.deepcopy(self._store, memo))
        object.__setattr__(new, "_input_keys", self._input_keys)
        for slot in getattr(type(self), "__slots__", ()):
            if slot not in ("_store", "_input_keys") and hasattr(self, slot):
                object.__setattr__(new, slot, _copy.deepcopy(getattr(self, slot), memo))
        return new

    # dict-like API ------------------------------------------------------------------------------
    def keys(self, include_dspy: bool = False) -> list[str]:
        return [k for k in self._store if include_dspy or not k.startswith("dspy_")]

    def values(self, include_dspy: bool = False) -> list[Any]:
        return [self._store[k] for k in self.keys(include_dspy)]

    def items(self, include_dspy: bool = False) -> list[tuple[str, Any]]:
        return [(k, self._store[k]) for k in self.keys(include_dspy)]

    def get(self, key: str, default: Any = None) -> Any:
        return self._store.get(key, default)

    # inputs and labels --------------------------------------------------------------------------
    @property
    def input_keys(self) -> frozenset[str] | None:
        return self._input_keys

    def with_inputs(self, *keys: str) -> Example:
        new = self.copy()
        object.__setattr__(new, "_input_keys", frozenset(keys))
        return new

    def inputs(self) -> Example:
        if self._input_keys is None:
            raise InputError(
                "This Example has no input keys. Call example.with_inputs('field', ...) to say "
                "which fields are inputs."
            )
        new = Example({k: v for k, v in self._store.items() if k in self._input_keys})
        object.__setattr__(new, "_input_keys", self._input_keys)
        return new

    def labels(self) -> Example:
        keys = self._input_keys or frozenset()
        return Example({k: v for k, v in self._store.items() if k not in keys})

    def copy(self, **kwargs: Any) -> Example:
        new = type(self).__new__(type(self))
        object.__setattr__(new, "_store", {**self._store, **kwargs})
        object.__setattr__(new, "_input_keys", self._input_keys)
        for slot in getattr(type(self), "__slots__", ()):
            if slot not in ("_store", "_input_keys") and hasattr(self, slot):
                object.__setattr__(new, slot, getattr(self, slot))
        return new

    def without(self, *keys: str) -> Example:
        new = self.copy()
        for key in keys:
            new._store.pop(key, None)
        return new

    def toDict(self) -> dict[str, Any]:  # noqa: N802 - DSPy's public name
        return _to_plain(self._store)

    to_dict = toDict


def _to_plain(value: Any) -> Any:
    if isinstance(value, Example):
        return _to_plain(value._store)
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump()
    return value
