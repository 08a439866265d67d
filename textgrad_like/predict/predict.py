"""``Predict``: one LM call through an adapter for a signature. Its instruction and demos are parameters.

Every predictor call goes through :meth:`Predict.forward`, the single place where a graph node is
recorded when a forward pass is being traced.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from ..adapters import ChatAdapter, JSONAdapter
from ..adapters.inputs import check_inputs, positional_args_message
from ..errors import ConfigurationError, InputError, StateDictError
from ..lm.base import BaseLM
from ..nn.graph import LMNode, current_graph
from ..nn.module import Module
from ..nn.parameter import Demos, Instruction, Parameter
from ..nn.saving import KEEP, lm_from_state, saved_lm_state, signature_from_state
from ..nn.saving import serialize_object as serialize_object  # DSPy's import path dspy.predict.predict
from ..nn.traced import trace
from ..primitives import Prediction
from ..settings import settings
from ..signatures import ensure_signature

logger = logging.getLogger(__name__)


def resolve_adapter(lm: Any) -> Any:
    adapter = settings.get("adapter")
    if adapter is not None:
        return adapter
    if getattr(lm, "supports_response_schema", False):
        return JSONAdapter()
    return ChatAdapter()


class Predict(Module):
    """``Predict("question -> answer")(question="...")`` returns a :class:`Prediction`."""

    _is_predictor = True
    adapter: Any = None  # an Adapter for this predictor only (not saved); a call's ``adapter=`` wins over it

    def __init__(self, signature: Any, callbacks: list[Any] | None = None, **config: Any) -> None:
        super().__init__(callbacks=callbacks)
        base = ensure_signature(signature)
        self.stage = uuid.uuid4().hex[:8]
        self._base_signature = base
        self._signature_cache: tuple[str, Any] = (base.instructions, base)
        self.instruction = Instruction(base.instructions)
        self.demos = Demos([])
        self.lm = None
        self.config = config

    # --- signature view over the instruction parameter ---------------------------------------------
    @property
    def signature(self) -> Any:
        text = self.instruction.value
        cached_text, cached = self._signature_cache
        if cached_text == text:
            return cached
        sig = self._base_signature.with_instructions(text)
        self._signature_cache = (text, sig)
        return sig

    @signature.setter
    def signature(self, value: Any) -> None:
        sig = ensure_signature(value)
        self._base_signature = sig
        self._signature_cache = (sig.instructions, sig)
        self.instruction.value = sig.instructions

    def reset(self) -> None:
        """Forget the LM, adapter and demos set on this predictor (and DSPy's ``traces``/``train`` lists)."""
        self.lm = None
        self.adapter = None
        self.demos = []
        self.traces: list[Any] = []
        self.train: list[Any] = []

    def dump_state(self) -> dict[str, Any]:
        """DSPy's predictor state (``traces``/``train`` kept empty for DSPy's loader); fields carry their
        ``name`` and DSPy's ``description`` key; the LM without credentials."""
        signature = self.signature.dump_state()
        for item in signature.get("fields", []):
            item.setdefault("description", item.get("desc"))
        return {"traces": [], "train": [], "demos": self.demos.state(), "signature": signature,
                "lm": saved_lm_state(self.lm)}

    def prepare_load_state(self, state: Any, *, allow_unsafe_lm_state: bool = False, strict: bool = True) -> Any:
        """Check a predictor state (ours or DSPy's) and return the function that installs it."""
        where = self.instruction.name.rsplit(".", 1)[0] if self.instruction.name and "." in self.instruction.name \
            else type(self).__name__
        if not isinstance(state, dict):
            raise StateDictError(f"{where}: a predictor state must be a dict with 'demos' and 'signature' (as "
                                 f"dump_state() writes it), got {type(state).__name__}.")
        signature = (signature_from_state(self.signature, state["signature"], where, strict)
                     if state.get("signature") is not None else None)
        demos = self.demos.parse_state(state["demos"]) if "demos" in state else None
        lm = lm_from_state(self.lm, state.get("lm"), where, allow_unsafe_lm_state, log=logger)

        def apply() -> None:
            if signature is not None:
                self.signature = signature
            if demos is not None:
                self.demos.apply_state(demos)
            if lm is not KEEP:
                self.lm = lm
        return apply

    def load_state(self, state: Any, *, allow_unsafe_lm_state: bool = False, strict: bool = True) -> Predict:
        """Load what :meth:`dump_state` returned (or a predictor entry of DSPy's ``program.json``); all or nothing."""
        self.prepare_load_state(state, allow_unsafe_lm_state=allow_unsafe_lm_state, strict=strict)()
        return self

    # --- the call ---------------------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Prediction:
        if args:
            raise InputError(positional_args_message(self.signature, type(self).__name__))
        return super().__call__(**kwargs)

    async def acall(self, *args: Any, **kwargs: Any) -> Prediction:
        if args:
            raise InputError(positional_args_message(self.signature, type(self).__name__))
        return await super().acall(**kwargs)

    def _prepare(self, kwargs: dict[str, Any]) -> tuple[Any, Any, dict[str, Any], list[Any], dict[str, Any], list[Parameter]]:
        override = kwargs.pop("signature", None)
        signature = ensure_signature(override) if override is not None else self.signature
        demos = kwargs.pop("demos", None)
        demos = list(self.demos) if demos is None else list(demos)
        config = {**self.config, **(kwargs.pop("config", None) or {})}
        lm = kwargs.pop("lm", None) or self.lm
        if lm is None and getattr(self, "lora", None) is not None and hasattr(self.lora, "adapted_lm"):
            lm = self.lora.adapted_lm()  # reset() dropped the LM view but the adapter stays attached
        lm = lm or settings.get("lm")
        if lm is None:
            raise ConfigurationError(
                "No LM is loaded. Call textgrad_like.configure(lm=textgrad_like.LM('openai/gpt-4o-mini')) "
                "(or LM('local/embedded') for the bundled local model), or pass lm= to the module."
            )
        if isinstance(lm, str):
            raise ConfigurationError(f"LM must be an instance of `dspy.BaseLM`, not a string. Instead of {lm!r}, "
                                     f"configure LM({lm!r}).")
        if not isinstance(lm, BaseLM):
            raise ConfigurationError(f"LM must be an instance of `dspy.BaseLM`, not {type(lm)}. Received lm={lm!r}.")
        if "new_signature" in kwargs:
            raise InputError("new_signature is not supported; pass signature= instead.")
        predicted = kwargs.get("prediction")
        if isinstance(predicted, dict) and predicted.get("type") == "content" and "content" in predicted:
            config["prediction"] = kwargs.pop("prediction")  # OpenAI's predicted outputs: an LM argument
        inputs = check_inputs(type(self).__name__, signature, kwargs)
        used: list[Parameter] = [self.instruction, self.demos]
        for value in inputs.values():
            if isinstance(value, Parameter):
                used.append(value)
        return signature, lm, config, demos, inputs, used

    def _finish(self, signature: Any, completions: list[dict[str, Any]], inputs: dict[str, Any],
                used: list[Parameter]) -> Prediction:
        pred = Prediction.from_completions(completions, signature=signature)
        graph = current_graph()
        if graph is not None:
            # the one place a predictor call is recorded: its parents are the recorded provenance of its
            # inputs, and its outputs carry this node as their grad_fn
            node = LMNode(name=self._graph_name(), module=self, inputs=inputs, outputs={}, params=used,
                          prediction=pred)
            for key, value in list(pred.items()):
                pred[key] = trace(value, node)
            candidates = pred.completions
            candidates._completions = {k: [trace(v, node) for v in vs] for k, vs in candidates.items()}
            node.outputs = dict(pred.items())
            graph.add(node)
        return pred

    def _graph_name(self) -> str:
        return self.instruction.name.rsplit(".", 1)[0] if self.instruction.name and "." in self.instruction.name \
            else f"{type(self).__name__}[{self.stage}]"

    def forward(self, **kwargs: Any) -> Prediction:
        adapter = self._pick_adapter(kwargs)
        signature, lm, config, demos, inputs, used = self._prepare(kwargs)
        adapter = adapter or resolve_adapter(lm)
        with settings.context(adapter=adapter):
            completions = adapter(lm, lm_kwargs=config, signature=signature, demos=demos, inputs=inputs)
        return self._finish(signature, completions, inputs, used)

    async def aforward(self, **kwargs: Any) -> Prediction:
        adapter = self._pick_adapter(kwargs)
        signature, lm, config, demos, inputs, used = self._prepare(kwargs)
        adapter = adapter or resolve_adapter(lm)
        with settings.context(adapter=adapter):
            completions = await adapter.acall(lm, lm_kwargs=config, signature=signature, demos=demos, inputs=inputs)
        return self._finish(signature, completions, inputs, used)

    def _pick_adapter(self, kwargs: dict[str, Any]) -> Any:
        """The adapter of this call, taking ``adapter=`` out of ``kwargs`` (never an input): the call's
        ``adapter=`` > this predictor's ``adapter`` > ``settings.adapter`` > the LM's default; an explicit
        ``adapter=None`` skips the predictor's own (as DSPy)."""
        if "adapter" in kwargs:
            return kwargs.pop("adapter")
        return self.adapter

    def update_config(self, **kwargs: Any) -> None:
        """Change the default LM arguments of this predictor (``temperature``, ``n``...)."""
        self.config = {**self.config, **kwargs}

    def get_config(self) -> dict[str, Any]:
        return self.config

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.signature!r})"
