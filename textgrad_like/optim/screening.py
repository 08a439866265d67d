"""Screen proposed instructions before paying to evaluate them.

A weak proposer model (the embedded 135M one, for instance) often answers an instruction-writing
prompt with a label name copied from the examples, a copy of an input, a field placeholder such as
``<text>``, or nothing usable. Such a proposal cannot be a better instruction, and scoring it costs
a full evaluation. :class:`InstructionScreen` rejects them with a reason and counts what it saw,
so an optimizer can report "proposals accepted / tried" and say plainly when its proposer is weak.
"""

from __future__ import annotations

import logging
import re
import threading
import typing
from collections import Counter
from collections.abc import Iterable
from typing import Any

logger = logging.getLogger(__name__)

_WORD = re.compile(r"[A-Za-z]{2,}")


def _norm(text: Any) -> str:
    return " ".join(str(text).strip().strip("'\"`.:").lower().replace("_", " ").split())


def _literal_choices(annotation: Any) -> list[str]:
    if typing.get_origin(annotation) is typing.Literal:
        return [str(a) for a in typing.get_args(annotation)]
    return [c for arg in typing.get_args(annotation) for c in _literal_choices(arg)]


class InstructionScreen:
    """``screen(text)`` returns ``None`` for a usable instruction, else the reason it is rejected.

    Args:
        signature: the predictor's signature (its field names and ``Literal`` choices are known labels), or
            several signatures (every predictor of a program: one screen then serves them all).
        examples: training examples; their output values are label names, their input values inputs.
        min_words: fewer words than this is "too short" (a label name or a fragment, not an instruction).
    """

    def __init__(self, signature: Any = None, examples: Iterable[Any] = (), min_words: int = 3) -> None:
        if not isinstance(min_words, int) or min_words < 1:
            raise ValueError(f"min_words must be a whole number >= 1, got {min_words!r}.")
        self.min_words = min_words
        self.labels: set[str] = set()
        self.inputs: list[str] = []
        self.field_names: set[str] = set()
        signatures = [] if signature is None else (
            list(signature) if isinstance(signature, (list, tuple, set)) else [signature])
        for sig in signatures:
            for name, info in {**sig.input_fields, **sig.output_fields}.items():
                self.field_names.add(_norm(name))
                self.labels.update(_norm(c) for c in _literal_choices(getattr(info, "annotation", None)))
        for example in examples:
            try:
                inputs, labels = dict(example.inputs()), dict(example.labels())
            except Exception:
                continue
            self.labels.update(_norm(v) for v in labels.values() if len(str(v)) <= 60)
            self.inputs.extend(_norm(v) for v in inputs.values() if len(_norm(v)) >= 8)
        self.tried = 0
        self.rejected: Counter[str] = Counter()
        self._lock = threading.Lock()

    def reason(self, text: Any, current: str | None = None) -> str | None:
        """Why ``text`` is not a usable instruction, or ``None`` if it is (no counting). With ``current``
        (the instruction it would replace), a copy of it is rejected too: it would only be scored again."""
        if not isinstance(text, str) or not text.strip():
            return "empty"
        norm = _norm(re.sub(r"[<>\[\]{}#*]", " ", text))
        if not norm:
            return "empty"
        if current is not None and norm == _norm(re.sub(r"[<>\[\]{}#*]", " ", str(current))):
            return "a copy of the current instruction"
        if norm in self.labels:
            return "a label name"
        if norm in self.field_names:
            return "a field name"
        if len(_WORD.findall(text)) < self.min_words:
            return "too short"
        if any(norm == inp or (len(norm) >= 12 and norm in inp) for inp in self.inputs):
            return "a copy of an input"
        return None

    def __call__(self, text: Any, current: str | None = None) -> str | None:
        """Screen one proposal and count it."""
        why = self.reason(text, current)
        with self._lock:
            self.tried += 1
            if why is not None:
                self.rejected[why] += 1
        if why is not None:
            logger.debug("Rejected proposed instruction %r: %s", str(text)[:80], why)
        return why

    @property
    def accepted(self) -> int:
        return self.tried - sum(self.rejected.values())

    def stats(self) -> dict[str, Any]:
        """``{"tried", "accepted", "rejected": {reason: count}}`` for search_state and reports."""
        return {"tried": self.tried, "accepted": self.accepted, "rejected": dict(self.rejected)}

    def restore(self, stats: dict[str, Any] | None) -> None:
        """Continue counting from :meth:`stats` saved earlier (a resumed run)."""
        if stats:
            with self._lock:
                self.tried = int(stats.get("tried", 0))
                self.rejected = Counter({str(k): int(v) for k, v in dict(stats.get("rejected") or {}).items()})

    def summary(self, optimizer: str) -> str:
        text = f"{optimizer}: {self.accepted} of {self.tried} proposed instructions passed screening"
        if self.rejected:
            text += " (rejected: " + ", ".join(f"{n} {why}" for why, n in self.rejected.most_common()) + ")"
        return text
