"""``Module``: the base class of every program, with torch's parameter and submodule registries.

Assigning a :class:`Parameter` or a :class:`Module` to an attribute stores it in ``_parameters`` /
``_modules``, as ``torch.nn.Module`` does — also in classes whose ``__init__`` never calls
``super().__init__()``, as DSPy programs are often written. Modules inside plain lists, tuples and
dicts are children too (DSPy's style); :mod:`textgrad_like.nn.containers` has torch's containers.
Saving and loading (formats, DSPy's files, what a file may change) is in :mod:`textgrad_like.nn.saving`.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
import inspect
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple, ParamSpec, Protocol, TypeVar

from ..callbacks import with_callbacks
from ..errors import ConfigurationError, StateDictError
from ..lm.secrets import strip_mapping
from ..lm.usage import track_usage
from ..primitives import Prediction
from ..settings import settings
from . import saving
from .graph import Graph, _current_graph, _forward_scope, is_grad_enabled
from .parameter import Parameter
from .saving import STATE_FORMAT

logger = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R_co = TypeVar("_R_co", covariant=True)


class _HasForward(Protocol[_P, _R_co]):
    """For type checkers: ``module(...)`` takes ``forward``'s arguments and returns what it returns."""

    def forward(self, *args: _P.args, **kwargs: _P.kwargs) -> _R_co: ...


# attributes set by Module itself that never hold parameters or children
_PLAIN_ATTRIBUTES = frozenset({"callbacks", "training", "history"})

# the module whose ``__call__``/``acall`` is running ``forward`` in this thread / task
_RUNNING: contextvars.ContextVar[Module | None] = contextvars.ContextVar("textgrad_like_running_module",
                                                                        default=None)
_CHECKED_MARK = "__textgrad_like_forward_checked__"
# keyword arguments of a predictor call that configure it rather than being inputs (left out of the trace)
_CALL_OPTIONS = frozenset({"signature", "demos", "config", "lm"})


def _warn_if_called_directly(module: Module) -> None:
    if _RUNNING.get() is not module and type(module).__call__ is Module.__call__:
        logger.warning("%s.forward(...) was called directly; calling forward directly is discouraged: "
                       "call the module itself, %s(...), so callbacks, usage tracking, history and the "
                       "recorded graph see the call.", type(module).__name__, type(module).__name__)


def _checked_forward(forward: Any) -> Any:
    """Wrap a subclass's ``forward`` so a direct ``module.forward(...)`` call logs a warning."""
    # The wrapper only names module-level functions: cloudpickle copies it by value with a class
    # defined in ``__main__`` (``save_program=True``), and a ContextVar it named would not pickle.
    @functools.wraps(forward)
    def checked(self: Module, *args: Any, **kwargs: Any) -> Any:
        _warn_if_called_directly(self)
        return forward(self, *args, **kwargs)

    setattr(checked, _CHECKED_MARK, True)
    return checked


