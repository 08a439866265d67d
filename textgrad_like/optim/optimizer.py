"""``Optimizer``: the base of every optimizer, shaped like ``torch.optim.Optimizer``.

Gradient optimizers (``TextualGradientDescent``) implement :meth:`step`. Search optimizers
(BootstrapRS, MIPROv2, GEPA, ...) subclass :class:`Teleprompter`, which also offers DSPy's
``compile(student, trainset=..., valset=...)``; they act on the same Instruction and Demos
parameters and expose their search state through ``state_dict()``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import OptimizerError
from ..nn.module import Module
from ..nn.parameter import Parameter


def _collect(params: Any) -> list[Parameter]:
    if isinstance(params, Module):
        return [p for _, p in params.named_parameters()]
    if isinstance(params, Parameter):
        return [params]
    out: list[Parameter] = []
    for item in params:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Parameter):
            out.append(item[1])
        elif isinstance(item, Parameter):
            out.append(item)
        elif isinstance(item, Module):
            out.extend(p for _, p in item.named_parameters())
        else:
            raise OptimizerError(f"Optimizers take Parameters (e.g. module.parameters()), got {type(item).__name__}.")
    return out


class Optimizer:
    """Holds param groups and per-parameter state; subclasses define :meth:`step`."""

    def __init__(self, params: Iterable[Any] | Module, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}
        groups = list(params) if not isinstance(params, Module) else [params]
        if groups and isinstance(groups[0], dict):
            for group in groups:
                self.add_param_group(group)
        else:
            self.add_param_group({"params": groups})
        if not any(g["params"] for g in self.param_groups):
            raise OptimizerError("The optimizer got an empty parameter list: pass module.parameters() or [variable].")

    def add_param_group(self, group: dict[str, Any]) -> None:
        params = _collect(group["params"])
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise OptimizerError("A parameter appears in more than one param group.")
        self.param_groups.append({**self.defaults, **group, "params": params})

    def parameters(self) -> list[Parameter]:
        return [p for g in self.param_groups for p in g["params"]]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        index = {id(p): i for i, p in enumerate(self.parameters())}
        groups = []
        for g in self.param_groups:
            entry = {k: v for k, v in g.items() if k != "params" and _jsonable(v)}
            entry["params"] = [index[id(p)] for p in g["params"]]
            groups.append(entry)
        state = {index[pid]: copy.deepcopy(s) for pid, s in self.state.items() if pid in index}
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
        self.state = {}
        for key, value in state_dict.get("state", {}).items():
            i = int(key)
            if 0 <= i < len(params):
                self.state[id(params[i])] = copy.deepcopy(value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.parameters())} parameters)"


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None), list, dict))
