"""``LoRA``: real weights as a parameter — a peft LoRA adapter on the model behind a local LM.

    lora = LoRA(LM("local/embedded"), r=8, alpha=16)
    lora.attach(program.predict)              # predict.lora = lora; predict.lm generates with it
    opt = torch.optim.AdamW(program.parameters(kind="lora"), lr=1e-3)   # == lora.tensors()
    loss = SFTLoss()(traces); loss.backward(); opt.step()

The adapter lives in the shared in-process model (one model, many adapters; see
:mod:`textgrad_like.lm.adapted`). ``tensors()`` are the adapter's trainable torch tensors.
``state()`` is a snapshot (:class:`LoRAState`): a JSON reference (config, sha256) holding a CPU copy of
the weights, so ``best = program.state_dict()`` … ``program.load_state_dict(best)`` restores them bit for
bit however many snapshots were taken. ``Module.save`` writes the weights to
``<json stem>.<parameter name>.safetensors`` beside the JSON (file I/O: :mod:`textgrad_like.nn.lora_io`)
and ``Module.load`` reads and checks them before anything is changed.

Deep copies of a program share their LoRA weights, as they share the loaded model; use
:meth:`LoRA.clone` for an independent copy.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import ConfigurationError, StateDictError
from ..lm.adapted import AdaptedLocalLM, AdapterSwitch, as_local_lm, get_switch
from .lora_io import WEIGHTS_FORMAT, load_weights, save_weights, tensors_digest, weights_file_name
from .module import Module
from .parameter import Parameter

logger = logging.getLogger(__name__)

STATE_FORMAT = WEIGHTS_FORMAT
_names = itertools.count(1)


def _next_default_name() -> str:
    return f"lora_{next(_names)}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "lora"


class LoRAState(dict):  # type: ignore[type-arg]
    """What ``LoRA.state()`` returns: a JSON-able reference (format, adapter, config, sha256) that also
    holds a private CPU copy of the weights in ``.weights`` (not a dict item, so ``json.dumps`` writes the
    reference only). ``load_state_dict`` restores these weights bit for bit however many snapshots exist;
    ``Module.save`` writes them to a ``.safetensors`` file."""

    weights: dict[str, Any] | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> LoRAState:
        import copy

        new = LoRAState(copy.deepcopy(dict(self), memo))
        new.weights = self.weights  # a snapshot is never changed in place: copies share it
        return new

    def __reduce__(self) -> Any:
        return (_restore_state, (dict(self), self.weights))


def _restore_state(items: dict[str, Any], weights: dict[str, Any] | None) -> LoRAState:
    state = LoRAState(items)
    state.weights = weights
    return state


class LoRA(Parameter):
    """A peft LoRA adapter on the in-process model of ``lm`` (``LM("local/...")``).

    Args:
        lm: a local LM (:class:`~textgrad_like.lm.local.LocalLM`, or an adapted view of one).
        r: LoRA rank.
        alpha: LoRA scaling numerator (``lora_alpha``).
        dropout: dropout on the adapter's input while training.
        target_modules: short names of the linear layers that get an adapter.
        name: the adapter's name in the model (default ``lora_<n>``; made unique if taken).
        requires_grad: whether ``tensors()`` receive gradients.
        seed: seed for the adapter's random initialisation (default: torch's global RNG).

    Raises:
        ConfigurationError: ``lm`` is not an in-process model, or has no layer named in ``target_modules``.
    """

    kind = "lora"

    def __init__(self, lm: Any, r: int = 8, alpha: float = 16, dropout: float = 0.0,
                 target_modules: Sequence[str] = ("q_proj", "v_proj"), name: str | None = None,
                 requires_grad: bool = True, seed: int | None = None) -> None:
        base = as_local_lm(lm, "LoRA")
        if int(r) < 1:
            raise ConfigurationError(f"LoRA rank r must be at least 1, got {r}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigurationError(f"LoRA dropout must be in [0, 1), got {dropout}.")
        if isinstance(target_modules, str):
            target_modules = (target_modules,)
        targets = tuple(str(t) for t in target_modules)
        if not targets:
            raise ConfigurationError("LoRA needs at least one target module, e.g. target_modules=('q_proj', 'v_proj').")
        self._tensors: dict[str, Any] = {}
        self._requires_grad = bool(requires_grad)
        super().__init__(value=None, requires_grad=requires_grad, name=None,
                         role_description="LoRA adapter weights")
        self.lm = base
        self.r, self.alpha, self.dropout, self.target_modules = int(r), float(alpha), float(dropout), targets
        self.seed = seed
        self._digest_cache: tuple[tuple[int, ...], str] | None = None
        self.adapter_name = self._attach_new(_safe(name) if name else _next_default_name())

    # -- creation ---------------------------------------------------------------------------------
    def _peft_config(self) -> Any:
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=list(self.target_modules), bias="none")

    @property
    def switch(self) -> AdapterSwitch:
        return get_switch(self.lm.backend)

    def _attach_new(self, wanted: str) -> str:
        switch = self.switch
        adapter = switch.add(self, wanted, self._peft_config(), seed=self.seed)
        self._tensors = switch.parameters_of(adapter)
        if not self._tensors:
            raise ConfigurationError(f"peft added no LoRA weights for target_modules={list(self.target_modules)}; "
                                     "check that these layers are torch.nn.Linear in the model.")
        for tensor in self._tensors.values():
            tensor.requires_grad_(self._requires_grad)
        return adapter

    def config(self) -> dict[str, Any]:
        return {"r": self.r, "alpha": self.alpha, "dropout": self.dropout, "target_modules": list(self.target_modules)}

    # -- torch side ---------------------------------------------------------------------------------
    def tensors(self) -> list[Any]:
        """The adapter's torch parameters (``lora_A``/``lora_B`` weights), in a stable order."""
        return [self._tensors[k] for k in sorted(self._tensors)]

    def named_tensors(self) -> dict[str, Any]:
        """``{portable key: torch parameter}`` (keys without the adapter name)."""
        return dict(self._tensors)

    def num_parameters(self) -> int:
        return sum(int(t.numel()) for t in self._tensors.values())

    @property  # type: ignore[override]
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        self._requires_grad = bool(flag)
        for tensor in getattr(self, "_tensors", {}).values():
            tensor.requires_grad_(self._requires_grad)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the tensors' ``.grad`` (``None``, or zeros in place with ``set_to_none=False``, as torch)."""
        super().zero_grad(set_to_none)
        for tensor in self._tensors.values():
            if set_to_none or tensor.grad is None:
                tensor.grad = None
            else:
                tensor.grad.detach_()
                tensor.grad.zero_()

    # -- value / state ----------------------------------------------------------------------------
    @property
    def value(self) -> dict[str, Any]:
        """The weights as ``{key: tensor}`` (the live tensors; assign a dict of tensors to copy new values in)."""
        return dict(self._tensors)

    @value.setter
    def value(self, new: Any) -> None:
        if new is None and not getattr(self, "_tensors", None):
            return  # Parameter.__init__
        self.copy_from(self.validate(new))

    def validate(self, value: Any) -> dict[str, Any]:
        if isinstance(value, LoRA):
            value = value.value
        if not isinstance(value, dict):
            raise StateDictError(f"A LoRA value is a dict of tensors (or another LoRA); got {type(value).__name__}.")
        missing = sorted(set(self._tensors) - set(value))
        unexpected = sorted(set(value) - set(self._tensors))
        if missing or unexpected:
            raise StateDictError(f"LoRA weights do not fit adapter {self.adapter_name!r}: missing {missing[:4]}, "
                                 f"unexpected {unexpected[:4]}. Use the same r and target_modules as when saved.")
        for key, tensor in value.items():
            if tuple(tensor.shape) != tuple(self._tensors[key].shape):
                raise StateDictError(f"LoRA tensor {key!r} has shape {tuple(tensor.shape)}, expected "
                                     f"{tuple(self._tensors[key].shape)} (same r and target_modules as when saved).")
        return value

    def copy_from(self, tensors: dict[str, Any]) -> None:
        """Copy ``tensors`` (same keys and shapes) into the adapter, under the model lock."""
        import torch

        tensors = self.validate(tensors)
        with self.switch.lock, torch.no_grad():
            for key, target in self._tensors.items():
                target.copy_(tensors[key].to(device=target.device, dtype=target.dtype))

    def cpu_tensors(self) -> dict[str, Any]:
        """Detached CPU copies of the weights (for saving)."""
        with self.switch.lock:
            return {k: t.detach().to("cpu").clone().contiguous() for k, t in self._tensors.items()}

    def _versions(self) -> tuple[int, ...]:
        return tuple(int(self._tensors[k]._version) for k in sorted(self._tensors))

    def digest(self) -> str:
        """sha256 of the current weights (recomputed only when a tensor changed in place)."""
        versions = self._versions()
        cached = self._digest_cache
        if cached is not None and cached[0] == versions:
            return cached[1]
        with self.switch.lock:
            value = tensors_digest(self._tensors)
        self._digest_cache = (versions, value)
        return value

    def fingerprint(self) -> str:
        """Adapter name + weight digest: what the adapted LM adds to its cache key."""
        return f"{self.adapter_name}:{self.digest()[:16]}"

    def state(self) -> LoRAState:
        """A snapshot: a JSON reference to the weights (format, adapter name, config, sha256) holding a CPU
        copy of them, so ``load_state_dict(state_dict())`` restores them exactly (see :class:`LoRAState`)."""
        tensors = self.cpu_tensors()
        state = LoRAState({"format": STATE_FORMAT, "adapter": self.adapter_name, "base_model": self.lm.model,
                           "config": self.config(), "num_parameters": self.num_parameters(),
                           "sha256": tensors_digest(tensors), "file": None})
        state.weights = tensors
        return state

    def parse_state(self, state: Any) -> dict[str, Any] | None:
        """The weights a state refers to (checked against this adapter), or ``None`` when they are the
        current ones. Raises :class:`StateDictError` now — not at the next forward — when the weights
        are not available (a JSON reference without its ``.safetensors`` file)."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise StateDictError(f"LoRA {self.adapter_name!r} expects a state written by LoRA.state() "
                                 f"(format {STATE_FORMAT!r}); got {type(state).__name__}.")
        config = state.get("config") or {}
        mine = self.config()
        diff = {k: (config.get(k), mine[k]) for k in ("r", "target_modules") if config.get(k) != mine[k]}
        if diff:
            raise StateDictError(f"Saved LoRA config does not match adapter {self.adapter_name!r} "
                                 f"(saved, current): {diff}. Create the LoRA with the saved r and target_modules.")
        weights = getattr(state, "weights", None)
        if weights is not None:
            return self.validate(weights)
        digest = state.get("sha256")
        if digest and digest == self.digest():
            return None
        raise StateDictError(f"The state of LoRA {self.adapter_name!r} is a reference to weights (sha256 "
                             f"{str(digest)[:12]}...) that are not in memory and no weights file was read. Load "
                             "a saved program with module.load(path) (it reads the .safetensors file beside the "
                             "JSON), or pass the state_dict() object itself, not a JSON copy of it.")

    def apply_state(self, prepared: dict[str, Any] | None) -> None:
        if prepared is not None:
            self.copy_from(prepared)

    def write_saved_state(self, state: Any, folder: str, stem: str, name: str) -> dict[str, Any]:
        """Write the snapshot's weights to ``<stem>.<name>.safetensors`` in ``folder``; returns the JSON reference."""
        weights = getattr(state, "weights", None)
        if weights is None:
            raise StateDictError(f"LoRA {name!r}: no weights to save in this state.")
        file = weights_file_name(stem, name)
        digest = save_weights(os.path.join(folder, file), weights,
                              {"r": str(self.r), "alpha": str(self.alpha), "target_modules": ",".join(self.target_modules)})
        logger.info("Saved LoRA %s (%d parameters) to %s", name, self.num_parameters(), file)
        return {**state, "file": file, "sha256": digest}

    def read_saved_state(self, saved: Any, folder: str) -> Any:
        """Read the weights file a saved reference names (from ``folder``), checking its sha256."""
        if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
            return saved  # parse_state reports it
        file = saved.get("file")
        if not file:
            if saved.get("sha256") == self.digest():
                return saved
            raise StateDictError("The saved state names no .safetensors file; it was not written by Module.save. "
                                 "Save the program again.")
        if not isinstance(file, str) or os.path.basename(file) != file:
            raise StateDictError(f"The saved weights file name {file!r} must be a file name beside the JSON.")
        state = LoRAState(saved)
        state.weights = load_weights(os.path.join(folder, file), expected_sha256=saved.get("sha256"))
        return state

    def save_file(self, path: str | os.PathLike[str]) -> str:
        """Write the current weights to a ``.safetensors`` file; returns their sha256."""
        return save_weights(path, self.cpu_tensors(), {"r": str(self.r), "alpha": str(self.alpha),
                                                       "target_modules": ",".join(self.target_modules)})

    def load_file(self, path: str | os.PathLike[str], expected_sha256: str | None = None) -> None:
        """Read weights written by :meth:`save_file`; with ``expected_sha256`` they must match bit for bit."""
        self.copy_from(load_weights(path, expected_sha256))

    # -- using it ---------------------------------------------------------------------------------
    def adapted_lm(self) -> AdaptedLocalLM:
        """An LM view that generates with this adapter active."""
        return AdaptedLocalLM(self.lm, self)

    def attach(self, predictor: Any) -> Any:
        """Register this LoRA on ``predictor`` (``predictor.lora``) and swap its LM for the adapted view
        (keeping the predictor's own LM settings when it has a local LM). Returns the predictor."""
        if not isinstance(predictor, Module):
            raise ConfigurationError(f"LoRA.attach needs a predictor module, got {type(predictor).__name__}.")
        current = getattr(predictor, "lm", None)
        base = current.base_lm if isinstance(current, AdaptedLocalLM) else current
        view = AdaptedLocalLM(base if base is not None else self.lm, self)
        if view.backend is not self.lm.backend:
            raise ConfigurationError("This predictor's LM uses other weights than the LoRA's base model; create the "
                                     "LoRA on the predictor's LM.")
        predictor.lora = self
        predictor.lm = view
        return predictor

    def clone(self, name: str | None = None) -> LoRA:
        """An independent adapter on the same base model with a copy of these weights."""
        new = LoRA(self.lm, r=self.r, alpha=self.alpha, dropout=self.dropout, target_modules=self.target_modules,
                   name=name or f"{self.adapter_name}_copy", requires_grad=self.requires_grad)
        new.copy_from(self.cpu_tensors())
        return new

    def __deepcopy__(self, memo: dict[int, Any]) -> LoRA:
        return self  # weights are shared by copies of a program, like the loaded model (use clone())

    def __getstate__(self) -> dict[str, Any]:
        data = super().__getstate__()
        data["_tensors"] = None
        data["_weights"] = self.cpu_tensors()
        data["_digest_cache"] = None
        return data

    def __setstate__(self, data: dict[str, Any]) -> None:
        weights = data.pop("_weights", None)
        super().__setstate__(data)
        self._tensors = {}
        self.adapter_name = self._attach_new(self.adapter_name)
        if weights:
            self.copy_from(weights)

    def __repr__(self) -> str:
        flag = "" if self.requires_grad else ", requires_grad=False"
        return (f"LoRA(adapter={self.adapter_name!r}, r={self.r}, alpha={self.alpha:g}, "
                f"targets={list(self.target_modules)}, params={self.num_parameters()}{flag})")


