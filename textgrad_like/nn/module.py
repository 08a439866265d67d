"""``Module``: the base class of every program, with a torch-style parameter registry.

Assigning a :class:`Parameter` or a :class:`Module` to an attribute registers it, as in
``torch.nn.Module`` — also in classes whose ``__init__`` never calls ``super().__init__()``, as
DSPy programs are often written. Modules inside lists, tuples and dicts are found too.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import platform
from collections.abc import Iterator
from typing import Any

from ..callbacks import with_callbacks
from ..errors import ConfigurationError, StateDictError
from ..lm.usage import track_usage
from ..primitives import Prediction
from ..settings import settings
from .graph import Graph, _current_graph, _forward_scope, is_grad_enabled
from .parameter import Parameter

logger = logging.getLogger(__name__)

STATE_FORMAT = "textgrad_like.program/1"


class Module:
    """Subclass it and write ``forward``; call the instance to run it."""

    _callback_kind = "module"
    training: bool = True
    _compiled: bool = False
    callbacks: list[Any] = []

    def __init__(self, callbacks: list[Any] | None = None) -> None:
        self.callbacks = list(callbacks or [])
        self._compiled = False

    # --- registry ------------------------------------------------------------------------------
    def _registry(self, which: str) -> dict[str, Any]:
        reg = self.__dict__.get(which)
        if reg is None:
            reg = {}
            object.__setattr__(self, which, reg)
        return reg

    def __setattr__(self, name: str, value: Any) -> None:
        current = self.__dict__.get(name)
        if isinstance(current, Parameter) and not isinstance(value, Parameter):
            current.value = value  # e.g. predictor.demos = [...] keeps the parameter object
            return
        if not name.startswith("_"):
            params, modules = self._registry("_parameters"), self._registry("_modules")
            params.pop(name, None)
            modules.pop(name, None)
            if isinstance(value, Parameter):
                params[name] = value
            elif isinstance(value, Module):
                modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._registry("_parameters").pop(name, None)
        self._registry("_modules").pop(name, None)
        object.__delattr__(self, name)

    def _own_parameters(self) -> Iterator[tuple[str, Parameter]]:
        for name, value in list(self.__dict__.items()):
            if isinstance(value, Parameter) and not name.startswith("_"):
                yield name, value

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, value in list(self.__dict__.items()):
            if name.startswith("_") or name == "callbacks":
                continue
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield f"{name}[{i}]", item
            elif isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(item, Module):
                        yield f"{name}['{key}']", item

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def named_modules(self, prefix: str = "", memo: set[int] | None = None) -> Iterator[tuple[str, Module]]:
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         kind: str | type | None = None) -> Iterator[tuple[str, Parameter]]:
        """``(dotted name, parameter)`` pairs; ``kind="instruction" | "demos" | "lora" | "variable"``
        or a Parameter class filters them."""
        seen: set[int] = set()
        modules = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mod_name, module in modules:
            for name, param in module._own_parameters():
                if id(param) in seen:
                    continue
                seen.add(id(param))
                if kind is not None:
                    if isinstance(kind, str) and param.kind != kind:
                        continue
                    if isinstance(kind, type) and not isinstance(param, kind):
                        continue
                full = f"{mod_name}.{name}" if mod_name else name
                if param.name is None:
                    param.name = full
                yield full, param

    def parameters(self, recurse: bool = True, kind: str | type | None = None) -> Iterator[Any]:
        """The parameters; for ``kind="lora"`` the LoRA tensors themselves, ready for a torch optimizer."""
        for _, param in self.named_parameters(recurse=recurse, kind=kind):
            if param.kind == "lora" and hasattr(param, "tensors"):
                yield from param.tensors()
            else:
                yield param

    # --- DSPy-style views ------------------------------------------------------------------------
    def named_predictors(self) -> list[tuple[str, Any]]:
        out = []
        for name, module in self.named_modules():
            if getattr(module, "_is_predictor", False):
                out.append((name or "self", module))
        return out

    def predictors(self) -> list[Any]:
        return [p for _, p in self.named_predictors()]

    def named_sub_modules(self, type_: type | None = None, skip_compiled: bool = False) -> Iterator[tuple[str, Module]]:
        for name, module in self.named_modules("self"):
            if skip_compiled and module._compiled and module is not self:
                continue
            if type_ is None or isinstance(module, type_):
                yield name, module

    def map_named_predictors(self, func: Any) -> Module:
        for name, predictor in self.named_predictors():
            _set_by_path(self, name, func(predictor))
        return self

    def set_lm(self, lm: Any) -> None:
        for _, predictor in self.named_predictors():
            predictor.lm = lm

    def get_lm(self) -> Any:
        lms = {id(p.lm): p.lm for p in self.predictors()}
        if len(lms) != 1:
            raise ConfigurationError("Predictors of this module use several (or no) LMs; ask each predictor.")
        return next(iter(lms.values()))

    # --- modes and gradients ------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for _, param in self.named_parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self) -> None:
        for _, param in self.named_parameters():
            param.zero_grad()

    # --- copies ---------------------------------------------------------------------------------
    def deepcopy(self) -> Module:
        return copy.deepcopy(self)

    def reset_copy(self) -> Module:
        new = self.deepcopy()
        for predictor in new.predictors():
            predictor.reset()
        return new

    def __deepcopy__(self, memo: dict[int, Any]) -> Module:
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            try:
                object.__setattr__(new, key, copy.deepcopy(value, memo))
            except Exception:
                object.__setattr__(new, key, copy.copy(value))
        return new

    # --- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{dotted parameter name: JSON value}`` for every text/demo parameter (LoRA: its file reference)."""
        return {name: copy.deepcopy(param.state()) for name, param in self.named_parameters()}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> Module:
        if not isinstance(state, dict):
            raise StateDictError(f"load_state_dict needs a dict, got {type(state).__name__}.")
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise StateDictError(f"State does not fit this module: missing keys {missing}, unexpected keys "
                                 f"{unexpected}. Pass strict=False to load the keys that match.")
        for name, value in state.items():
            if name in own:
                try:
                    own[name].load_state(value)
                except StateDictError:
                    raise
                except Exception as exc:
                    raise StateDictError(f"Cannot load {name!r}: {type(exc).__name__}: {exc}") from None
        return self

    def dump_state(self) -> dict[str, Any]:
        """DSPy-style state: per predictor its demos, signature and LM settings."""
        return {name: predictor.dump_state() for name, predictor in self.named_predictors()}

    def load_state(self, state: dict[str, Any]) -> Module:
        if not isinstance(state, dict):
            raise StateDictError("load_state needs the dict made by dump_state().")
        for name, predictor in self.named_predictors():
            if name in state:
                predictor.load_state(state[name])
        return self

    def save(self, path: str | os.PathLike[str], save_program: bool = False) -> None:
        """Save as JSON (state_dict, signatures, versions). ``save_program=True`` pickles the whole
        program into a directory with cloudpickle — only load such files from sources you trust."""
        path = os.fspath(path)
        if save_program:
            import cloudpickle

            os.makedirs(path, exist_ok=True)
            with open(os.path.join(path, "program.pkl"), "wb") as f:
                cloudpickle.dump(self, f)
            with open(os.path.join(path, "metadata.json"), "w", encoding="utf-8") as f:
                json.dump({"format": STATE_FORMAT, "versions": versions()}, f, indent=2)
            return
        data = {
            "format": STATE_FORMAT,
            "state_dict": self.state_dict(),
            "signatures": {name: p.signature.dump_state() for name, p in self.named_predictors()},
            "lms": {name: (p.lm.dump_state() if p.lm is not None else None) for name, p in self.named_predictors()},
            "metadata": {"versions": versions(), "class": type(self).__qualname__},
        }
        for hook in _save_hooks:
            hook(self, path, data)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)

    def load(self, path: str | os.PathLike[str], allow_pickle: bool = False) -> Module:
        """Load what :meth:`save` wrote into this module. Pickled programs need ``allow_pickle=True``."""
        path = os.fspath(path)
        if os.path.isdir(path) or path.endswith(".pkl"):
            raise StateDictError(f"{path} is a pickled program; use textgrad_like.load(path, allow_pickle=True).")
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise StateDictError(f"{path} is not a saved program (invalid JSON: {exc}).") from None
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            if isinstance(data, dict) and all(isinstance(v, dict) and "demos" in v for v in data.values()):
                return self.load_state(data)  # a dump_state() file
            raise StateDictError(f"{path} was not written by Module.save (no format {STATE_FORMAT!r}).")
        for key in ("signatures", "state_dict"):
            if not isinstance(data.get(key) or {}, dict):
                raise StateDictError(f"{path}: {key!r} must be a JSON object; the file is damaged or not from save().")
        for name, sig_state in (data.get("signatures") or {}).items():
            for pname, predictor in self.named_predictors():
                if pname == name and isinstance(sig_state, dict):
                    predictor.signature = predictor.signature.load_state(sig_state)
        self.load_state_dict(data.get("state_dict") or {}, strict=False)
        for hook in _load_hooks:
            hook(self, path, data)
        return self

    # --- calling ----------------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward(...).")

    async def aforward(self, *args: Any, **kwargs: Any) -> Any:
        import asyncio
        import contextvars

        ctx = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(None, lambda: ctx.run(self.forward, *args, **kwargs))

    def _needs_graph(self) -> bool:
        return _current_graph.get() is None and self.training and is_grad_enabled()

    @with_callbacks
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if settings.get("track_usage") and settings.get("usage_tracker") is None:
            with track_usage() as tracker:
                result = self._call_traced(*args, **kwargs)
            if isinstance(result, Prediction):
                result.set_lm_usage(tracker.totals())
            return result
        return self._call_traced(*args, **kwargs)

    def _call_traced(self, *args: Any, **kwargs: Any) -> Any:
        if self._needs_graph():
            graph = Graph(root=self)
            with _forward_scope(graph):
                result = self.forward(*args, **kwargs)
            graph.name_nodes()
            if isinstance(result, Prediction):
                object.__setattr__(result, "_graph", graph)
            return result
        return self.forward(*args, **kwargs)

    @with_callbacks
    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        if settings.get("track_usage") and settings.get("usage_tracker") is None:
            with track_usage() as tracker:
                result = await self._acall_traced(*args, **kwargs)
            if isinstance(result, Prediction):
                result.set_lm_usage(tracker.totals())
            return result
        return await self._acall_traced(*args, **kwargs)

    async def _acall_traced(self, *args: Any, **kwargs: Any) -> Any:
        if self._needs_graph():
            graph = Graph(root=self)
            with _forward_scope(graph):
                result = await self.aforward(*args, **kwargs)
            graph.name_nodes()
            if isinstance(result, Prediction):
                object.__setattr__(result, "_graph", graph)
            return result
        return await self.aforward(*args, **kwargs)

    def batch(self, examples: list[Any], num_threads: int | None = None, max_errors: int | None = None,
              return_failed_examples: bool = False, provide_traceback: bool | None = None,
              disable_progress_bar: bool = False) -> Any:
        """Run the module on many examples in parallel (each example's inputs as keyword arguments)."""
        from ..parallel import ParallelExecutor

        executor = ParallelExecutor(num_threads=num_threads, max_errors=max_errors,
                                    disable_progress_bar=disable_progress_bar, provide_traceback=provide_traceback)
        results = executor.run(lambda ex: self(**ex.inputs()), examples)
        if return_failed_examples:
            failed = [examples[i] for i in executor.failed_indices]
            return results, failed, [executor.errors[i] for i in executor.failed_indices]
        return results

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        for name, child in self.named_children():
            inner = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {inner}")
        for name, param in self._own_parameters():
            lines.append(f"  ({name}): {param!r}")
        lines.append(")")
        return "\n".join(lines) if len(lines) > 2 else f"{type(self).__name__}()"