class Module:
    """Subclass it and write ``forward``; call the instance to run it."""

    _callback_kind = "module"
    training: bool = True
    _compiled: bool = False
    callbacks: list[Any] = []

    def __init__(self, callbacks: list[Any] | None = None) -> None:
        self.callbacks = list(callbacks or [])
        self.history: list[dict[str, Any]] = []  # LM calls made inside this module (DSPy's per-module history)
        self._compiled = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        forward = cls.__dict__.get("forward")
        if inspect.isfunction(forward) and not getattr(forward, _CHECKED_MARK, False):
            cls.forward = _checked_forward(forward)  # type: ignore[method-assign]

    # --- registry ------------------------------------------------------------------------------
    # As in torch, ``_parameters`` and ``_modules`` are where parameter and submodule attributes live
    # (``self.x`` reads them through ``__getattr__``); they are created on first assignment, so classes
    # whose ``__init__`` skips ``super().__init__()`` work too. Names starting with ``_`` stay plain
    # attributes (a private helper module is not a child). Modules inside plain lists, tuples and dicts
    # (DSPy's style) are children too, named ``name[0]`` / ``name['key']``.
    def _registry(self, which: str) -> dict[str, Any]:
        reg = self.__dict__.get(which)
        if reg is None:
            reg = {}
            object.__setattr__(self, which, reg)
        return reg

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_") or name in _PLAIN_ATTRIBUTES or isinstance(getattr(type(self), name, None), property):
            object.__setattr__(self, name, value)
            return
        params, modules = self._registry("_parameters"), self._registry("_modules")
        current = params.get(name)
        if current is not None and value is not None and not isinstance(value, Parameter):
            current.assign_from_attribute(value)  # Demos takes a list; text parameters raise TypeError
            return
        params.pop(name, None)
        modules.pop(name, None)
        if isinstance(value, (Parameter, Module)):
            (params if isinstance(value, Parameter) else modules)[name] = value
            if hasattr(type(self), name):  # a class attribute of that name would hide the registry entry
                object.__setattr__(self, name, value)
            else:
                self.__dict__.pop(name, None)
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:  # only called when normal lookup fails
        d = self.__dict__
        for which in ("_parameters", "_modules"):
            reg = d.get(which)
            if reg is not None and name in reg:
                return reg[name]
        if name == "history":  # a subclass whose __init__ skips super().__init__()
            return d.setdefault("history", [])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for which in ("_parameters", "_modules"):
            reg = self.__dict__.get(which)
            if reg is not None and name in reg:
                del reg[name]
                self.__dict__.pop(name, None)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._registry("_parameters"), *self._registry("_modules")})

    def __setstate__(self, state: dict[str, Any]) -> None:
        # programs pickled before the registries were the store kept parameters in __dict__ as well
        params, modules = state.get("_parameters") or {}, state.get("_modules") or {}
        self.__dict__.update({k: v for k, v in state.items()
                              if (k not in params and k not in modules) or hasattr(type(self), k)})

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter under ``name`` (``None`` removes it), as ``torch.nn.Module.register_parameter``."""
        self._check_new_name(name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter needs a textgrad_like.nn.Parameter (or None), got "
                            f"{type(param).__name__}; wrap text in Variable(...)/Instruction(...).")
        if param is None:
            self._registry("_parameters").pop(name, None)
            return
        setattr(self, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a child module under ``name`` (``None`` removes it), as ``torch.nn.Module.add_module``."""
        self._check_new_name(name, "module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module needs a textgrad_like.nn.Module (or None), got {type(module).__name__}.")
        if module is None:
            self._registry("_modules").pop(name, None)
            return
        self._registry("_parameters").pop(name, None)
        self.__dict__.pop(name, None)
        self._registry("_modules")[name] = module

    def register_module(self, name: str, module: Module | None) -> None:
        """Alias of :meth:`add_module` (as in torch)."""
        self.add_module(name, module)

    def _check_new_name(self, name: str, what: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"The {what} name must be a string, got {type(name).__name__}.")
        if not name or "." in name:
            raise KeyError(f"The {what} name {name!r} must be non-empty and contain no '.'.")
        if name.startswith("_"):
            raise KeyError(f"The {what} name {name!r} must not start with '_' (such attributes are never registered).")
        known = name in self._registry("_parameters") or name in self._registry("_modules")
        if not known and (name in self.__dict__ or hasattr(type(self), name)):
            raise KeyError(f"Attribute {name!r} already exists on {type(self).__name__} and is not a {what}.")

    def _own_parameters(self) -> Iterator[tuple[str, Parameter]]:
        yield from list(self._registry("_parameters").items())

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Registered child modules (registration order), then modules inside plain lists, tuples and dicts."""
        yield from list(self._registry("_modules").items())
        for name, value in list(self.__dict__.items()):
            if name.startswith("_") or name in _PLAIN_ATTRIBUTES:
                continue
            if isinstance(value, (list, tuple)):
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

    def named_modules(self, prefix: str = "", memo: set[int] | None = None,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        if remove_duplicate:
            memo.add(id(self))
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name, memo, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def apply(self, fn: Any) -> Module:
        """Call ``fn`` on every child module (recursively), then on this one; returns ``self`` (as torch)."""
        for child in list(self.children()):
            child.apply(fn)
        fn(self)
        return self

    def get_submodule(self, target: str) -> Module:
        """The submodule at a dotted path from :meth:`named_modules` (``"layers.0"``, ``"drafts[1]"``);
        ``""`` is this module. Raises ``AttributeError`` naming the missing step, as torch."""
        if target == "":
            return self
        obj: Any = self
        walked = ""
        for part in _path_parts(target):
            try:
                obj = _step(obj, part)
            except (AttributeError, KeyError, IndexError, ValueError, TypeError):
                raise AttributeError(f"{type(self).__name__} has no submodule {target!r}: "
                                     f"{walked or 'the module'} has no {part!r}.") from None
            walked = f"{walked}.{part}" if walked and not part.startswith("[") else walked + part
            if not isinstance(obj, Module):
                raise AttributeError(f"{walked!r} in {target!r} is a {type(obj).__name__}, not a Module.")
        return obj

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at a dotted name from :meth:`named_parameters` (``"layers.0.instruction"``)."""
        module_path, _, name = target.rpartition(".")
        module = self.get_submodule(module_path)
        param = module._registry("_parameters").get(name)
        if param is None:
            raise AttributeError(f"{type(module).__name__} at {module_path or 'the root'!r} has no parameter {name!r}.")
        return param

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         kind: str | type | None = None) -> Iterator[tuple[str, Parameter]]:
        """``(dotted name, parameter)`` pairs; ``kind="instruction" | "demos" | "lora" | "variable"``
        or a Parameter class filters them. A LoRA is yielded as its :class:`~textgrad_like.nn.LoRA` parameter."""
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
        """The parameters, LoRA adapters included as :class:`~textgrad_like.nn.LoRA` parameters (a text
        optimizer leaves them to a torch optimizer). ``kind="lora"`` yields the LoRA *torch tensors*
        instead, ready for ``torch.optim`` (the same as ``lora.tensors()`` for each adapter)."""
        for _, param in self.named_parameters(recurse=recurse, kind=kind):
            if kind == "lora":
                yield from param.tensors()
            else:
                yield param

    # --- DSPy-style views ------------------------------------------------------------------------
    def named_predictors(self) -> list[tuple[str, Module]]:
        out = []
        for name, module in self.named_modules():
            if getattr(module, "_is_predictor", False):
                out.append((name or "self", module))
        return out

    def predictors(self) -> list[Module]:
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

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every parameter (torch's ``set_to_none`` semantics)."""
        for _, param in self.named_parameters():
            param.zero_grad(set_to_none=set_to_none)

    # --- copies ---------------------------------------------------------------------------------
    def __copy__(self) -> Module:
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__)  # shares the registries, as a shallow copy of a torch module does
        return new

    def __getstate__(self) -> dict[str, Any]:
        """Pickle state (``save_program=True``, ``.pkl``): per-module LM ``config`` loses its credentials."""
        state = dict(self.__dict__)
        if isinstance(state.get("config"), Mapping):
            state["config"] = strip_mapping(state["config"])
        return state

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
            # as DSPy: an attribute that cannot be deep-copied (a lock, a client) is copied shallowly,
            # or shared when even that fails
            try:
                copied = copy.deepcopy(value, memo)
            except Exception:
                try:
                    copied = copy.copy(value)
                except Exception:
                    copied = value
            object.__setattr__(new, key, copied)
        return new

    # --- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{dotted parameter name: snapshot}``: text and demos as JSON values, a LoRA as a reference
        that also holds a copy of its weights (so ``load_state_dict`` restores them bit for bit)."""
        return {name: copy.deepcopy(param.state()) for name, param in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Load a :meth:`state_dict`. All or nothing: every value is checked before any is set.

        Returns torch's ``(missing_keys, unexpected_keys)`` named tuple; with ``strict=True`` (default)
        either list being non-empty is a :class:`StateDictError` (with ``.missing_keys`` and
        ``.unexpected_keys``). With ``strict=False`` the matching keys are loaded.
        """
        self._plan_state_dict(state, strict)()
        own = dict(self.named_parameters())
        return IncompatibleKeys([k for k in own if k not in state], [k for k in state if k not in own])

    def _plan_state_dict(self, state: Any, strict: bool, folder: str | None = None,
                         params: dict[str, Parameter] | None = None) -> Any:
        if not isinstance(state, Mapping):
            raise StateDictError(f"load_state_dict needs a dict, got {type(state).__name__}.")
        own = dict(self.named_parameters()) if params is None else params
        if strict:
            _check_keys("The state dict", own, state, "Pass strict=False to load the keys that match.")
        prepared = []
        for name, value in state.items():
            if name not in own:
                continue
            param = own[name]
            try:
                if folder is not None:
                    value = param.read_saved_state(value, folder)
                prepared.append((param, param.parse_state(value)))
            except StateDictError as exc:
                raise StateDictError(f"Cannot load {name!r}: {exc}") from None
            except Exception as exc:
                raise StateDictError(f"Cannot load {name!r}: {type(exc).__name__}: {exc}") from None

        def apply() -> None:
            for param, value in prepared:
                param.apply_state(value)
        return apply

    def dump_state(self) -> dict[str, Any]:
        """DSPy-style state: ``{predictor name: {"demos", "signature", "lm", ...}}``."""
        return {name: predictor.dump_state() for name, predictor in self.named_predictors()}

    def prepare_load_state(self, state: Any, *, allow_unsafe_lm_state: bool = False,
                           strict: bool = True) -> Any:
        """Check ``state`` (as :meth:`dump_state` or DSPy's ``program.json`` holds it) against this
        program and return a function that installs it; nothing changes until that function runs."""
        states = saving.predictor_states(state, getattr(self, "_is_predictor", False))
        predictors = dict(self.named_predictors())
        if strict:
            _check_keys("The saved state", predictors, states,
                        "It was saved from another program (predictor names differ).")
        steps = []
        for name, predictor in predictors.items():  # a predictor (Predict) overrides this method itself
            if name in states:
                steps.append(predictor.prepare_load_state(states[name], allow_unsafe_lm_state=allow_unsafe_lm_state,
                                                          strict=strict))

        def apply() -> None:
            for step in steps:
                step()
        return apply

    def load_state(self, state: Any, *, allow_unsafe_lm_state: bool = False, strict: bool = True) -> Module:
        """Load what :meth:`dump_state` returned (or DSPy's saved ``program.json`` dict). All or nothing;
        saved LM endpoints are ignored unless ``allow_unsafe_lm_state=True`` (see :mod:`textgrad_like.nn.saving`)."""
        self.prepare_load_state(state, allow_unsafe_lm_state=allow_unsafe_lm_state, strict=strict)()
        return self

    def save(self, path: str | os.PathLike[str], save_program: bool = False,
             modules_to_serialize: list[Any] | None = None) -> None:
        """Save the program's state to ``path``: ``.json`` or ``.pkl`` (the same data pickled, for values
        JSON cannot hold), in DSPy's layout — ``{predictor name: {"demos", "signature", "lm", ...},
        "metadata": {...}}`` (a predictor saved alone: its own state at the top level), so DSPy can read
        it too — plus ``"state_dict"`` for parameters outside predictors (Variables, LoRA references; LoRA
        weights go to ``<stem>.<name>.safetensors`` files beside it). ``save_program=True`` pickles the
        whole program into the directory ``path`` (``program.pkl`` + ``metadata.json``) with cloudpickle —
        ``modules_to_serialize`` are pickled by value. No credential is ever written."""
        path = os.fspath(path)
        if save_program:
            self._save_program(path, modules_to_serialize)
            return
        saving.check_state_path(path)
        folder, stem = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
        data = self.dump_state()
        extra = {name: param.write_saved_state(param.state(), folder, stem, name)
                 for name, param in self._parameters_outside_predictors().items()}
        if extra:
            data["state_dict"] = extra
        data["metadata"] = {"format": STATE_FORMAT, "dependency_versions": saving.dependency_versions(),
                            "versions": saving.library_versions(), "class": type(self).__qualname__}
        saving.write_state_file(path, data)

    def _parameters_outside_predictors(self) -> dict[str, Parameter]:
        """The parameters a predictor's own state (instruction, demos) does not hold."""
        inside = {id(param) for _, predictor in self.named_predictors()
                  for param in predictor._registry("_parameters").values() if param.kind in ("instruction", "demos")}
        return {name: param for name, param in self.named_parameters() if id(param) not in inside}

    def _save_program(self, path: str, modules_to_serialize: list[Any] | None) -> None:
        import cloudpickle

        if path.endswith((".json", ".pkl")):
            raise StateDictError(f"With save_program=True the path must be a directory (the program is written to "
                                 f"<path>/program.pkl), got the file name {path!r}.")
        if os.path.exists(path) and not os.path.isdir(path):
            raise StateDictError(f"{path!r} exists and is not a directory.")
        os.makedirs(path, exist_ok=True)
        registered = []
        try:
            for mod in modules_to_serialize or []:
                cloudpickle.register_pickle_by_value(mod)
                registered.append(mod)
            with open(os.path.join(path, "program.pkl"), "wb") as f:
                cloudpickle.dump(self, f)
        finally:
            for mod in registered:
                cloudpickle.unregister_pickle_by_value(mod)
        with open(os.path.join(path, "metadata.json"), "w", encoding="utf-8") as f:
            json.dump({"format": STATE_FORMAT, "dependency_versions": saving.dependency_versions(),
                       "versions": saving.library_versions()}, f, indent=2)

    def load(self, path: str | os.PathLike[str], allow_pickle: bool = False, allow_unsafe_lm_state: bool = False,
             strict: bool = True) -> Module:
        """Load a state saved by :meth:`save` (``.json``; ``.pkl`` needs ``allow_pickle=True``), by DSPy's
        ``program.save("program.json")``, or a ``dump_state()`` dict written as JSON.

        All or nothing: a file from another program (different parameter or predictor names, or
        signature fields) is a :class:`StateDictError` naming the mismatch, and nothing is changed when
        any part fails (LoRA weights files are read and checked first). Saved LM settings are applied
        without credentials, and without endpoints (``api_base``, ``base_url``, ``model_list``) unless
        ``allow_unsafe_lm_state=True``.
        """
        path = os.fspath(path)
        data = saving.read_state_file(path, allow_pickle)
        opts = {"allow_unsafe_lm_state": allow_unsafe_lm_state, "strict": strict}
        folder = os.path.dirname(os.path.abspath(path))
        if saving.is_legacy_format(data):
            steps = self._plan_legacy_file(data, path, folder, **opts)
        else:
            ours = saving.is_own_format(data)
            extra = data.get("state_dict") if ours else None
            if extra is not None and not isinstance(extra, dict):
                raise StateDictError(f"{path}: 'state_dict' must be a JSON object; the file is damaged.")
            body = {k: v for k, v in data.items() if not (ours and k == "state_dict")} if isinstance(data, dict) \
                else data
            steps = [self.prepare_load_state(body, **opts)]
            if ours:
                steps.append(self._plan_state_dict(extra or {}, strict, folder=folder,
                                                   params=self._parameters_outside_predictors()))
        for step in steps:
            step()
        return self

    def _plan_legacy_file(self, data: dict[str, Any], path: str, folder: str, allow_unsafe_lm_state: bool,
                          strict: bool) -> list[Any]:
        """Files written before the DSPy layout: ``{"format": ".../1", "state_dict", "signatures", "lms"}``."""
        for key in ("signatures", "state_dict", "lms"):
            if not isinstance(data.get(key) or {}, dict):
                raise StateDictError(f"{path}: {key!r} must be a JSON object; the file is damaged or not from save().")
        apply_parameters = self._plan_state_dict(data.get("state_dict") or {}, strict, folder=folder)
        predictors = dict(self.named_predictors())
        signatures, lms = data.get("signatures") or {}, data.get("lms") or {}
        unknown = sorted((set(signatures) | set(lms)) - set(predictors))
        if strict and unknown:
            raise saving.mismatch_error(path, [], unknown, "It was saved from another program.")
        steps = []
        for name, predictor in predictors.items():
            if name not in signatures and name not in lms:
                continue
            state = {"lm": lms.get(name)}
            if signatures.get(name) is not None:
                state["signature"] = signatures[name]
            steps.append(predictor.prepare_load_state(state, allow_unsafe_lm_state=allow_unsafe_lm_state,
                                                      strict=strict))
        steps.append(apply_parameters)  # after the signatures: the state dict holds the instructions
        return steps

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

    # ``module(...)`` and ``await module.acall(...)`` share one core, :class:`_ModuleCall` (what runs
    # around ``forward``); only the call itself differs: ``forward(...)`` or ``await aforward(...)``.
    # (``self: _HasForward[...]`` only tells type checkers that a call has ``forward``'s signature.)
    @with_callbacks
    def __call__(self: _HasForward[_P, _R_co], *args: _P.args, **kwargs: _P.kwargs) -> _R_co:
        module: Any = self
        with _ModuleCall(module, kwargs) as call:
            return call.done(module.forward(*args, **kwargs))  # type: ignore[no-any-return]

    @with_callbacks
    async def acall(self: _HasForward[_P, _R_co], *args: _P.args, **kwargs: _P.kwargs) -> _R_co:
        module: Any = self
        with _ModuleCall(module, kwargs) as call:
            return call.done(await module.aforward(*args, **kwargs))  # type: ignore[no-any-return]

    def batch(self, examples: list[Any], num_threads: int | None = None, max_errors: int | None = None,
              return_failed_examples: bool = False, provide_traceback: bool | None = None,
              disable_progress_bar: bool = False, timeout: float | None = 120, straggler_limit: int = 3) -> Any:
        """Run the module on many examples in parallel (each example's inputs as keyword arguments), as
        DSPy's ``batch``: a failed example gives ``None``; with ``return_failed_examples=True`` the result is
        ``(results, failed_inputs, exceptions)`` (``failed_inputs`` are ``example.inputs()``). ``timeout``/
        ``straggler_limit``: straggler resubmission (see :class:`~textgrad_like.parallel.ParallelExecutor`)."""
        from ..parallel import ParallelExecutor

        executor = ParallelExecutor(num_threads=num_threads, max_errors=max_errors,
                                    disable_progress_bar=disable_progress_bar, provide_traceback=provide_traceback,
                                    description="Batch", timeout=timeout, straggler_limit=straggler_limit)
        inputs = [ex.inputs() for ex in examples]
        results = executor.run(lambda kwargs: self(**kwargs), inputs)
        if return_failed_examples:
            failed = [inputs[i] for i in executor.failed_indices]
            return results, failed, [executor.errors[i].exception for i in executor.failed_indices]
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


