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
from .types import history_field_name, split_image_parts
from .values import (
    ValueParseError,
    check_constraints,
    describe_constraints,
    format_output_value,
    format_value,
    parse_value,
    type_hint,
)

logger = logging.getLogger(__name__)


class Adapter:
    """Base adapter. Subclasses define :meth:`format_reply_template` (the reply structure),
    :meth:`format_outputs` (outputs written in that structure) and :meth:`parse`.

    DSPy's public methods (``format_system_message``, ``format_field_description``,
    ``format_field_structure``, ``format_task_description``, ``format_user_message_content``,
    ``format_assistant_message_content``, ``format_demos``, ``format_conversation_history``,
    ``format``, ``parse``, ``__call__``/``acall``) exist with DSPy's arguments and may be overridden.
    """

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

    # ``__call__`` and ``acall`` share the steps before (:meth:`_request`) and after (parsing) the LM
    # call; only that call differs.
    def __call__(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any, demos: list[Any],
                 inputs: dict[str, Any]) -> list[dict[str, Any]]:
        messages, kwargs = self._request(lm, lm_kwargs, signature, demos, inputs)
        return [self.parse(signature, text) for text in lm(messages=messages, **kwargs)]

    async def acall(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any, demos: list[Any],
                    inputs: dict[str, Any]) -> list[dict[str, Any]]:
        messages, kwargs = self._request(lm, lm_kwargs, signature, demos, inputs)
        return [self.parse(signature, text) for text in await lm.acall(messages=messages, **kwargs)]

    def _request(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any, demos: list[Any],
                 inputs: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The messages and the LM arguments of one call."""
        return self.format(signature, demos, inputs), self.lm_kwargs(lm, signature, dict(lm_kwargs))

    # --- formatting (DSPy's public adapter methods; the wording is ours) ---------------------------
    @with_callbacks
    def format(self, signature: Any, demos: list[Any], inputs: dict[str, Any]) -> list[dict[str, Any]]:
        """Messages for one call: system message, demos as user/assistant turns, the conversation
        history (a :class:`History` input), then the current inputs."""
        inputs = dict(inputs)
        history_field = history_field_name(signature)
        full = signature
        if history_field is not None:
            signature = _without_field(signature, history_field)
        messages: list[dict[str, Any]] = [{"role": "system", "content": self.format_system_message(signature)}]
        messages.extend(self.format_demos(signature, demos))
        if history_field is not None:
            messages.extend(self.format_conversation_history(full, history_field, inputs))
        messages.append({"role": "user", "content": self.format_user_message_content(signature, inputs,
                                                                                      main_request=True)})
        for message in messages:  # an Image anywhere in a user message becomes an image_url content part
            if message["role"] == "user" and isinstance(message["content"], str):
                message["content"] = split_image_parts(message["content"])
        return messages

    def format_system_message(self, signature: Any) -> str:
        """The system message: field descriptions, the reply structure and the task."""
        return _system_text(type(self), self, signature)

    def format_field_description(self, signature: Any) -> str:
        parts = []
        if signature.input_fields:
            parts.append("You receive these input fields:\n" + self.describe_fields(signature.input_fields))
        parts.append("You must produce these output fields:\n" + self.describe_fields(signature.output_fields))
        return "\n\n".join(parts)

    def format_field_structure(self, signature: Any) -> str:
        return self.format_reply_template(signature)

    def format_task_description(self, signature: Any) -> str:
        return "Your task:\n" + signature.instructions

    def build_system(self, signature: Any) -> str:
        return "\n\n".join([self.format_field_description(signature), self.format_field_structure(signature),
                             self.format_task_description(signature)])

    def describe_fields(self, fields: dict[str, FieldInfo]) -> str:
        lines = []
        for i, (name, info) in enumerate(fields.items(), 1):
            desc = f": {info.desc}" if info.desc else ""
            rules = describe_constraints(info)
            about = type_hint(info.annotation) if info.is_input and _is_special_type(info.annotation) else ""
            lines.append(f"{i}. `{name}` ({type_name(info.annotation)}){desc}{f' [{rules}]' if rules else ''}"
                         f"{f' — {about}' if about else ''}")
        return "\n".join(lines)

    def format_user_message_content(self, signature: Any, inputs: dict[str, Any], prefix: str = "",
                                    suffix: str = "", main_request: bool = False) -> str:
        """The inputs as one user message (``main_request``: the current call, with the reply reminder)."""
        blocks = [f"<{name}>\n{format_value(inputs[name])}\n</{name}>" for name in signature.input_fields
                  if name in inputs]
        parts = [prefix.strip(), "\n".join(blocks)] if prefix.strip() else ["\n".join(blocks)]
        text = "\n".join(p for p in parts if p)
        if main_request:
            reminder = self.reply_reminder(signature)
            if reminder:
                text += "\n\n" + reminder
        if suffix.strip():
            text += "\n\n" + suffix.strip()
        return text

    def format_assistant_message_content(self, signature: Any, outputs: dict[str, Any],
                                         missing_field_message: str | None = None) -> str:
        """The outputs as one assistant message (a demo or a past turn)."""
        if missing_field_message is not None:
            outputs = {name: outputs.get(name, missing_field_message) for name in signature.output_fields}
        return self.format_outputs(signature, outputs)

    def format_demos(self, signature: Any, demos: list[Any]) -> list[dict[str, Any]]:
        """Few-shot demos as user/assistant turns (a demo without inputs or outputs is skipped)."""
        messages: list[dict[str, Any]] = []
        for demo in demos:
            demo_inputs = {k: demo[k] for k in signature.input_fields if k in demo}
            demo_outputs = {k: demo[k] for k in signature.output_fields if k in demo}
            if not demo_inputs or not demo_outputs:
                continue
            messages.append({"role": "user", "content": self.format_user_message_content(signature, demo_inputs)})
            messages.append({"role": "assistant",
                             "content": self.format_assistant_message_content(signature, demo_outputs)})
        return messages

    def format_conversation_history(self, signature: Any, history_field_name: str,
                                    inputs: dict[str, Any]) -> list[dict[str, Any]]:
        """The turns of a :class:`History` input as user/assistant messages; removes it from ``inputs``."""
        history = inputs.pop(history_field_name, None)
        turns = getattr(history, "messages", None)
        if turns is None and isinstance(history, dict):
            turns = history.get("messages")
        if not turns:
            return []
        rest = _without_field(signature, history_field_name)
        messages: list[dict[str, Any]] = []
        for turn in turns:
            if not isinstance(turn, dict):
                continue
            turn_inputs = {k: v for k, v in turn.items() if k in rest.input_fields}
            turn_outputs = {k: v for k, v in turn.items() if k in rest.output_fields}
            if turn_inputs:
                messages.append({"role": "user", "content": self.format_user_message_content(rest, turn_inputs)})
            if turn_outputs:
                messages.append({"role": "assistant",
                                 "content": self.format_assistant_message_content(rest, turn_outputs)})
        return messages

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
        messages.append({"role": "assistant", "content": self.format_assistant_message_content(signature, outputs)})
        return {"messages": messages}

    def parse_field(self, signature: Any, completion: str, name: str, raw: Any, parsed: dict[str, Any]) -> Any:
        """One output value parsed into its field's type and checked against its constraints."""
        info = signature.output_fields[name]
        try:
            return check_constraints(parse_value(raw, info.annotation), info)
        except ValueParseError as exc:
            raise self._error(signature, completion, str(exc), name, parsed) from None

    def _error(self, signature: Any, completion: str, message: str, field: str | None,
               parsed: dict[str, Any]) -> AdapterParseError:
        return AdapterParseError(message, adapter_name=self.name, signature=signature, lm_response=completion,
                                 field=field, parsed_result=parsed)

    @staticmethod
    def render(value: Any) -> str:
        return format_output_value(value)


def _is_special_type(annotation: Any) -> bool:
    """A type that describes itself (``Code``, ``ToolCalls``: a ``description()`` classmethod)."""
    return isinstance(annotation, type) and callable(getattr(annotation, "description", None))


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


@functools.lru_cache(maxsize=256)
def _without_field(signature: Any, name: str) -> Any:
    return signature.delete(name)


@functools.lru_cache(maxsize=512)
def _output_model(signature: Any) -> type[pydantic.BaseModel]:
    fields = {name: (info.annotation, ...) for name, info in signature.output_fields.items()}
    return pydantic.create_model(f"{signature.__name__}Outputs", **fields)  # type: ignore[call-overload]


def output_json_schema(signature: Any) -> dict[str, Any]:
    """JSON schema of a signature's outputs (an object with one property per output field)."""
    return _output_model(signature).model_json_schema()
