"""Container modules, as in ``torch.nn``: :class:`ModuleList`, :class:`ModuleDict`, :class:`Sequential`.

Children are registered under their index or key, so names are torch's dotted ones
(``layers.0.instruction``, ``experts.math.predict.demos``) in ``named_modules``,
``named_parameters`` and ``state_dict``. (A plain Python list of modules also works, as in DSPy; its
children are named ``layers[0]``.)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..primitives import Prediction
from .module import Module


def _check_module(value: Any, where: str) -> Module:
    if not isinstance(value, Module):
        raise TypeError(f"{where} holds textgrad_like.nn.Module objects, got {type(value).__name__}.")
    return value


class ModuleList(Module):
    """A list of modules whose items are registered children (``ModuleList([Predict(...), ...])``)."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _items(self) -> list[Module]:
        return list(self._registry("_modules").values())

    def _reindex(self, items: list[Module]) -> None:
        reg = self._registry("_modules")
        reg.clear()
        for i, module in enumerate(items):
            reg[str(i)] = module

    def _index(self, idx: int) -> int:
        n = len(self)
        if not isinstance(idx, int):
            raise TypeError(f"ModuleList indices must be integers or slices, not {type(idx).__name__}.")
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range for a ModuleList of {n} modules.")
        return idx % n

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            return type(self)(self._items()[idx])
        return self._registry("_modules")[str(self._index(idx))]

    def __setitem__(self, idx: int, module: Module) -> None:
        self._registry("_modules")[str(self._index(idx))] = _check_module(module, "ModuleList")

    def __delitem__(self, idx: int | slice) -> None:
        items = self._items()
        if isinstance(idx, slice):
            del items[idx]
        else:
            del items[self._index(idx)]
        self._reindex(items)

    def __len__(self) -> int:
        return len(self._registry("_modules"))

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items())

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        return type(self)([*self, *other])

    def append(self, module: Module) -> ModuleList:
        self._registry("_modules")[str(len(self))] = _check_module(module, "ModuleList")
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        items = self._items()
        items.insert(index, _check_module(module, "ModuleList"))
        self._reindex(items)

    def pop(self, index: int = -1) -> Module:
        items = self._items()
        module = items.pop(self._index(index))
        self._reindex(items)
        return module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("A ModuleList has no forward; iterate over it in your module's forward.")


class ModuleDict(Module):
    """A dict of modules whose values are registered children under their keys."""

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._registry("_modules")[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, _check_module(module, "ModuleDict"))

    def __delitem__(self, key: str) -> None:
        del self._registry("_modules")[key]

    def __len__(self) -> int:
        return len(self._registry("_modules"))

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._registry("_modules")))

    def __contains__(self, key: object) -> bool:
        return key in self._registry("_modules")

    def keys(self) -> list[str]:
        return list(self._registry("_modules").keys())

    def values(self) -> list[Module]:
        return list(self._registry("_modules").values())

    def items(self) -> list[tuple[str, Module]]:
        return list(self._registry("_modules").items())

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for key, module in pairs:
            self[key] = module

    def pop(self, key: str) -> Module:
        return self._registry("_modules").pop(key)

    def clear(self) -> None:
        self._registry("_modules").clear()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("A ModuleDict has no forward; pick a module by key in your module's forward.")


class Sequential(Module):
    """Modules called in order, each on the previous one's output (``Sequential(a, b)`` or with an
    ``OrderedDict`` of named modules, as in torch).

    The first module gets the call's arguments. A :class:`Prediction` (or dict) output is passed on as
    keyword arguments — to a predictor, only the fields its signature takes, so
    ``Sequential(Predict("question -> query"), ChainOfThought("query -> answer"))`` chains by field
    name; any other output is passed on as the single positional argument.
    """

    def __init__(self, *modules: Module | OrderedDict[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for key, module in modules[0].items():
                self.add_module(key, _check_module(module, "Sequential"))
        else:
            for i, module in enumerate(modules):
                self.add_module(str(i), _check_module(module, "Sequential"))

    def __getitem__(self, idx: int | slice) -> Any:
        items = list(self._registry("_modules").items())
        if isinstance(idx, slice):
            return type(self)(OrderedDict(items[idx]))
        return items[idx][1]

    def __len__(self) -> int:
        return len(self._registry("_modules"))

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._registry("_modules").values()))

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), _check_module(module, "Sequential"))
        return self

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        modules = list(self)
        if not modules:
            raise ValueError("An empty Sequential has nothing to run; add modules first.")
        out = modules[0](*args, **kwargs)
        for module in modules[1:]:
            out = module(**_as_kwargs(module, out)) if isinstance(out, (Prediction, Mapping)) else module(out)
        return out


def _as_kwargs(module: Module, out: Prediction | Mapping[str, Any]) -> dict[str, Any]:
    fields = dict(out.items())
    signature = getattr(module, "signature", None)
    if signature is None:
        predictors = module.predictors()
        signature = getattr(predictors[0], "signature", None) if len(predictors) == 1 else None
    if signature is not None:
        fields = {k: v for k, v in fields.items() if k in signature.input_fields}
    return fields
