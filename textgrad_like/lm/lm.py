"""``LM``: any provider through litellm, or an in-process model with ``LM("local/...")``."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Generator
from typing import Any

from ..errors import ConfigurationError, ContextWindowExceededError, LMError
from .base import BaseLM, LMResponse, _get, usage_dict
from .cache import strip_secrets

logger = logging.getLogger(__name__)


def _litellm() -> Any:
    """Import litellm with its offline-friendly settings (no fetch of the remote price map)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def _provider_error(model: str, exc: Exception) -> LMError:
    if type(exc).__name__ == "ContextWindowExceededError" or "context length" in str(exc).lower():
        return ContextWindowExceededError(f"{model}: the prompt does not fit the context window ({exc}). "
                                          "Shorten the inputs or demos, or lower max_tokens.")
    return LMError(f"{model}: the provider call failed ({type(exc).__name__}: {exc}). "
                   "Check the model name, api_base and credentials.")


def provider_supports_response_schema(lm: Any) -> bool:
    """Whether ``lm`` is a provider LM whose model takes a JSON-schema ``response_format``
    (``litellm.supports_response_schema``); ``False`` for anything else or when litellm cannot tell."""
    if not isinstance(lm, LM) or getattr(type(lm), "_generate", None) is not LM._generate \
            or getattr(lm, "model_type", None) != "chat" or not isinstance(getattr(lm, "model", None), str):
        return False
    return _supports_response_schema(lm.model)


@functools.lru_cache(maxsize=256)
def _supports_response_schema(model: str) -> bool:
    try:
        return bool(_litellm().supports_response_schema(model=model, custom_llm_provider=None))
    except Exception:
        return False


# Model-name prefix -> the LM subclass that serves it: the class, or "module:Class" imported on first use
# (``textgrad_like.lm`` registers "local/"; lm.py itself imports no backend).
_LM_BACKENDS: dict[str, Any] = {}


def register_lm_backend(prefix: str, backend: Any) -> None:
    """Make ``LM("<prefix>...")`` build ``backend`` (an ``LM`` subclass, or ``"module:Class"`` naming
    one, imported on first use) instead of the litellm ``LM``: ``register_lm_backend("local/", LocalLM)``."""
    if not isinstance(prefix, str) or not prefix:
        raise ConfigurationError("register_lm_backend needs a non-empty model-name prefix such as 'local/'.")
    if not (isinstance(backend, str) and ":" in backend) and not (isinstance(backend, type) and issubclass(backend, LM)):
        raise ConfigurationError("register_lm_backend needs an LM subclass or a 'module:Class' string naming one.")
    _LM_BACKENDS[prefix] = backend


def lm_backend_for(model: str) -> type[LM] | None:
    """The LM subclass registered for the longest prefix of ``model``, or None (litellm's ``LM``)."""
    matches = [p for p in _LM_BACKENDS if model.startswith(p)]
    if not matches:
        return None
    prefix = max(matches, key=len)
    backend = _LM_BACKENDS[prefix]
    if isinstance(backend, str):
        import importlib

        module, _, name = backend.partition(":")
        backend = getattr(importlib.import_module(module), name)
        if not (isinstance(backend, type) and issubclass(backend, LM)):
            raise ConfigurationError(f"The LM backend registered for {prefix!r} ({_LM_BACKENDS[prefix]}) is not an "
                                     "LM subclass.")
        _LM_BACKENDS[prefix] = backend
    return backend


