"""``JSONAdapter``: the reply is one JSON object with a key per output field.

For LMs that can enforce a schema (the in-process local LM, and providers with structured
outputs), the adapter passes the outputs' JSON schema as ``response_format`` so the reply
always parses.
"""

from __future__ import annotations

import json
from typing import Any

from .base import Adapter, output_json_schema
from .values import ValueParseError, _jsonable, _loads, parse_value


class JSONAdapter(Adapter):
    name = "JSONAdapter"

    def __init__(self, callbacks: list[Any] | None = None, use_response_format: bool | None = None) -> None:
        super().__init__(callbacks)
        self.use_response_format = use_response_format

    def lm_kwargs(self, lm: Any, signature: Any, lm_kwargs: dict[str, Any]) -> dict[str, Any]:
        wanted = self.use_response_format
        if wanted is None:
            wanted = bool(getattr(lm, "supports_response_schema", False))
        if wanted and "response_format" not in lm_kwargs:
            lm_kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": signature.__name__, "schema": output_json_schema(signature), "strict": True},
            }
        return lm_kwargs

    def format_reply_template(self, signature: Any) -> str:
        keys = []
        for name, info in signature.output_fields.items():
            hint = self.field_hint(info) or "text"
            keys.append(f'  "{name}": <{hint}>')
        return "Reply with a single JSON object and nothing else, with these keys in order:\n{\n" + ",\n".join(keys) + "\n}"

    def reply_reminder(self, signature: Any) -> str:
        return "Reply with the JSON object with keys " + ", ".join(f'"{n}"' for n in signature.output_fields) + "."

    def format_outputs(self, signature: Any, outputs: dict[str, Any]) -> str:
        return json.dumps({k: _jsonable(outputs[k]) for k in signature.output_fields if k in outputs},
                          ensure_ascii=False)

    def parse(self, signature: Any, completion: str) -> dict[str, Any]:
        text = completion.strip()
        start, end = text.find("{"), text.rfind("}")
        if start != -1 and end > start:
            text = text[start:end + 1]
        try:
            data = _loads(text)
        except ValueParseError as exc:
            raise self._error(signature, completion, f"the reply is not a JSON object ({exc})", None, {}) from None
        if not isinstance(data, dict):
            raise self._error(signature, completion, "the reply is not a JSON object", None, {})
        parsed: dict[str, Any] = {}
        for name, info in signature.output_fields.items():
            if name not in data:
                raise self._error(signature, completion, f"key {name!r} is missing", name, parsed)
            value = data[name]
            try:
                parsed[name] = parse_value(value if not isinstance(value, str) else value, info.annotation)
            except ValueParseError as exc:
                raise self._error(signature, completion, str(exc), name, parsed) from None
        return parsed
