"""``LM``: any provider through litellm, or an in-process model with ``LM("local/...")``."""

from __future__ import annotations

import logging
from typing import Any

from ..errors import LMError
from .base import BaseLM, LMResponse

logger = logging.getLogger(__name__)


class LM(BaseLM):
    """A language model behind litellm: ``LM("openai/gpt-4o-mini", temperature=0.0)``.

    ``LM("local/embedded")`` or ``LM("local/<path or hub id>")`` returns the in-process
    transformers backend (:class:`textgrad_like.lm.local.LocalLM`) instead. For OpenAI-compatible
    servers (vLLM, SGLang, Ollama, llama.cpp) use ``LM("openai/<model>", api_base=...)``.
    """

    def __new__(cls, model: str = "", *args: Any, **kwargs: Any) -> Any:
        if cls is LM and isinstance(model, str) and model.startswith("local/"):
            from .local import LocalLM

            return super().__new__(LocalLM)
        return super().__new__(cls)

    def __init__(self, model: str, model_type: str = "chat", temperature: float | None = None,
                 max_tokens: int | None = None, cache: bool = True, num_retries: int = 3,
                 callbacks: list[Any] | None = None, budget: Any = None, **kwargs: Any) -> None:
        super().__init__(model, model_type=model_type, temperature=temperature, max_tokens=max_tokens,
                         cache=cache, num_retries=num_retries, callbacks=callbacks, budget=budget, **kwargs)

    def _litellm_args(self, messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> dict[str, Any]:
        args = dict(kwargs)
        args.pop("rollout_id", None)  # only splits the cache
        args.setdefault("num_retries", self.num_retries)
        if self.model_type == "text":
            prompt = "\n\n".join(str(m.get("content", "")) for m in messages)
            return {"model": self.model, "prompt": prompt, **args}
        return {"model": self.model, "messages": messages, **args}

    def _to_response(self, raw: Any) -> LMResponse:
        outputs: list[str] = []
        for choice in raw.choices:
            if self.model_type == "text":
                outputs.append(choice.text or "")
            else:
                outputs.append(choice.message.content or "")
        usage = getattr(raw, "usage", None)
        cost = None
        hidden = getattr(raw, "_hidden_params", None) or {}
        if isinstance(hidden, dict):
            cost = hidden.get("response_cost")
        return LMResponse(outputs=outputs,
                          prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                          completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                          cost=cost, model=str(getattr(raw, "model", self.model)))

    def _generate(self, messages: list[dict[str, Any]], **kwargs: Any) -> LMResponse:
        import litellm

        litellm.suppress_debug_info = True
        args = self._litellm_args(messages, kwargs)
        try:
            raw = litellm.text_completion(**args) if self.model_type == "text" else litellm.completion(**args)
        except Exception as exc:
            raise LMError(f"{self.model}: the provider call failed ({type(exc).__name__}: {exc}). "
                          "Check the model name, api_base and credentials.") from exc
        return self._to_response(raw)

    async def _agenerate(self, messages: list[dict[str, Any]], **kwargs: Any) -> LMResponse:
        import litellm

        litellm.suppress_debug_info = True
        args = self._litellm_args(messages, kwargs)
        try:
            if self.model_type == "text":
                raw = await litellm.atext_completion(**args)
            else:
                raw = await litellm.acompletion(**args)
        except Exception as exc:
            raise LMError(f"{self.model}: the provider call failed ({type(exc).__name__}: {exc}).") from exc
        return self._to_response(raw)
