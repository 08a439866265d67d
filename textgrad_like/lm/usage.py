"""Token, cost and call counters, and budgets that stop a run before it overspends."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import BudgetExceeded
from ..settings import settings


@dataclass
class Usage:
    """Running totals for one LM (or one tracker). Cache hits are counted apart and cost nothing."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, prompt_tokens: int, completion_tokens: int, cost: float | None, cache_hit: bool) -> None:
        with self._lock:
            if cache_hit:
                self.cache_hits += 1
                return
            self.calls += 1
            self.prompt_tokens += int(prompt_tokens or 0)
            self.completion_tokens += int(completion_tokens or 0)
            self.cost += float(cost or 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "cache_hits": self.cache_hits, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "total_tokens": self.total_tokens,
                "cost": self.cost}


class Budget:
    """Limits on LM calls, tokens and cost. A call that would pass a limit raises
    :class:`BudgetExceeded` before it is sent.

    Tokens are checked with an upper bound for the next call (its prompt length estimate plus its
    ``max_tokens``), so a run never crosses ``max_tokens``. Cost is checked against the average
    cost of the calls so far.
    """

    def __init__(self, max_calls: int | None = None, max_tokens: int | None = None,
                 max_cost: float | None = None) -> None:
        for name, value in (("max_calls", max_calls), ("max_tokens", max_tokens), ("max_cost", max_cost)):
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.max_calls = max_calls
        self.max_tokens = max_tokens
        self.max_cost = max_cost
        self.usage = Usage()
        self._lock = threading.Lock()
        self._reserved_calls = 0

    def reserve(self, estimated_tokens: int) -> None:
        with self._lock:
            used = self.usage
            if self.max_calls is not None and used.calls + self._reserved_calls + 1 > self.max_calls:
                raise BudgetExceeded(
                    f"LM call budget of {self.max_calls} calls is used up ({used.calls} made). "
                    "Raise max_calls or lower the work (fewer trials, a smaller valset)."
                )
            if self.max_tokens is not None and used.total_tokens + estimated_tokens > self.max_tokens:
                raise BudgetExceeded(
                    f"Token budget of {self.max_tokens} would be passed: {used.total_tokens} used, the next call "
                    f"may use up to {estimated_tokens}. Raise max_tokens or lower max_tokens per call."
                )
            if self.max_cost is not None and used.calls:
                average = used.cost / used.calls
                if used.cost + average > self.max_cost:
                    raise BudgetExceeded(
                        f"Cost budget of ${self.max_cost:.4f} would be passed (${used.cost:.4f} spent). "
                        "Raise max_cost to go on."
                    )
            self._reserved_calls += 1

    def release(self) -> None:
        with self._lock:
            self._reserved_calls = max(0, self._reserved_calls - 1)

    def record(self, prompt_tokens: int, completion_tokens: int, cost: float | None) -> None:
        self.usage.add(prompt_tokens, completion_tokens, cost, cache_hit=False)

    @property
    def remaining_calls(self) -> int | None:
        return None if self.max_calls is None else max(0, self.max_calls - self.usage.calls)

    def __repr__(self) -> str:
        return (f"Budget(max_calls={self.max_calls}, max_tokens={self.max_tokens}, max_cost={self.max_cost}, "
                f"used={self.usage.to_dict()})")


@contextlib.contextmanager
def budget(max_calls: int | None = None, max_tokens: int | None = None,
           max_cost: float | None = None) -> Iterator[Budget]:
    """Limit every LM call made inside the block (this thread/task and the workers it starts).

    >>> with budget(max_calls=100) as b:
    ...     program(question="...")
    >>> b.usage.calls
    """
    new = Budget(max_calls, max_tokens, max_cost)
    active = list(settings.get("budget") or [])
    with settings.context(budget=[*active, new]):
        yield new


class UsageTracker:
    """Collects usage per LM name for ``track_usage=True`` (one tracker per top-level call)."""

    def __init__(self) -> None:
        self._by_lm: dict[str, Usage] = {}
        self._lock = threading.Lock()

    def add(self, lm_name: str, prompt_tokens: int, completion_tokens: int, cost: float | None,
            cache_hit: bool) -> None:
        with self._lock:
            usage = self._by_lm.setdefault(lm_name, Usage())
        usage.add(prompt_tokens, completion_tokens, cost, cache_hit)

    def totals(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: usage.to_dict() for name, usage in self._by_lm.items()}


@contextlib.contextmanager
def track_usage() -> Iterator[UsageTracker]:
    tracker = UsageTracker()
    with settings.context(usage_tracker=tracker):
        yield tracker