_save_hooks: list[Any] = []
_load_hooks: list[Any] = []


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("textgrad_like", "pydantic", "litellm"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def _set_by_path(root: Module, path: str, value: Any) -> None:
    if path == "self":
        raise ConfigurationError("map_named_predictors cannot replace the root module itself.")
    import re

    parts = re.findall(r"[^.\[\]]+|\[[^\]]+\]", path)
    obj: Any = root
    for part in parts[:-1]:
        obj = _step(obj, part)
    last = parts[-1]
    if last.startswith("["):
        key = last[1:-1].strip("'")
        obj[int(key) if key.isdigit() else key] = value
    else:
        setattr(obj, last, value)


def _step(obj: Any, part: str) -> Any:
    if part.startswith("["):
        key = part[1:-1].strip("'")
        return obj[int(key) if key.isdigit() else key]
    return getattr(obj, part)


def load(path: str | os.PathLike[str], allow_pickle: bool = False) -> Module:
    """Load a whole program saved with ``save(path, save_program=True)``. This unpickles code, so
    it refuses unless ``allow_pickle=True`` is passed: only load programs from sources you trust."""
    path = os.fspath(path)
    if not allow_pickle:
        raise StateDictError("Loading a pickled program runs code from the file. Pass allow_pickle=True only for "
                             "files you trust, or save with save(path) (JSON) and load into a new instance.")
    import cloudpickle

    file = os.path.join(path, "program.pkl") if os.path.isdir(path) else path
    with open(file, "rb") as f:
        return cloudpickle.load(f)
