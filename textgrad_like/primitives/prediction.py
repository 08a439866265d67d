"""``Prediction`` (what a module returns) and ``Completions`` (several candidate outputs)."""

from __future__ import annotations

from typing import Any

from .example import Example


class Prediction(Example):
    """The outputs of a module call: an :class:`Example` with candidate completions and LM usage.

    A prediction that carries a ``score`` field behaves like that number in comparisons and
    arithmetic, so metric results and predictions can be averaged alike.
    """

    __slots__ = ("_completions", "_lm_usage", "_graph")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "_completions", None)
        object.__setattr__(self, "_lm_usage", None)
        object.__setattr__(self, "_graph", None)

    def __getstate__(self) -> tuple[None, dict[str, Any]]:
        """Pickled without the recorded graph: it holds the live program, and backward needs that one."""
        slots = {name: getattr(self, name) for cls in type(self).__mro__
                 for name in getattr(cls, "__slots__", ()) if hasattr(self, name)}
        slots["_graph"] = None
        return None, slots

    @classmethod
    def from_completions(cls, list_or_dict: Any, signature: Any = None) -> Prediction:
        completions = Completions(list_or_dict, signature=signature)
        pred = cls(**{k: v[0] for k, v in completions.items()})
        object.__setattr__(pred, "_completions", completions)
        return pred

    @property
    def completions(self) -> Completions:
        if self._completions is None:
            object.__setattr__(self, "_completions", Completions([dict(self.items())]))
        return self._completions  # type: ignore[return-value]

    def get_lm_usage(self) -> dict[str, Any] | None:
        return self._lm_usage

    def set_lm_usage(self, usage: dict[str, Any] | None) -> None:
        object.__setattr__(self, "_lm_usage", usage)

    @property
    def graph(self) -> Any:
        """The computation graph recorded while this prediction was produced (training mode)."""
        return self._graph

    def __repr__(self) -> str:
        fields = ",\n    ".join(f"{k}={v!r}" for k, v in self.items())
        if self._completions is None or len(self._completions) <= 1:
            return f"Prediction(\n    {fields}\n)"
        omitted = len(self._completions) - 1  # DSPy's printed form
        return f"Prediction(\n    {fields},\n    completions=Completions(...)\n) ({omitted} completions omitted)"

    __str__ = __repr__

    # numeric behaviour through the ``score`` field -------------------------------------------
    def __float__(self) -> float:
        if "score" not in self._store:
            raise TypeError("Only a Prediction with a 'score' field can be used as a number.")
        return float(self._store["score"])

    def __add__(self, other: Any) -> float:
        return float(self) + float(other)

    def __radd__(self, other: Any) -> float:
        return float(other) + float(self)

    def __truediv__(self, other: Any) -> float:
        return float(self) / float(other)

    def __rtruediv__(self, other: Any) -> float:
        return float(other) / float(self)

    def __lt__(self, other: Any) -> bool:
        return float(self) < float(other)

    def __le__(self, other: Any) -> bool:
        return float(self) <= float(other)

    def __gt__(self, other: Any) -> bool:
        return float(self) > float(other)

    def __ge__(self, other: Any) -> bool:
        return float(self) >= float(other)

    __hash__ = Example.__hash__


class Completions:
    """Several completions of one call: ``c.answer`` is a list, ``c[i]`` a :class:`Prediction`."""

    def __init__(self, list_or_dict: Any, signature: Any = None) -> None:
        self.signature = signature
        if isinstance(list_or_dict, Completions):
            data = dict(list_or_dict._completions)
        elif isinstance(list_or_dict, list):
            data: dict[str, list[Any]] = {}
            for item in list_or_dict:
                row = dict(item.items()) if isinstance(item, Example) else dict(item)
                for key, value in row.items():
                    data.setdefault(key, []).append(value)
            lengths = {len(v) for v in data.values()}
            if len(lengths) > 1:
                raise ValueError("Every completion must have the same fields.")
        elif isinstance(list_or_dict, dict):
            data = {k: list(v) for k, v in list_or_dict.items()}
            if len({len(v) for v in data.values()}) > 1:
                raise ValueError("Every field of Completions must hold the same number of values.")
        else:
            raise TypeError("Completions takes a list of dicts or a dict of lists.")
        self._completions = data

    def items(self) -> Any:
        return self._completions.items()

    def __getattr__(self, key: str) -> list[Any]:
        if key.startswith("__") or key == "_completions":
            raise AttributeError(key)
        try:
            return self._completions[key]
        except KeyError:
            raise AttributeError(key) from None

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self._completions[key]
        if key < -len(self) or key >= len(self):
            raise IndexError(f"completion index {key} out of range (have {len(self)})")
        return Prediction(**{k: v[key] for k, v in self._completions.items()})

    def __len__(self) -> int:
        return len(next(iter(self._completions.values()))) if self._completions else 0

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self)))

    def __contains__(self, key: object) -> bool:
        return key in self._completions

    def __repr__(self) -> str:
        fields = ",\n    ".join(f"{k}={v!r}" for k, v in self._completions.items())
        return f"Completions(\n    {fields}\n)"

    __str__ = __repr__
