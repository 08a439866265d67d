"""``Adapter``: turns a signature, demos and inputs into chat messages, and replies into typed fields."""

from __future__ import annotations

import functools
import logging
from typing import Any

import pydantic

from ..callbacks import with_callbacks, wrap_methods
from ..errors import AdapterParseError
from ..signatures.field import FieldInfo
from ..signatures.types import type_name
from .values import format_output_value, format_value, type_hint

logger = logging.getLogger(__name__)


class Adapter:
    """Base adapter. Subclasses define :meth:`format_reply_template`, :meth:`format_outputs` and :meth:`parse`."""

    _callback_kind = "adapter"
    name = "Adapter"

    def __init__(self, callbacks: list[Any] | None = None) -> None:
        self.callbacks = list(callbacks or [])

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        wrap_methods(cls, "format", "parse")

    # --- the call ---------------------------------------------------------------------------
    def lm_kwargs(self, lm: Any, signature: Any, lm_kwargs: dict[str, Any]) -> dict[str, Any]:
        """Extra LM arguments this adapter wants (e.g. a JSON schema for constrained decoding)."""
        return lm_kwargs

    def __call__(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any, demos: list[Any],
                 inputs: dict[str, Any]) -> list[dict[str, Any]]:
        messages = self.format(signature, demos, inputs)
        outputs = lm(messages=messages, **self.lm_kwargs(lm, signature, dict(lm_kwargs)))
        return [self.parse(signature, text) for text in outputs]

    async def acall(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any, demos: list[Any],
                    inputs: dict[str, Any]) -> list[dict[str, Any]]:
        messages = self.format(signature, demos, inputs)
        outputs = await lm.acall(messages=messages, **self.lm_kwargs(lm, signature, dict(lm_kwargs)))
        return [self.parse(signature, text) for text in outputs]

    # --- formatting ---------------------------------------------------------------------------
    @with_callbacks
    def format(self, signature: Any, demos: list[Any], inputs: dict[str, Any]) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = [{"role": "system", "content": self.format_system(signature)}]
        for demo in demos:
            demo_inputs = {k: demo[k] for k in signature.input_fields if k in demo}
            demo_outputs = {k: demo[k] for k in signature.output_fields if k in demo}
            if not demo_inputs or not demo_outputs:
                continue
            messages.append({"role": "user", "content": self.format_inputs(signature, demo_inputs, demo=True)})
            messages.append({"role": "assistant", "content": self.format_outputs(signature, demo_outputs)})
        messages.append({"role": "user", "content": self.format_inputs(signature, inputs, demo=False)})
        return messages

    def describe_fields(self, fields: dict[str, FieldInfo]) -> str:
        lines = []
        for i, (name, info) in enumerate(fields.items(), 1):
            desc = f": {info.desc}" if info.desc else ""
            lines.append(f"{i}. `{name}` ({type_name(info.annotation)}){desc}")
        return "\n".join(lines)

    def format_system(self, signature: Any) -> str:
        return _system_text(type(self), self, signature)

    def build_system(self, signature: Any) -> str:
        parts = []
        if signature.input_fields:
            parts.append("You receive these input fields:\n" + self.describe_fields(signature.input_fields))
        parts.append("You must produce these output fields:\n" + self.describe_fields(signature.output_fields))
        parts.append(self.format_reply_template(signature))
        parts.append("Your task:\n" + signature.instructions)
        return "\n\n".join(parts)

    def format_inputs(self, signature: Any, inputs: dict[str, Any], demo: bool) -> str:
        blocks = [f"<{name}>\n{format_value(inputs[name])}\n</{name}>" for name in signature.input_fields
                  if name in inputs]
        text = "\n".join(blocks)
        if not demo:
            text += "\n\n" + self.reply_reminder(signature)
        return text

    def reply_reminder(self, signature: Any) -> str:
        return ""

    def format_reply_template(self, signature: Any) -> str:
        raise NotImplementedError

    def format_outputs(self, signature: Any, outputs: dict[str, Any]) -> str:
        raise NotImplementedError

    @staticmethod
    def field_hint(info: FieldInfo) -> str:
        return type_hint(info.annotation)

    @with_callbacks
    def parse(self, signature: Any, completion: str) -> dict[str, Any]:
        raise NotImplementedError

    # --- helpers ------------------------------------------------------------------------------
    def format_finetune_data(self, signature: Any, demos: list[Any], inputs: dict[str, Any],
                             outputs: dict[str, Any]) -> dict[str, Any]:
        """A chat fine-tuning record in this adapter's own format (prompt messages + the reply)."""
        messages = self.format(signature, demos, inputs)
        messages.append({"role": "assistant", "content": self.format_outputs(signature, outputs)})
        return {"messages": messages}

    def _error(self, signature: Any, completion: str, message: str, field: str | None,
               parsed: dict[str, Any]) -> AdapterParseError:
        return AdapterParseError(message, adapter_name=self.name, signature=signature, lm_response=completion,
                                 field=field, parsed_result=parsed)

    @staticmethod
    def render(value: Any) -> str:
        return format_output_value(value)


def _system_text(cls: type, adapter: Adapter, signature: Any) -> str:
    key = (cls, signature)
    text = _SYSTEM_CACHE.get(key)
    if text is None:
        text = adapter.build_system(signature)
        if len(_SYSTEM_CACHE) > 2048:
            _SYSTEM_CACHE.clear()
        _SYSTEM_CACHE[key] = text
    return text


_SYSTEM_CACHE: dict[tuple[type, Any], str] = {}


@functools.lru_cache(maxsize=512)
def _output_model(signature: Any) -> type[pydantic.BaseModel]:
    fields = {name: (info.annotation, ...) for name, info in signature.output_fields.items()}
    return pydantic.create_model(f"{signature.__name__}Outputs", **fields)  # type: ignore[call-overload]


def output_json_schema(signature: Any) -> dict[str, Any]:
    """JSON schema of a signature's outputs (an object with one property per output field)."""
    return _output_model(signature).model_json_schema()
