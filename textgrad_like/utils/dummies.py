"""``DummyLM``: a scripted LM for tests and demos, with DSPy's constructor forms.

- ``DummyLM([{"answer": "4"}, {"answer": "5"}])`` returns the answers in order, then (as DSPy's)
  ``{"answer": "No more responses"}`` with a logged warning.
- ``DummyLM({"2+2": {"answer": "4"}})`` returns the answer whose key is a substring of the last message.
- ``DummyLM([...], follow_examples=True)`` copies a demo's outputs when the current inputs match a demo.

Answers are written in the format of the adapter in use, so they parse like real replies.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
from typing import Any

from ..adapters import ChatAdapter, JSONAdapter
from ..errors import ConfigurationError
from ..lm.base import BaseLM, LMResponse
from ..settings import settings

logger = logging.getLogger(__name__)
_EXHAUSTED = {"answer": "No more responses"}


class DummyLM(BaseLM):
    def __init__(self, answers: list[dict[str, Any]] | dict[str, dict[str, Any]] | None = None,
                 follow_examples: bool = False, adapter: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("cache", False)
        super().__init__("dummy", **kwargs)
        if answers is None:
            answers = []
        if not isinstance(answers, (list, dict)):
            raise ConfigurationError("DummyLM takes a list of answer dicts or a dict {substring: answer dict}.")
        self.answers = answers
        self.follow_examples = follow_examples
        self.adapter = adapter
        self._iter = iter(answers) if isinstance(answers, list) else None
        self._lock = threading.Lock()
        self.calls = 0

    def _format(self, fields: dict[str, Any], messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> str:
        adapter = self.adapter or settings.get("adapter")
        wants_json = "response_format" in kwargs or isinstance(adapter, JSONAdapter) or any(
            "single JSON object" in str(m.get("content", "")) for m in messages[:1])
        if wants_json:
            return json.dumps(fields, ensure_ascii=False, default=str)
        return ChatAdapter().format_outputs(_AnySignature(fields), fields)

    def _next_answer(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        last = str(messages[-1].get("content", "")) if messages else ""
        if self.follow_examples:
            for i in range(len(messages) - 2, 0, -1):
                m = messages[i]
                if m.get("role") == "user" and _same_inputs(m.get("content", ""), last):
                    reply = messages[i + 1].get("content", "") if i + 1 < len(messages) - 1 else ""
                    if reply:
                        return {"__raw__": reply}
        if isinstance(self.answers, dict):
            for key, value in self.answers.items():
                if key in last:
                    return value
            return {"__missing__": f"No scripted answer matches the last message: {last[:200]!r}"}
        with self._lock:
            answer = next(self._iter, None)  # type: ignore[arg-type]
        if answer is None:  # as DSPy's DummyLM: an "answer" of "No more responses" once the list is used up
            logger.warning("DummyLM ran out of scripted answers; replying {'answer': 'No more responses'}.")
            return dict(_EXHAUSTED)
        return answer

    def _generate(self, messages: list[dict[str, Any]], **kwargs: Any) -> LMResponse:
        n = int(kwargs.get("n") or 1)
        outputs = []
        for _ in range(n):
            with self._lock:
                self.calls += 1
            answer = self._next_answer(messages)
            if "__raw__" in answer:
                outputs.append(answer["__raw__"])
            elif "__missing__" in answer:
                outputs.append(answer["__missing__"])
            elif isinstance(answer, str):
                outputs.append(answer)
            else:
                outputs.append(self._format(answer, messages, kwargs))
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        return LMResponse(outputs=outputs, prompt_tokens=prompt_tokens,
                          completion_tokens=sum(len(o.split()) for o in outputs), cost=0.0, model="dummy")


class _AnySignature:
    """Just enough of a signature for ChatAdapter.format_outputs: every given field is an output."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.output_fields = dict.fromkeys(fields)


def _same_inputs(demo_user: str, current_user: str) -> bool:
    def blocks(text: str) -> dict[str, str]:
        return {m.group(1): m.group(2).strip() for m in re.finditer(r"<(\w+)>\n(.*?)\n</\1>", text, re.S)}

    a, b = blocks(demo_user), blocks(current_user)
    return bool(a) and a == b


def cycle_answers(answers: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Repeat a list of scripted answers to length ``n`` (handy for threaded tests)."""
    return list(itertools.islice(itertools.cycle(answers), n))
