"""A loaded local model ready to serve requests: prompts, constraints and the continuous batcher.

The work is split in three modules: :mod:`~textgrad_like.lm.loading` (where the weights are, the
converted-weights cache, device and numeric mode), :mod:`~textgrad_like.lm.batching` (requests
from many threads joining one decode loop) and :mod:`~textgrad_like.lm.decoding` (prefill with
shared-prefix reuse, one token per row per step). :class:`LocalBackend` ties them together.

Weights load once per process per (path, gguf file, device, dtype) and are shared; each distinct
batching configuration (``max_batch_size``, ``batch_wait_ms``, ``prefix_cache_mb``) gets its own
backend (and decode loop) over those shared weights.

torch and transformers are imported inside functions only: ``import textgrad_like`` stays light.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigurationError, ModelLoadError
from .batching import DEFAULT_BATCH_WAIT_MS, DEFAULT_MAX_BATCH_SIZE, ContinuousBatcher, GenerationRow
from .constrained import ConstraintCompiler
from .decoding import DEFAULT_PREFIX_CACHE_MB, DecodeEngine, PrefixCache
from .loading import LoadedModel, ModelSource, load_model_and_tokenizer, requested_mode, resolve_device

logger = logging.getLogger(__name__)


class LocalBackend:
    """A loaded model + tokenizer, a constraint compiler, a decode engine and its batcher."""

    def __init__(self, loaded: LoadedModel, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                 batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
                 prefix_cache_mb: float = DEFAULT_PREFIX_CACHE_MB) -> None:
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.source = loaded.source
        self.device = loaded.device
        self.mode = loaded.mode
        self.load_seconds = loaded.load_seconds
        config = loaded.config
        limits = [v for v in (config.get("max_position_embeddings"),
                              getattr(self.tokenizer, "model_max_length", None)) if isinstance(v, int) and 0 < v < 10**7]
        self.context_length = min(limits) if limits else 2048
        self.stop_token_ids = self._stop_ids()
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else self.stop_token_ids[0])
        self.vocab_size = int(config.get("vocab_size") or len(self.tokenizer))
        self.constraints = ConstraintCompiler(self.tokenizer, self.vocab_size, self.stop_token_ids)
        self.prefix_cache = PrefixCache(int(prefix_cache_mb * 2**20)) if prefix_cache_mb > 0 else None
        self.engine = DecodeEngine(loaded, self.stop_token_ids, self.pad_token_id, self.prefix_cache)
        self.batcher = ContinuousBatcher(self.engine, max_batch_size, batch_wait_ms,
                                         name=os.path.basename(self.source.path))

    @property
    def model(self) -> Any:
        """The transformers model (LoRA adapters and training use it; built on first use after a warm load)."""
        return self.loaded.model

    @property
    def decoder(self) -> Any:
        """The compact decoder that generates base-model rows, or None when transformers does."""
        return self.loaded.decoder

    def _stop_ids(self) -> list[int]:
        ids = list(self.loaded.eos_token_ids)
        if not ids:
            raise ModelLoadError("The model defines no end-of-sequence token (eos_token_id); set it in its "
                                 "generation_config.json or tokenizer_config.json.")
        return ids

    def encode_messages(self, messages: Sequence[dict[str, Any]], model_type: str = "chat") -> list[int]:
        """Token ids of the prompt: the tokenizer's chat template for chat models, plain text otherwise."""
        flat = [{"role": str(m.get("role", "user")), "content": _text_of(m.get("content", ""))} for m in messages]
        if model_type == "chat" and getattr(self.tokenizer, "chat_template", None):
            encoded = self.tokenizer.apply_chat_template(flat, add_generation_prompt=True, tokenize=True)
            if isinstance(encoded, dict) or hasattr(encoded, "keys"):
                encoded = encoded["input_ids"]
            return [int(t) for t in encoded]
        if model_type == "chat":
            text = "".join(f"{m['role']}: {m['content']}\n" for m in flat) + "assistant: "
        else:
            text = "\n\n".join(m["content"] for m in flat)
        return [int(t) for t in self.tokenizer.encode(text)]

    def check_prompt(self, prompt_ids: list[int], max_new_tokens: int) -> int:
        """Validate the prompt length; return the token limit that fits the context."""
        if len(prompt_ids) >= self.context_length:
            raise ConfigurationError(
                f"The prompt has {len(prompt_ids)} tokens but {self.source.path!r} has a context of "
                f"{self.context_length} tokens. Shorten the prompt (fewer demos or shorter inputs).")
        return max(1, min(int(max_new_tokens), self.context_length - len(prompt_ids)))

    def generate(self, rows: list[GenerationRow]) -> list[GenerationRow]:
        """Run ``rows`` through the continuous batcher (thread-safe); returns them with text filled in."""
        return self.batcher.submit(rows)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: keep the text ones
        return "".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


