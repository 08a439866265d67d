"""``ChatAdapter``: fields are written as tagged blocks, ``<answer>...</answer>``.

Tags are easy for small models to copy and cheap to parse; each value inside is parsed into the
field's declared type. When the reply cannot be parsed, the adapter retries the call once with
the :class:`JSONAdapter` (only on a parse failure, never on an LM error); the retry is tagged in
the LM history and can be switched off with ``use_json_adapter_fallback=False``.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any

from ..errors import AdapterParseError
from ..settings import settings
from ..signatures.types import strip_optional
from .base import Adapter

logger = logging.getLogger(__name__)


class ChatAdapter(Adapter):
    name = "ChatAdapter"

    def __init__(self, callbacks: list[Any] | None = None, use_json_adapter_fallback: bool = True) -> None:
        super().__init__(callbacks)
        self.use_json_adapter_fallback = use_json_adapter_fallback

    def __call__(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any, demos: list[Any],
                 inputs: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            return super().__call__(lm, lm_kwargs, signature, demos, inputs)
        except AdapterParseError as exc:
            with self._json_fallback(exc) as fallback:
                return fallback(lm, lm_kwargs, signature, demos, inputs)

    async def acall(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any, demos: list[Any],
                    inputs: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            return await super().acall(lm, lm_kwargs, signature, demos, inputs)
        except AdapterParseError as exc:
            with self._json_fallback(exc) as fallback:
                return await fallback.acall(lm, lm_kwargs, signature, demos, inputs)

    @contextlib.contextmanager
    def _json_fallback(self, exc: AdapterParseError) -> Iterator[Adapter]:
        """The retry after a reply that did not parse (shared by ``__call__`` and ``acall``): a JSONAdapter,
        its LM calls tagged ``adapter_fallback`` in the history; re-raises ``exc`` when the fallback is off."""
        if not self.use_json_adapter_fallback:
            raise exc
        logger.info("ChatAdapter could not parse the reply (%s); retrying with JSONAdapter.", exc.field)
        from .json_adapter import JSONAdapter

        with settings.context(history_tags={"adapter_fallback": "JSONAdapter"}):
            yield JSONAdapter(callbacks=self.callbacks)

    def format_reply_template(self, signature: Any) -> str:
        lines = ["Write your reply as one tagged block per output field, in this order:"]
        for name, info in signature.output_fields.items():
            hint = self.field_hint(info)
            lines.append(f"<{name}>\n{{{hint or name}}}\n</{name}>")
        return "\n".join(lines)

    def reply_reminder(self, signature: Any) -> str:
        tags = ", ".join(f"<{name}>" for name in signature.output_fields)
        return f"Reply with the blocks {tags}, each closed by its end tag."

    def format_outputs(self, signature: Any, outputs: dict[str, Any]) -> str:
        return "\n".join(f"<{name}>\n{self.render(outputs[name])}\n</{name}>"
                         for name in signature.output_fields if name in outputs)

    def parse(self, signature: Any, completion: str) -> dict[str, Any]:
        """Read each output field from its ``<name>...</name>`` block (DSPy's ``[[ ## name ## ]]``
        sections are read too). One scan over the reply finds every marker, so the time is linear in
        its length whatever it contains. An ``Optional`` field the reply leaves out is ``None``."""
        names = list(signature.output_fields)
        sections = _sections(completion, names)
        parsed: dict[str, Any] = {}
        for name in names:
            raw = sections.get(name)
            if raw is None:
                if strip_optional(signature.output_fields[name].annotation)[1]:
                    parsed[name] = None
                    continue
                raise self._error(signature, completion, f"no <{name}> block in the reply", name, parsed)
            parsed[name] = self.parse_field(signature, completion, name, raw.strip(), parsed)
        return parsed


_MARKERS = re.compile(r"<(/?)([A-Za-z_]\w*)>|\[\[ ## ([A-Za-z_]\w*) ## \]\]")


def _sections(completion: str, names: list[str]) -> dict[str, str]:
    """The raw text of each output field in ``completion``.

    ``<name>`` opens a field; its value ends at the first ``</name>`` after it, or else at the next
    marker that opens another field (or the end). A DSPy marker ``[[ ## name ## ]]`` opens a field
    whose value ends at the next marker of either kind. The first occurrence of a field wins.
    """
    known = set(names)
    markers = []  # (start, end, kind, name) with kind "open", "close" or "dspy"
    for match in _MARKERS.finditer(completion):
        if match.group(3) is not None:
            markers.append((match.start(), match.end(), "dspy", match.group(3)))
        elif match.group(2) in known:
            markers.append((match.start(), match.end(), "close" if match.group(1) else "open", match.group(2)))
    sections: dict[str, str] = {}
    for i, (_, end, kind, name) in enumerate(markers):
        if kind == "close" or name not in known or name in sections:
            continue
        stop = len(completion)
        for start2, _, kind2, name2 in markers[i + 1:]:
            if kind == "open" and kind2 == "close" and name2 == name:
                stop = start2
                break
            if kind2 == "dspy" or (kind2 == "open" and name2 != name):
                stop = start2
                break
        sections[name] = completion[end:stop]
    return sections
