"""``RunHistory``: a thread-safe log of an optimization run, one row per evaluated step.

Each row records the step, the score, the LM calls, tokens and cost spent so far, the best score
so far, and any extra fields. The history saves to and loads from JSON, and can draw a training
curve (score and best-so-far against LM calls, tokens, cost or step) as a PNG with matplotlib.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

__all__ = ["RunHistory"]

logger = logging.getLogger(__name__)

_CORE = ("step", "score", "lm_calls", "tokens", "cost", "best_so_far")


class RunHistory:
    """Rows of ``(step, score, lm_calls, tokens, cost, best_so_far, **extra)`` recorded during a run.

    Args:
        name: a label for the run (used in plot titles and saved files).
        higher_is_better: whether larger scores are better (False for losses).
        metadata: free-form facts about the run (optimizer, model, dataset, ...), saved with it.

    ``record`` may be called from several threads at once. ``best_so_far`` is computed on record.
    """

    def __init__(self, name: str = "run", *, higher_is_better: bool = True,
                 metadata: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.higher_is_better = higher_is_better
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    # recording ----------------------------------------------------------------------------------
    def _better(self, a: float, b: float) -> bool:
        return a > b if self.higher_is_better else a < b

    def record(
        self,
        score: float,
        *,
        step: int | None = None,
        lm_calls: int | None = None,
        tokens: int | None = None,
        cost: float | None = None,
        usage: Any = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Add a row and return it.

        Args:
            score: the metric value at this step (a number; NaN is refused).
            step: the step number; by default one more than the last row's (0 for the first).
            lm_calls, tokens, cost: cumulative spend so far. Taken from ``usage`` when not given
                (any object with ``calls``, ``total_tokens`` and ``cost``, e.g. ``lm.usage``);
                otherwise they repeat the last row's values (0 for the first row).
            **extra: anything else to keep in the row (e.g. ``candidate="..."``, ``split="dev"``).
        """
        try:
            score_f = float(score)
        except (TypeError, ValueError):
            raise ConfigurationError(f"RunHistory.record needs a numeric score, got {score!r}") from None
        if math.isnan(score_f):
            raise ConfigurationError("RunHistory.record got a NaN score; record a number (e.g. 0.0 for a failure)")
        clash = sorted(set(extra) & set(_CORE))
        if clash:
            raise ConfigurationError(f"{clash} are set by RunHistory itself; pass them as keyword arguments")
        if usage is not None:
            lm_calls = lm_calls if lm_calls is not None else getattr(usage, "calls", None)
            tokens = tokens if tokens is not None else getattr(usage, "total_tokens", None)
            cost = cost if cost is not None else getattr(usage, "cost", None)
        with self._lock:
            last = self._rows[-1] if self._rows else None
            row: dict[str, Any] = {
                "step": int(step) if step is not None else (last["step"] + 1 if last else 0),
                "score": score_f,
                "lm_calls": int(lm_calls) if lm_calls is not None else (last["lm_calls"] if last else 0),
                "tokens": int(tokens) if tokens is not None else (last["tokens"] if last else 0),
                "cost": float(cost) if cost is not None else (last["cost"] if last else 0.0),
            }
            best = last["best_so_far"] if last else None
            row["best_so_far"] = score_f if best is None or self._better(score_f, best) else best
            row.update(extra)
            self._rows.append(row)
        return dict(row)

    # reading --------------------------------------------------------------------------------------
    @property
    def rows(self) -> list[dict[str, Any]]:
        """A copy of the rows, in the order they were recorded."""
        with self._lock:
            return [dict(r) for r in self._rows]

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        with self._lock:
            return dict(self._rows[index])

    @property
    def best(self) -> dict[str, Any] | None:
        """The first row with the best score, or None when nothing was recorded."""
        with self._lock:
            best_row = None
            for row in self._rows:
                if best_row is None or self._better(row["score"], best_row["score"]):
                    best_row = row
            return dict(best_row) if best_row is not None else None

    @property
    def best_score(self) -> float | None:
        row = self.best
        return row["score"] if row is not None else None

    def column(self, key: str) -> list[Any]:
        """The values of one field across rows (None where a row lacks it)."""
        return [row.get(key) for row in self.rows]

    # persistence --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "higher_is_better": self.higher_is_better, "metadata": self.metadata,
                "rows": self.rows}

    def to_json(self, indent: int | None = 2) -> str:
        """The history as JSON text (values that JSON cannot hold are written with ``str``)."""
        return json.dumps(self.to_dict(), indent=indent, default=str)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunHistory:
        if not isinstance(data, Mapping) or not isinstance(data.get("rows"), list):
            raise ConfigurationError("Not a saved RunHistory: expected an object with a 'rows' list")
        history = cls(str(data.get("name", "run")), higher_is_better=bool(data.get("higher_is_better", True)),
                      metadata=data.get("metadata") or {})
        for i, row in enumerate(data["rows"]):
            missing = [k for k in _CORE if k not in row]
            if missing:
                raise ConfigurationError(f"Saved RunHistory row {i} lacks {missing}; the file is damaged or not ours")
            history._rows.append(dict(row))
        return history

    @classmethod
    def from_json(cls, text: str) -> RunHistory:
        """Rebuild a history from :meth:`to_json` output."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"RunHistory.from_json got text that is not JSON: {exc}") from None
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_json` to ``path`` (parent folders are created); returns the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.to_json(), encoding="utf-8")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RunHistory:
        """Read a history written by :meth:`save`."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    # plotting -----------------------------------------------------------------------------------
    def plot(self, path: str | os.PathLike[str], x: str = "lm_calls", *, title: str | None = None,
             others: Mapping[str, RunHistory] | None = None) -> Path:
        """Draw score and best-so-far against ``x`` ("lm_calls", "tokens", "cost" or "step") to a PNG.

        ``others`` adds the best-so-far curves of further runs (label -> history) for comparison.
        Uses matplotlib's Agg canvas directly, so it works without a display and from any thread.
        """
        if x not in ("lm_calls", "tokens", "cost", "step"):
            raise ConfigurationError(f"x must be one of 'lm_calls', 'tokens', 'cost', 'step'; got {x!r}")
        if not self._rows:
            raise ConfigurationError("Nothing to plot: record at least one row first")
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "RunHistory.plot needs matplotlib: pip install 'textgrad_like[data]' (or pip install matplotlib)"
            ) from exc
        fig = Figure(figsize=(7, 4.5), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        xs = self.column(x)
        ax.plot(xs, self.column("score"), "o", alpha=0.45, label=f"{self.name}: score")
        ax.step(xs, self.column("best_so_far"), where="post", linewidth=2, label=f"{self.name}: best so far")
        for label, other in (others or {}).items():
            ax.step(other.column(x), other.column("best_so_far"), where="post", linewidth=2,
                    label=f"{label}: best so far")
        ax.set_xlabel({"lm_calls": "LM calls", "tokens": "tokens", "cost": "cost (USD)", "step": "step"}[x])
        ax.set_ylabel("score")
        ax.set_title(title or f"{self.name}: score vs {x}")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
        fig.tight_layout()
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target, format="png")
        logger.info("saved training curve to %s", target)
        return target

    def __repr__(self) -> str:
        best = self.best_score
        return f"RunHistory({self.name!r}, rows={len(self)}, best={best})"