class LM(BaseLM):
    """A language model behind litellm: ``LM("openai/gpt-4o-mini", temperature=0.0)``.

    ``LM("local/embedded")`` or ``LM("local/<path or hub id>")`` returns the in-process
    transformers backend (:class:`textgrad_like.lm.local.LocalLM`) instead. For OpenAI-compatible
    servers (vLLM, SGLang, Ollama, llama.cpp) use ``LM("openai/<model>", api_base=...)``.
    """

    _cache_by_default = True

    def __new__(cls, model: str = "", *args: Any, **kwargs: Any) -> Any:
        if cls is LM and isinstance(model, str):
            backend = lm_backend_for(model)
            if backend is not None:
                return super().__new__(backend)
        return super().__new__(cls)

    def __init__(self, model: str, model_type: str = "chat", temperature: float | None = None,
                 max_tokens: int | None = None, cache: bool | None = None, num_retries: int = 3,
                 callbacks: list[Any] | None = None, budget: Any = None, *, finetuning_model: str | None = None,
                 launch_kwargs: dict[str, Any] | None = None, train_kwargs: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(model, model_type=model_type, temperature=temperature, max_tokens=max_tokens,
                         cache=cache, num_retries=num_retries, callbacks=callbacks, budget=budget, **kwargs)
        # DSPy's fine-tuning bookkeeping: kept and saved, never sent to the provider
        self.finetuning_model = finetuning_model
        self.launch_kwargs = dict(launch_kwargs or {})
        self.train_kwargs = dict(train_kwargs or {})

    def dump_state(self) -> dict[str, Any]:
        return {**super().dump_state(), "finetuning_model": self.finetuning_model,
                "launch_kwargs": strip_secrets(self.launch_kwargs), "train_kwargs": strip_secrets(self.train_kwargs)}

    def _litellm_args(self, messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> dict[str, Any]:
        args = dict(kwargs)
        args.pop("rollout_id", None)  # only splits the cache
        args.setdefault("num_retries", self.num_retries)
        if self.model_type == "text":
            prompt = "\n\n".join(str(m.get("content", "")) for m in messages)
            # as DSPy's text path: the key and base from ``<provider>_API_KEY`` / ``_API_BASE`` when not given
            provider = self.model.split("/", 1)[0]
            for key, env in (("api_key", f"{provider}_API_KEY"), ("api_base", f"{provider}_API_BASE")):
                args[key] = args.get(key) or os.getenv(env)  # None: litellm's own default
            return {"model": self.model, "prompt": prompt, **args}
        return {"model": self.model, "messages": messages, **args}

    def _to_response(self, raw: Any) -> LMResponse:
        """An :class:`LMResponse` from litellm's response (or any OpenAI-shaped object or dict)."""
        outputs: list[str] = []
        for choice in _get(raw, "choices") or []:
            if self.model_type == "text":
                outputs.append(_get(choice, "text") or "")
            else:
                outputs.append(_get(_get(choice, "message"), "content") or "")
        usage = _get(raw, "usage")
        cost = None
        hidden = getattr(raw, "_hidden_params", None) or {}
        if isinstance(hidden, dict):
            cost = hidden.get("response_cost")
        provided = usage_dict(usage)
        return LMResponse(outputs=outputs,
                          prompt_tokens=int(_get(usage, "prompt_tokens", 0) or 0),
                          completion_tokens=int(_get(usage, "completion_tokens", 0) or 0),
                          cost=cost, model=str(_get(raw, "model") or self.model),
                          extra={"usage": provided} if provided else {})

    def _generate(self, messages: list[dict[str, Any]], **kwargs: Any) -> LMResponse:
        litellm = _litellm()
        args = self._litellm_args(messages, kwargs)
        try:
            raw = litellm.text_completion(**args) if self.model_type == "text" else litellm.completion(**args)
        except Exception as exc:
            raise _provider_error(self.model, exc) from exc
        return self._to_response(raw)

    def stream(self, messages: list[dict[str, Any]], **kwargs: Any) -> Generator[str, None, LMResponse | None]:
        """Stream the completion from the provider (litellm ``stream=True``), piece by piece."""
        if type(self)._generate is not LM._generate:
            # a subclass with its own backend (e.g. the in-process LocalLM) and no stream() of its own:
            # BaseLM's whole-reply-once behaviour, never litellm
            return (yield from BaseLM.stream(self, messages, **kwargs))
        litellm = _litellm()
        args = self._litellm_args(messages, kwargs)
        args["stream"] = True
        if self.model_type != "text":
            args.setdefault("stream_options", {"include_usage": True})
        chunks: list[Any] = []
        try:
            raw = litellm.text_completion(**args) if self.model_type == "text" else litellm.completion(**args)
            for chunk in raw:
                chunks.append(chunk)
                text = _chunk_text(chunk, self.model_type)
                if text:
                    yield text
        except Exception as exc:
            raise LMError(f"{self.model}: the provider stream failed ({type(exc).__name__}: {exc}). "
                          "Check the model name, api_base and credentials.") from exc
        return self._streamed_response(chunks, messages)

    def _streamed_response(self, chunks: list[Any], messages: list[dict[str, Any]]) -> LMResponse | None:
        """Rebuild usage and cost from the stream's chunks (``None``: the base class estimates them)."""
        litellm = _litellm()

        try:
            built = litellm.stream_chunk_builder(chunks, messages=messages)
        except Exception:
            logger.debug("Could not rebuild the streamed response of %s.", self.model, exc_info=True)
            return None
        if built is None:
            return None
        response = self._to_response(built)
        if response.cost is None:
            try:
                response.cost = float(litellm.completion_cost(completion_response=built))
            except Exception:
                response.cost = None
        text = "".join(_chunk_text(c, self.model_type) for c in chunks)
        response.outputs = [text]
        return response

    async def _agenerate(self, messages: list[dict[str, Any]], **kwargs: Any) -> LMResponse:
        litellm = _litellm()
        args = self._litellm_args(messages, kwargs)
        try:
            if self.model_type == "text":
                raw = await litellm.atext_completion(**args)
            else:
                raw = await litellm.acompletion(**args)
        except Exception as exc:
            raise _provider_error(self.model, exc) from exc
        return self._to_response(raw)


def _chunk_text(chunk: Any, model_type: str) -> str:
    """The text a litellm stream chunk adds (``""`` for usage-only chunks)."""
    choices = getattr(chunk, "choices", None) or []
    if not choices:
        return ""
    choice = choices[0]
    if model_type == "text":
        return getattr(choice, "text", None) or ""
    delta = getattr(choice, "delta", None)
    return (getattr(delta, "content", None) or "") if delta is not None else ""
