"""``ChatAdapter``: fields are written as tagged blocks, ``<answer>...</answer>``.

Tags are easy for small models to copy and cheap to parse; each value inside is parsed into the
field's declared type. When the reply cannot be parsed, the adapter retries the call once with
the :class:`JSONAdapter` (only on a parse failure, never on an LM error); the retry is tagged in
the LM history and can be switched off with ``use_json_adapter_fallback=False``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from ..errors import AdapterParseError
from ..settings import settings
from .base import Adapter
from .values import ValueParseError, parse_value

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
            if not self.use_json_adapter_fallback:
                raise
            logger.info("ChatAdapter could not parse the reply (%s); retrying with JSONAdapter.", exc.field)
            from .json_adapter import JSONAdapter

            with settings.context(history_tags={"adapter_fallback": "JSONAdapter"}):
                return JSONAdapter(callbacks=self.callbacks)(lm, lm_kwargs, signature, demos, inputs)

    async def acall(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any, demos: list[Any],
                    inputs: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            return await super().acall(lm, lm_kwargs, signature, demos, inputs)
        except AdapterParseError:
            if not self.use_json_adapter_fallback:
                raise
            from .json_adapter import JSONAdapter

            with settings.context(history_tags={"adapter_fallback": "JSONAdapter"}):
                return await JSONAdapter(callbacks=self.callbacks).acall(lm, lm_kwargs, signature, demos, inputs)

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
        parsed: dict[str, Any] = {}
        names = list(signature.output_fields)
        for index, name in enumerate(names):
            info = signature.output_fields[name]
            match = re.search(rf"<{name}>\s*(.*?)\s*</{name}>", completion, re.S)
            if match is None:
                # tolerate a missing end tag: the value runs to the next known tag or the end
                start = re.search(rf"<{name}>", completion)
                if start is None:
                    raise self._error(signature, completion, f"no <{name}> block in the reply", name, parsed)
                rest = completion[start.end():]
                nxt = [m.start() for n in names[index + 1:] for m in [re.search(rf"<{n}>", rest)] if m]
                raw = rest[: min(nxt)] if nxt else rest
            else:
                raw = match.group(1)
            try:
                parsed[name] = parse_value(raw.strip(), info.annotation)
            except ValueParseError as exc:
                raise self._error(signature, completion, str(exc), name, parsed) from None
        return parsed
