"""Token, cost and call counters, and budgets that stop a run before it overspends."""

from __future__ import annotations

import contextlib
import threading
from collections import defaultdict
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
    """Token usage per LM name, in DSPy's shape (``track_usage()`` and ``Prediction.get_lm_usage()``).

    ``usage_data`` maps an LM name to the usage dict of each paid call; cache hits cost nothing
    and are not recorded. ``get_total_tokens()`` sums them per LM (nested dicts key by key).
    """

    def __init__(self) -> None:
        self.usage_data: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self._lock = threading.Lock()

    def add_usage(self, lm: str, usage_entry: dict[str, Any]) -> None:
        """Record one call's usage dict (``prompt_tokens``, ``completion_tokens``, ...) for ``lm``."""
        if usage_entry:
            flat = {k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in dict(usage_entry).items()}
            with self._lock:
                self.usage_data[lm].append(flat)

    def add(self, lm_name: str, prompt_tokens: int, completion_tokens: int, cost: float | None,
            cache_hit: bool) -> None:
        """The LM's own hook: one call's counts (cache hits are skipped)."""
        if cache_hit:
            return
        entry: dict[str, Any] = {"prompt_tokens": int(prompt_tokens or 0),
                                 "completion_tokens": int(completion_tokens or 0)}
        entry["total_tokens"] = entry["prompt_tokens"] + entry["completion_tokens"]
        if cost is not None:
            entry["cost"] = float(cost)
        self.add_usage(lm_name, entry)

    def add_response(self, lm_name: str, usage: dict[str, Any], cost: float | None, cache_hit: bool) -> None:
        """The LM's hook: one call's usage dict as the provider reported it (cache hits are skipped)."""
        if cache_hit:
            return
        entry = dict(usage)
        if "total_tokens" not in entry and ("prompt_tokens" in entry or "completion_tokens" in entry):
            entry["total_tokens"] = int(entry.get("prompt_tokens") or 0) + int(entry.get("completion_tokens") or 0)
        if cost is not None:
            entry["cost"] = float(cost)
        self.add_usage(lm_name, entry)

    def merge(self, other: UsageTracker) -> None:
        """Take in every entry another tracker recorded (a nested ``track_usage`` block)."""
        with other._lock:
            items = [(lm, list(entries)) for lm, entries in other.usage_data.items()]
        with self._lock:
            for lm, entries in items:
                self.usage_data[lm].extend(entries)

    def get_total_tokens(self) -> dict[str, dict[str, Any]]:
        """Usage summed per LM name: ``{"openai/gpt-4o-mini": {"prompt_tokens": ..., ...}}``."""
        with self._lock:
            items = [(lm, list(entries)) for lm, entries in self.usage_data.items()]
        totals: dict[str, dict[str, Any]] = {}
        for lm, entries in items:
            total: dict[str, Any] = {}
            for entry in entries:
                total = _merge_usage(total, entry)
            totals[lm] = total
        return totals

    def totals(self) -> dict[str, dict[str, Any]]:
        return self.get_total_tokens()


def _merge_usage(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any]:
    if not a:
        return dict(b or {})
    if not b:
        return dict(a)
    out = dict(a)
    for key, value in b.items():
        current = out.get(key)
        if isinstance(value, dict) or isinstance(current, dict):
            out[key] = _merge_usage(current if isinstance(current, dict) else None,
                                    value if isinstance(value, dict) else None)
        elif value is not None or current is not None:
            out[key] = (current or 0) + (value or 0)
    return out


@contextlib.contextmanager
def track_usage() -> Iterator[UsageTracker]:
    """Collect LM usage inside the block; a nested block's usage also counts for the enclosing one."""
    tracker = UsageTracker()
    parent = settings.get("usage_tracker")
    try:
        with settings.context(usage_tracker=tracker):
            yield tracker
    finally:
        if parent is not None and hasattr(parent, "merge") and isinstance(parent, UsageTracker):
            parent.merge(tracker)
        elif parent is not None and hasattr(parent, "add"):
            for lm, entries in tracker.usage_data.items():
                for e in entries:
                    parent.add(lm, e.get("prompt_tokens", 0), e.get("completion_tokens", 0), e.get("cost"), False)
