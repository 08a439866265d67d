"""``FaultyLM``: wrap any LM and make a chosen fraction of its calls fail, for reliability tests.

``FaultyLM(lm, failure_rate=0.2, kinds=("error", "timeout", "malformed"), seed=0)`` answers like
``lm`` except that about ``failure_rate`` of the requests fail with one of:

- ``"error"`` — a provider error (:class:`InjectedProviderError`, an :class:`~textgrad_like.errors.LMError`);
- ``"timeout"`` — a request timeout (:class:`InjectedTimeoutError`, an ``LMError`` that is also a
  ``TimeoutError``), as litellm's timeouts are mapped by :class:`~textgrad_like.lm.LM`;
- ``"malformed"`` — the call "succeeds" but the reply is unusable text (empty, truncated tags,
  broken JSON, prose), so the adapter has to cope.

Which requests fail is decided from a hash of ``(seed, request, how many times this request was
made before)``: the same seed gives the same faults whatever order threads make their calls in,
and a request that failed once can succeed when it is made again (as with a real provider).
``injected`` counts the faults by kind and ``calls`` the requests made to the wrapper.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigurationError, LMError
from ..lm.base import BaseLM, LMResponse
from ..lm.cache import cache_key

KINDS = ("error", "timeout", "malformed")

MALFORMED_REPLIES = (
    "",
    "I'm sorry, I cannot help with that.",
    "<answer>\nthe reply was cut off",
    '{"answer": "unterminated',
    "```json\n[1, 2, \n```",
    "</answer><answer></answer>",
    "\x00\ufffd\U0001f600 <<< >>>",
    "null",
)


class InjectedFault(LMError):
    """A failure made on purpose by :class:`FaultyLM`."""


class InjectedProviderError(InjectedFault):
    """An injected provider error (as a 500 or a rate limit would give)."""


class InjectedTimeoutError(InjectedFault, TimeoutError):
    """An injected request timeout."""


class FaultyLM(BaseLM):
    """Wrap ``lm`` so that about ``failure_rate`` of its calls fail (see the module docstring)."""

    def __init__(self, lm: BaseLM, failure_rate: float = 0.2, kinds: Sequence[str] = KINDS, seed: int = 0,
                 **kwargs: Any) -> None:
        if not isinstance(lm, BaseLM):
            raise ConfigurationError(f"FaultyLM wraps an LM object (a BaseLM), got {type(lm).__name__}.")
        if not 0.0 <= float(failure_rate) <= 1.0:
            raise ConfigurationError(f"failure_rate must be between 0 and 1, got {failure_rate!r}.")
        kinds = tuple(kinds)
        unknown = [k for k in kinds if k not in KINDS]
        if not kinds or unknown:
            raise ConfigurationError(f"kinds must be a non-empty subset of {KINDS}, got {kinds!r}.")
        kwargs.setdefault("cache", False)
        super().__init__(lm.model, model_type=lm.model_type, num_retries=0, **kwargs)
        self.lm = lm
        self.failure_rate = float(failure_rate)
        self.kinds = kinds
        self.seed = int(seed)
        self.calls = 0
        self.injected: Counter[str] = Counter()
        self.faults: list[dict[str, Any]] = []
        self._seen: Counter[str] = Counter()
        self._fault_lock = threading.Lock()

    # the wrapped LM's capabilities (e.g. supports_response_schema) show through
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("lm", "_fault_lock"):
            raise AttributeError(name)
        return getattr(self.__dict__["lm"] if "lm" in self.__dict__ else object(), name)

    @property
    def failures(self) -> int:
        """Total number of injected faults."""
        return sum(self.injected.values())

    def _decide(self, messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> tuple[str, int] | None:
        key = cache_key({"model": self.model, "messages": messages, **kwargs})
        with self._fault_lock:
            self.calls += 1
            occurrence = self._seen[key]
            self._seen[key] += 1
        digest = hashlib.sha256(f"{self.seed}:{occurrence}:{key}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        if draw >= self.failure_rate:
            return None
        kind = self.kinds[digest[8] % len(self.kinds)]
        index = digest[9] % len(MALFORMED_REPLIES)
        with self._fault_lock:
            self.injected[kind] += 1
            self.faults.append({"kind": kind, "key": key, "occurrence": occurrence})
        return kind, index

    def _fault(self, decision: tuple[str, int], kwargs: dict[str, Any]) -> LMResponse:
        kind, index = decision
        if kind == "error":
            raise InjectedProviderError(f"{self.model}: injected provider error (HTTP 503, service unavailable). "
                                        "Retry the call later.")
        if kind == "timeout":
            raise InjectedTimeoutError(f"{self.model}: injected timeout (no reply within the request timeout). "
                                       "Retry the call or raise the timeout.")
        n = int(kwargs.get("n") or 1)
        text = MALFORMED_REPLIES[index]
        return LMResponse(outputs=[text] * n, prompt_tokens=0, completion_tokens=len(text) // 4, cost=0.0,
                          model=self.model)

    def _generate(self, messages: list[dict[str, Any]], **kwargs: Any) -> LMResponse:
        decision = self._decide(messages, kwargs)
        if decision is not None:
            return self._fault(decision, kwargs)
        return self.lm._generate(messages, **kwargs)

    async def _agenerate(self, messages: list[dict[str, Any]], **kwargs: Any) -> LMResponse:
        decision = self._decide(messages, kwargs)
        if decision is not None:
            return self._fault(decision, kwargs)
        return await self.lm._agenerate(messages, **kwargs)

    def __repr__(self) -> str:
        return f"FaultyLM({self.lm!r}, failure_rate={self.failure_rate}, kinds={self.kinds}, seed={self.seed})"
