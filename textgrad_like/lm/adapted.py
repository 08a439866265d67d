"""Several LoRA adapters on one shared in-process model, and an LM view that generates with one of them.

The weights of a local model are loaded once per process (:func:`~textgrad_like.lm.local_backend.load_weights`)
and shared by every :class:`~textgrad_like.lm.local.LocalLM` that names them. LoRA adapters (see
:class:`textgrad_like.nn.lora.LoRA`) are injected into that shared model with peft, each under its own
adapter name. An :class:`AdapterSwitch` per loaded model makes sure they never mix:

* every generation request carries the adapter it generates with (``GenerationRow.adapter``, set
  from the LM's ``adapter_name``);
* the decode engine runs rows of different adapters in separate forward passes, each with exactly
  that adapter active (all adapters disabled for the plain base model), under the model's lock;
* adding or removing adapters, switching between them and training hold the same lock.

:class:`AdaptedLocalLM` is that view: ``AdaptedLocalLM(LM("local/embedded"), lora)`` behaves like the
base LM (same settings, cache, history, usage) but generates with ``lora`` active. Its cache key
includes a digest of the adapter's weights, so answers cached before training are not reused after.

torch and peft are imported inside functions only.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

from ..errors import ConfigurationError
from .base import LMResponse
from .local import LocalLM
from .local_backend import LocalBackend

logger = logging.getLogger(__name__)

_SWITCHES_LOCK = threading.Lock()


class AdapterSwitch:
    """Owns the peft adapters injected into one backend's model and switches between them.

    Use :func:`get_switch` to obtain the switch of a backend's model; it registers itself as the
    model's adapter activator, which the decode engine calls before each forward pass.
    """

    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend
        self.loaded = backend.loaded
        self.lock = self.loaded.lock  # the model's lock: forward passes hold it too
        self._owners: dict[str, weakref.ref[Any]] = {}
        self._to_release: list[str] = []
        self._layers: list[Any] = []
        self._current: str | None | bool = False  # False: unknown (nothing switched yet)
        self.loaded.activate = self.activate

    # -- adapters ---------------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        return self.backend.model

    def adapter_names(self) -> list[str]:
        return sorted(self._owners)

    def add(self, owner: Any, adapter_name: str, config: Any, seed: int | None = None) -> str:
        """Inject a new LoRA adapter (peft ``config``) into the model; returns the adapter name used
        (``adapter_name``, with a suffix when another live adapter already has it)."""
        import torch
        from peft import inject_adapter_in_model
        from peft.tuners.tuners_utils import cast_adapter_dtype

        with self.lock:
            self._release_pending()
            name = adapter_name
            suffix = 1
            while name in self._owners or name in self._existing_names():
                suffix += 1
                name = f"{adapter_name}_{suffix}"
            rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
            with rng:
                if seed is not None:
                    torch.manual_seed(int(seed))
                try:
                    with warnings.catch_warnings():  # several adapters in one model is the point here
                        warnings.filterwarnings("ignore", message=".*multiple adapters.*")
                        inject_adapter_in_model(config, self.model, adapter_name=name)
                    # bf16/fp16 models: keep the adapter's own weights in float32, as peft's get_peft_model does
                    cast_adapter_dtype(self.model, adapter_name=name, autocast_adapter_dtype=True)
                except ValueError as exc:
                    targets = sorted(config.target_modules) if config.target_modules else []
                    raise ConfigurationError(
                        f"Cannot add a LoRA adapter with target_modules={targets} to {self.backend.source.path!r}: "
                        f"{str(exc).rstrip('.')}. Pick target_modules among this model's linear layers: "
                        f"{linear_module_names(self.model)}.") from None
            self._refresh_layers()
            self.loaded.adapter_generation += 1  # decoders that cached adapter matrices look again
            self._owners[name] = weakref.ref(owner)
            weakref.finalize(owner, self._schedule_release, name)
            self._current = False
            self.activate(None)
            return name

    def _existing_names(self) -> set[str]:
        names: set[str] = set()
        for layer in self._layers:
            names.update(getattr(layer, "lora_A", {}).keys())
        return names

    def _schedule_release(self, name: str) -> None:
        # Runs from the garbage collector, perhaps in another thread: defer the work to the next locked call.
        self._to_release.append(name)

    def _release_pending(self) -> None:
        while self._to_release:
            name = self._to_release.pop()
            owner = self._owners.get(name)
            if owner is not None and owner() is not None:
                continue  # the name was reused by a live adapter
            self._owners.pop(name, None)
            for layer in self._layers:
                if name in getattr(layer, "lora_A", {}):
                    with contextlib.suppress(Exception), warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        layer.delete_adapter(name)
            self._current = False
            self.loaded.adapter_generation += 1
            logger.debug("Released LoRA adapter %r", name)

    def parameters_of(self, adapter_name: str) -> dict[str, Any]:
        """``{portable key: torch parameter}`` of one adapter (the adapter name removed from the keys)."""
        marker = f".{adapter_name}."
        out: dict[str, Any] = {}
        for key, param in self.model.named_parameters():
            if marker in key and (".lora_A." in key or ".lora_B." in key):
                out[key.replace(marker, ".")] = param
        return out

    def _refresh_layers(self) -> None:
        from peft.tuners.tuners_utils import BaseTunerLayer

        self._layers = [m for m in self.model.modules() if isinstance(m, BaseTunerLayer)]

    def activate(self, adapter_name: str | None) -> None:
        """Make ``adapter_name`` the only active adapter (``None``: run the plain base model). Call it
        with :attr:`lock` held."""
        self._release_pending()
        if not self._layers or adapter_name == self._current:
            return
        if adapter_name is not None and adapter_name not in self._owners:
            raise ConfigurationError(f"LoRA adapter {adapter_name!r} is not on this model (it was released or "
                                     "never added). Create the LoRA again or load it from its saved file.")
        for layer in self._layers:
            if adapter_name is None:
                layer.enable_adapters(False)
            else:
                layer.set_adapter(adapter_name)
                layer._disable_adapters = False
        self._current = adapter_name
        self._restore_requires_grad()

    def _restore_requires_grad(self) -> None:
        # peft ties requires_grad to which adapter is active; ours follows each LoRA's own flag instead.
        for ref in list(self._owners.values()):
            owner = ref()
            if owner is None:
                continue
            flag = bool(getattr(owner, "requires_grad", True))
            for tensor in owner.tensors():
                if tensor.requires_grad != flag:
                    tensor.requires_grad_(flag)

    @contextlib.contextmanager
    def using(self, adapter_name: str | None, train: bool = False) -> Iterator[Any]:
        """Hold the lock with ``adapter_name`` active (the model in train mode if ``train``); yields the model."""
        with self.lock:
            self.activate(adapter_name)
            model = self.model
            was_training = model.training
            if train:
                model.train()
            try:
                yield model
            finally:
                if train and not was_training:
                    model.eval()


def get_switch(backend: LocalBackend) -> AdapterSwitch:
    """The :class:`AdapterSwitch` of ``backend``'s loaded model (created on first use; every backend
    over the same weights shares it)."""
    with _SWITCHES_LOCK:
        switch = getattr(backend.loaded, "adapter_switch", None)
        if switch is None:
            switch = AdapterSwitch(backend)
            backend.loaded.adapter_switch = switch  # type: ignore[attr-defined]
        return switch


def linear_module_names(model: Any) -> list[str]:
    """Short names of the linear layers of ``model`` (what LoRA ``target_modules`` may name)."""
    import torch

    names: set[str] = set()
    for name, module in model.named_modules():
        if not name or not isinstance(module, torch.nn.Linear):
            continue
        parts = name.split(".")
        if "lora_A" in parts or "lora_B" in parts:
            continue  # weights of an adapter, not a layer of the model
        names.add(parts[-2] if parts[-1] == "base_layer" and len(parts) > 1 else parts[-1])
    return sorted(names)


def as_local_lm(lm: Any, what: str = "LoRA") -> LocalLM:
    """The plain in-process LM behind ``lm`` (unwrapping an :class:`AdaptedLocalLM`), or a
    :class:`ConfigurationError` for provider LMs."""
    if isinstance(lm, AdaptedLocalLM):
        return lm.base_lm
    if isinstance(lm, LocalLM):
        return lm
    name = getattr(lm, "model", type(lm).__name__)
    raise ConfigurationError(
        f"{what} needs an in-process transformers model, but got {name!r}. Use LM('local/embedded') or "
        "LM('local/<model dir | file.gguf | hub id>'); provider models (openai/..., etc.) cannot carry LoRA weights "
        "in this process.")


class AdaptedLocalLM(LocalLM):
    """The local LM ``base_lm`` generating with the LoRA adapter ``lora`` active.

    It shares the base LM's loaded weights and request settings; only its own requests use the
    adapter. ``lora`` is a :class:`textgrad_like.nn.lora.LoRA` (anything with ``adapter_name``,
    and ``fingerprint()`` works).
    """

    def __init__(self, base_lm: Any, lora: Any) -> None:  # noqa: D107 - documented on the class
        base = as_local_lm(base_lm, "AdaptedLocalLM")
        self.__dict__.update(base.copy().__dict__)
        self.base_lm = base
        self.lora = lora

    @property
    def adapter_name(self) -> str:
        return str(self.lora.adapter_name)

    def _request(self, prompt: str | None, messages: list[dict[str, Any]] | None,
                 kwargs: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        messages, merged = super()._request(prompt, messages, kwargs)
        merged["lora"] = self.lora.fingerprint()  # part of the cache key: new weights, new answers
        return messages, merged

    def _generate(self, messages: list[dict[str, Any]], **kwargs: Any) -> LMResponse:
        kwargs.pop("lora", None)  # only splits the cache; the adapter rides on each row (adapter_name)
        return super()._generate(messages, **kwargs)

    def stream(self, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        kwargs.pop("lora", None)
        return super().stream(messages, **kwargs)

    def dump_state(self) -> dict[str, Any]:
        state = super().dump_state()
        state["lora"] = self.adapter_name
        return state

    def __repr__(self) -> str:
        return f"AdaptedLocalLM(model={self.model!r}, lora={self.adapter_name!r})"

