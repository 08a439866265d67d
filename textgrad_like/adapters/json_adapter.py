"""``JSONAdapter``: the reply is one JSON object with a key per output field.

For LMs that can enforce a schema (the in-process local LM, and providers with structured
outputs according to ``litellm.supports_response_schema``), the adapter passes the outputs' JSON
schema as ``response_format`` so the reply parses. An ``Optional`` field left out is ``None``.
"""

from __future__ import annotations

import json
from typing import Any

from ..lm.lm import provider_supports_response_schema
from ..signatures.types import strip_optional
from .base import Adapter, output_json_schema
from .values import ValueParseError, _jsonable, _loads


class JSONAdapter(Adapter):
    name = "JSONAdapter"

    def __init__(self, callbacks: list[Any] | None = None, use_response_format: bool | None = None) -> None:
        super().__init__(callbacks)
        self.use_response_format = use_response_format

    def lm_kwargs(self, lm: Any, signature: Any, lm_kwargs: dict[str, Any]) -> dict[str, Any]:
        """Add the outputs' JSON schema as ``response_format`` when the LM can enforce it: an LM that
        says so (``supports_response_schema = True``, e.g. the local LM) or a provider model for which
        ``litellm.supports_response_schema`` is true."""
        if "response_format" in lm_kwargs:
            return lm_kwargs
        wanted = self.use_response_format
        declared = getattr(lm, "supports_response_schema", None)
        strict = bool(declared)
        if wanted is None:
            wanted = bool(declared) if declared is not None else provider_supports_response_schema(lm)
        if wanted:
            lm_kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": _schema_name(signature), "schema": output_json_schema(signature),
                                "strict": strict},
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
                if strip_optional(info.annotation)[1]:  # an Optional field left out is None
                    parsed[name] = None
                    continue
                raise self._error(signature, completion, f"key {name!r} is missing", name, parsed)
            parsed[name] = self.parse_field(signature, completion, name, data[name], parsed)
        return parsed


def _schema_name(signature: Any) -> str:
    """A response-format name providers accept (letters, digits, ``_`` and ``-``, at most 64)."""
    name = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in signature.__name__)
    return (name or "outputs")[:64]