# ---------------------------------------------------------------------------------------------------
# The process-wide registries: loaded weights, and backends over them
# ---------------------------------------------------------------------------------------------------
_WeightsKey = tuple[str, "str | None", str, str]
_WEIGHTS: dict[_WeightsKey, LoadedModel] = {}
_BACKENDS: dict[tuple[Any, ...], LocalBackend] = {}
_REGISTRY_LOCK = threading.Lock()
_KEY_LOCKS: dict[_WeightsKey, threading.Lock] = {}


def load_weights(source: ModelSource, device: str | None = None, dtype: Any = None,
                 allow_download: bool = False) -> LoadedModel:
    """The process-wide loaded weights for ``source`` on ``device`` in ``dtype`` (loaded once, thread-safe)."""
    resolved_device = resolve_device(device)
    key: _WeightsKey = (source.path, source.gguf_file, resolved_device, requested_mode(dtype, resolved_device))
    with _REGISTRY_LOCK:
        loaded = _WEIGHTS.get(key)
        if loaded is not None:
            return loaded
        key_lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with key_lock:  # one loader per key; other keys load in parallel
        with _REGISTRY_LOCK:
            loaded = _WEIGHTS.get(key)
        if loaded is not None:
            return loaded
        loaded = load_model_and_tokenizer(source, resolved_device, dtype, allow_download)
        logger.info("Loaded local model %s%s on %s (%s) in %.1f s%s", source.path,
                    f" ({source.gguf_file})" if source.gguf_file else "", resolved_device, loaded.mode,
                    loaded.load_seconds, " from the converted-weights cache" if loaded.from_cache else "")
        with _REGISTRY_LOCK:
            _WEIGHTS[key] = loaded
        return loaded


def get_backend(source: ModelSource, device: str | None = None, dtype: Any = None,
                max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
                allow_download: bool = False, prefix_cache_mb: float = DEFAULT_PREFIX_CACHE_MB) -> LocalBackend:
    """The process-wide backend for these weights and batching settings (weights shared across settings)."""
    loaded = load_weights(source, device, dtype, allow_download)
    key = (id(loaded), int(max_batch_size), float(batch_wait_ms), float(prefix_cache_mb))
    with _REGISTRY_LOCK:
        backend = _BACKENDS.get(key)
        if backend is None:
            backend = LocalBackend(loaded, max_batch_size, batch_wait_ms, prefix_cache_mb)
            _BACKENDS[key] = backend
        return backend


def unload(source: ModelSource) -> int:
    """Forget every loaded copy of ``source`` (and its backends); returns how many were dropped.
    Requests running on them finish; the memory is freed once nothing holds them."""
    with _REGISTRY_LOCK:
        keys = [k for k in _WEIGHTS if k[0] == source.path and k[1] == source.gguf_file]
        ids = {id(_WEIGHTS.pop(k)) for k in keys}
        for key in [k for k in _BACKENDS if k[0] in ids]:
            del _BACKENDS[key]
    return len(keys)