def lora_of(predictor: Any) -> LoRA | None:
    """The LoRA a predictor generates with: ``predictor.lora``, or the one behind its adapted LM."""
    own = getattr(predictor, "lora", None)
    if isinstance(own, LoRA):
        return own
    lm = getattr(predictor, "lm", None)
    if isinstance(lm, AdaptedLocalLM) and isinstance(lm.lora, LoRA):
        return lm.lora
    return None


def reattach_loras(program: Module, previous_lms: Iterable[Any] | None = None) -> int:
    """Give every predictor that holds a ``lora`` but lost its adapted LM (e.g. an optimizer reset its
    ``lm``) the adapted view again. ``previous_lms`` (one per predictor, in order) restores plain LMs
    that were reset. Returns how many predictors were fixed."""
    fixed = 0
    before = list(previous_lms) if previous_lms is not None else None
    for i, predictor in enumerate(program.predictors()):
        lora = getattr(predictor, "lora", None)
        lm = getattr(predictor, "lm", None)
        if isinstance(lora, LoRA):
            if not (isinstance(lm, AdaptedLocalLM) and lm.lora is lora):
                lora.attach(predictor)
                fixed += 1
        elif lm is None and before is not None and i < len(before) and before[i] is not None:
            predictor.lm = before[i]
            fixed += 1
    return fixed
