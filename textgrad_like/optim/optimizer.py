"""``Optimizer``: the base of every optimizer, shaped like ``torch.optim.Optimizer``.

Gradient optimizers (``TextualGradientDescent``) implement :meth:`step`. Search optimizers
(BootstrapRS, MIPROv2, GEPA, ...) subclass :class:`Teleprompter`, which also offers DSPy's
``compile(student, trainset=..., valset=...)``; they act on the same Instruction and Demos
parameters and expose their search state through ``state_dict()``.

As in torch: ``param_groups`` is a list of dicts (``{"params": [...], **hyperparameters}``),
``state`` maps each parameter (by identity) to a dict, ``zero_grad(set_to_none=True)`` clears the
gradients, and ``state_dict()`` / ``load_state_dict()`` save the state by parameter position.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

from ..errors import OptimizerError
from ..nn.module import Module
from ..nn.parameter import Parameter

logger = logging.getLogger(__name__)


def _is_tensor(item: Any) -> bool:
    return type(item).__module__.startswith("torch") and hasattr(item, "requires_grad") and hasattr(item, "grad")


class ParamState(MutableMapping[Any, dict[str, Any]]):
    """Per-parameter state keyed by the parameter itself (by identity, as torch keys by tensor); a
    missing parameter reads as a new empty dict (``opt.state[p]["history"] = ...`` just works)."""

    def __init__(self) -> None:
        self._data: dict[int, tuple[Any, dict[str, Any]]] = {}

    def __getitem__(self, param: Any) -> dict[str, Any]:
        entry = self._data.get(id(param))
        if entry is None or entry[0] is not param:
            entry = (param, {})
            self._data[id(param)] = entry
        return entry[1]

    def __setitem__(self, param: Any, value: dict[str, Any]) -> None:
        self._data[id(param)] = (param, value)

    def __delitem__(self, param: Any) -> None:
        entry = self._data.get(id(param))
        if entry is None or entry[0] is not param:
            raise KeyError(param)
        del self._data[id(param)]

    def __contains__(self, param: object) -> bool:
        entry = self._data.get(id(param))
        return entry is not None and entry[0] is param

    def __iter__(self) -> Iterator[Any]:
        return (param for param, _ in list(self._data.values()))

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"ParamState({len(self)} parameters)"


class Optimizer:
    """Holds param groups and per-parameter state; subclasses define :meth:`step`.

    ``skip_kinds`` names parameter kinds this optimizer leaves to others (``TextualGradientDescent``
    leaves ``"lora"`` to a torch optimizer); those, and raw torch tensors, are dropped from the groups
    with one log line instead of raising."""

    skip_kinds: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Any] | Module, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: ParamState = ParamState()
        groups = list(params) if not isinstance(params, Module) else [params]
        if groups and isinstance(groups[0], dict):
            for group in groups:
                self.add_param_group(group)
        else:
            self.add_param_group({"params": groups})
        if not any(g["params"] for g in self.param_groups):
            raise OptimizerError(f"{type(self).__name__} got no parameter it can step: pass module.parameters() or "
                                 "[variable] (text parameters).")

    def _collect(self, params: Any) -> list[Parameter]:
        if isinstance(params, (Module, Parameter)) or _is_tensor(params):
            params = [params]
        out: list[Parameter] = []
        skipped: list[str] = []
        for item in params:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Parameter):
                item = item[1]
            if isinstance(item, Module):
                candidates: list[Any] = [p for _, p in item.named_parameters()]
            elif isinstance(item, Parameter) or _is_tensor(item):
                candidates = [item]
            else:
                raise OptimizerError(f"Optimizers take Parameters (e.g. module.parameters()), got "
                                     f"{type(item).__name__}.")
            for param in candidates:
                if _is_tensor(param) or getattr(param, "kind", None) in self.skip_kinds:
                    skipped.append(getattr(param, "name", None) or type(param).__name__)
                else:
                    out.append(param)
        if skipped:
            logger.info("%s leaves %d parameter(s) to another optimizer (torch tensors / kinds %s): %s",
                        type(self).__name__, len(skipped), list(self.skip_kinds), skipped[:5])
        return out

    def add_param_group(self, group: dict[str, Any]) -> None:
        if not isinstance(group, dict) or "params" not in group:
            raise OptimizerError("A param group is a dict with a 'params' entry, e.g. {'params': [...], 'momentum': 2}.")
        params = self._collect(group["params"])
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise OptimizerError("A parameter appears in more than one param group.")
        merged = {**self.defaults, **group, "params": params}
        self.validate_group(merged)
        self.param_groups.append(merged)

    def validate_group(self, group: dict[str, Any]) -> None:
        """Check (and normalise in place) a group's hyperparameters; raise ``ValueError`` naming a bad one."""

    def parameters(self) -> list[Parameter]:
        return [p for g in self.param_groups for p in g["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient (``None``; with ``set_to_none=False`` an empty list)."""
        for p in self.parameters():
            p.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        index = {id(p): i for i, p in enumerate(self.parameters())}
        groups = []
        for g in self.param_groups:
            entry = {k: v for k, v in g.items() if k != "params" and _jsonable(v)}
            entry["params"] = [index[id(p)] for p in g["params"]]
            groups.append(entry)
        state = {index[id(p)]: copy.deepcopy(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        params = self.parameters()
        groups = state_dict.get("param_groups", [])
        if len(groups) != len(self.param_groups):
            raise OptimizerError("The saved optimizer state has a different number of param groups.")
        for own, saved in zip(self.param_groups, groups, strict=True):
            if len(own["params"]) != len(saved.get("params", [])):
                raise OptimizerError("A saved param group has a different number of parameters.")
            own.update({k: v for k, v in saved.items() if k != "params"})
            self.validate_group(own)
        self.state = ParamState()
        for key, value in state_dict.get("state", {}).items():
            i = int(key)
            if 0 <= i < len(params):
                self.state[params[i]] = copy.deepcopy(value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.parameters())} parameters)"


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None), list, dict))