class _ModuleCall:
    """Everything a module call does around ``forward``, for the sync and the async call alike.

    On entry: the module is pushed on ``settings.caller_modules`` (LM calls inside add their history
    entry to each caller's ``history``), usage tracking starts when ``track_usage`` is on, and a new
    graph is recorded when this is the outermost call in training mode. :meth:`done` takes the result:
    a predictor's call joins ``settings.trace`` (capped at ``max_trace_size``; ``trace=None`` records
    nothing), the graph's nodes are named and the graph and the LM usage attached to a ``Prediction``.
    """

    def __init__(self, module: Module, kwargs: dict[str, Any]) -> None:
        self.module, self.kwargs = module, kwargs
        self._stack = contextlib.ExitStack()
        self._tracker: Any = None
        self._graph: Graph | None = None

    def __enter__(self) -> _ModuleCall:
        module = self.module
        with contextlib.ExitStack() as stack:  # undone at once if a step fails here
            callers = settings.get("caller_modules") or []
            stack.enter_context(settings.context(caller_modules=[*callers, module]))
            if settings.get("track_usage") and settings.get("usage_tracker") is None:
                self._tracker = stack.enter_context(track_usage())
            if module._needs_graph():
                self._graph = Graph(root=module)
                stack.enter_context(_forward_scope(self._graph))
            stack.callback(_RUNNING.reset, _RUNNING.set(module))
            self._stack = stack.pop_all()
        return self

    def done(self, result: Any) -> Any:
        """Record the result of ``forward`` (trace, graph, usage) and return it."""
        if getattr(self.module, "_is_predictor", False):
            trace = settings.get("trace")
            if trace is not None:
                limit = settings.get("max_trace_size")
                if limit is not None and len(trace) >= limit > 0:
                    del trace[:len(trace) - limit + 1]
                trace.append((self.module, {k: v for k, v in self.kwargs.items() if k not in _CALL_OPTIONS},
                               result))
        if self._graph is not None:
            self._graph.name_nodes()
            if isinstance(result, Prediction):
                object.__setattr__(result, "_graph", self._graph)
        if self._tracker is not None and isinstance(result, Prediction):
            result.set_lm_usage(self._tracker.totals())
        return result

    def __exit__(self, *exc: Any) -> None:
        self._stack.__exit__(*exc)


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict`` returns, as torch's ``_IncompatibleKeys``."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _check_keys(what: str, expected: Mapping[str, Any], given: Mapping[str, Any], hint: str) -> None:
    """Raise the mismatch :class:`StateDictError` when ``given`` lacks a key of ``expected`` or has others."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    if missing or unexpected:
        raise saving.mismatch_error(what, missing, unexpected, hint)


def _path_parts(path: str) -> list[str]:
    """``"a.b[0]['k']"`` → ``["a", "b", "[0]", "['k']"]`` (the names :meth:`Module.named_modules` gives)."""
    return re.findall(r"[^.\[\]]+|\[[^\]]+\]", path)


def _set_by_path(root: Module, path: str, value: Any) -> None:
    if path == "self":
        raise ConfigurationError("map_named_predictors cannot replace the root module itself.")
    parts = _path_parts(path)
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
        raise StateDictError("Loading with pickle is not allowed unless you pass allow_pickle=True: unpickling runs "
                             "code from the file, so do it only for files you trust (or save the state as JSON with "
                             "save(path) and load it into a new instance).")
    import cloudpickle

    file = os.path.join(path, "program.pkl") if os.path.isdir(path) else path
    try:
        with open(file, "rb") as f:
            return cloudpickle.load(f)
    except FileNotFoundError:
        raise StateDictError(f"No saved program at {file} (save one with module.save(dir, save_program=True)).") from None
