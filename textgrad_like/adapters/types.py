"""Field types with special meaning to the adapters: ``History`` and ``ToolCalls`` (DSPy's names).

``History`` holds the earlier turns of a conversation. A signature with a ``History`` input field
gets those turns as real user/assistant messages before the current input::

    class QA(Signature):
        question: str = InputField()
        history: History = InputField()
        answer: str = OutputField()

    history = History(messages=[{"question": "Capital of France?", "answer": "Paris"}])
    Predict(QA)(question="And of Germany?", history=history)

Each turn is a dict keyed by the signature's field names: its input fields become the user
message, its output fields the assistant message.

``ToolCalls`` is an output type for the tool calls the LM chose: a list of ``{"name", "args"}``.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from typing import Any, ClassVar

import pydantic


class Type(pydantic.BaseModel):
    """Base class of custom field types (DSPy's ``dspy.Type``): a pydantic model that says how it is
    shown to the LM with :meth:`format` (text). Its class docstring is for developers: it is kept out
    of the JSON schema sent to the LM unless the schema description is set explicitly
    (``model_config = ConfigDict(json_schema_extra={"description": ...})``).
    """

    def format(self) -> Any:
        """How the value is written into a prompt (text); the JSON of its fields by default."""
        return self.model_dump_json()

    def format_for_prompt(self) -> str:
        out = self.format()
        return out if isinstance(out, str) else json.dumps(out, ensure_ascii=False, default=str)

    @classmethod
    def description(cls) -> str:
        """What the LM is told about this type (empty: nothing)."""
        return ""

    @pydantic.model_serializer(mode="wrap")
    def _serialize(self, handler: Any, info: pydantic.SerializationInfo) -> Any:
        if isinstance(info.context, dict) and info.context.get("textgrad_like_prompt"):
            return self.format_for_prompt()  # inside a prompt: as the type shows itself
        return handler(self)

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> Any:
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        extra = cls.model_config.get("json_schema_extra")
        explicit = isinstance(extra, dict) and "description" in extra
        if cls.__doc__ and not explicit and target.get("description") == inspect.cleandoc(cls.__doc__):
            del target["description"]
        return schema


class History(pydantic.BaseModel):
    """The earlier turns of a conversation: ``History(messages=[{field: value, ...}, ...])``."""

    messages: list[dict[str, Any]]

    model_config = pydantic.ConfigDict(frozen=True, str_strip_whitespace=True, validate_assignment=True,
                                       extra="forbid")


class ToolCalls(pydantic.BaseModel):
    """Tool calls chosen by the LM: ``ToolCalls(tool_calls=[ToolCalls.ToolCall(name=..., args={...})])``."""

    class ToolCall(pydantic.BaseModel):
        name: str
        args: dict[str, Any] = pydantic.Field(default_factory=dict)

        def execute(self, functions: dict[str, Any] | list[Any] | None = None) -> Any:
            """Run the named function (from ``functions``: a dict name → callable, or tools/callables)."""
            from ..errors import ToolError

            table: dict[str, Any] = {}
            if isinstance(functions, dict):
                table = dict(functions)
            elif functions:
                for fn in functions:
                    table[getattr(fn, "name", None) or getattr(fn, "__name__", "")] = fn
            if self.name not in table:
                raise ToolError(f"No tool named {self.name!r}; available: {sorted(table)}.")
            return table[self.name](**self.args)

    tool_calls: list[ToolCall]

    @pydantic.model_validator(mode="before")
    @classmethod
    def _accept_shapes(cls, data: Any) -> Any:
        """Accept ``{"tool_calls": [...]}``, a bare list of calls, one call, or OpenAI's function-call shape."""
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                return data
        if isinstance(data, dict) and "tool_calls" not in data and "name" in data:
            data = [data]
        if isinstance(data, list):
            data = {"tool_calls": data}
        if isinstance(data, dict) and isinstance(data.get("tool_calls"), list):
            data = {**data, "tool_calls": [_normalise_call(c) for c in data["tool_calls"]]}
        return data

    @classmethod
    def description(cls) -> str:
        """How a reply should write tool calls (shown in the system message of a ``ToolCalls`` field)."""
        return ('Write the tool calls as JSON: {"tool_calls": [{"name": "<tool name>", "args": {<argument: value>}}]}; '
                "use an empty list when no tool is needed.")

    @classmethod
    def from_dict_list(cls, tool_calls_dicts: list[dict[str, Any]]) -> ToolCalls:
        """``ToolCalls.from_dict_list([{"name": "search", "args": {"q": "x"}}])``."""
        return cls.model_validate({"tool_calls": list(tool_calls_dicts)})


class Code(Type):
    """Source code as a field type: ``code: Code = OutputField()``; ``Code["sql"]`` names the language.

    As an input it is shown as the code text; as an output the reply's code (fenced or not) becomes
    ``Code(code=...)``.
    """

    code: str
    language: ClassVar[str] = "python"

    @pydantic.model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"code": _strip_code_fence(data)}
        if isinstance(data, dict) and isinstance(data.get("code"), str):
            return {**data, "code": _strip_code_fence(data["code"])}
        return data

    @classmethod
    def from_text(cls, text: str) -> Code:
        """The value of a reply's text (a fenced block or plain code)."""
        return cls(code=_strip_code_fence(text))

    @classmethod
    def description(cls) -> str:
        return f"{cls.language} source code; write only the code, in a ```{cls.language.lower()} fenced block or plain"

    def format(self) -> str:
        return self.code

    def __class_getitem__(cls, language: Any) -> Any:  # type: ignore[override]
        if isinstance(language, str):
            return _code_for(language)
        return super().__class_getitem__(language)  # type: ignore[misc]


@functools.lru_cache(maxsize=64)
def _code_for(language: str) -> type[Code]:
    return type(f"Code_{re.sub(r'[^0-9A-Za-z_]', '_', language)}", (Code,), {"language": language,
                                                                         "__module__": __name__})


def _strip_code_fence(text: str) -> str:
    """The code of a reply: the first fenced block when there is one (text around it is dropped), else
    the text unchanged."""
    match = re.search(r"```[^\n`]*\n(.*?)\n?```", text, re.S)
    return match.group(1).strip("\n") if match else text


def _normalise_call(call: Any) -> Any:
    if isinstance(call, dict) and "function" in call and isinstance(call["function"], dict):
        function = call["function"]
        args = function.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except ValueError:
                pass
        return {"name": function.get("name"), "args": args}
    if isinstance(call, dict) and "args" not in call and "arguments" in call:
        return {"name": call.get("name"), "args": call["arguments"]}
    return call


def history_field_name(signature: Any) -> str | None:
    """The name of the signature's ``History`` input field, if it has one."""
    for name, info in signature.input_fields.items():
        if info.annotation is History:
            return name
    return None


# Where an Image sits inside a formatted prompt text; the adapters split the text there into an
# ``image_url`` content part (``split_image_parts``). Only written when formatting a prompt.
_IMAGE_OPEN, _IMAGE_CLOSE = "[[textgrad_like.image:", ":textgrad_like.image]]"
_IMAGE_MARK = re.compile(re.escape(_IMAGE_OPEN) + r"(.*?)" + re.escape(_IMAGE_CLOSE), re.S)
PROMPT_CONTEXT = {"textgrad_like_prompt": True}  # pydantic serialization context of prompt formatting


class Image(Type):
    """An image input: ``Image("https://.../cat.jpg")``, ``Image(url="data:image/png;base64,...")``, a local
    file path (read and inlined as a data URI) or raw ``bytes`` (PNG assumed unless ``mime_type`` is given).

    The adapters send it as an ``image_url`` content part of the user message, wherever it sits in an
    input value (also inside lists and pydantic models). The URL is never fetched by the library.
    """

    url: str

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    def __init__(self, source: Any = None, /, **data: Any) -> None:
        if source is not None:
            data = {**data, "url": source}
        super().__init__(**data)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _from_source(cls, data: Any) -> Any:
        if isinstance(data, (str, bytes, bytearray)):
            data = {"url": data}
        if isinstance(data, dict) and "url" in data:
            data = dict(data)
            mime = data.pop("mime_type", None) or "image/png"
            data["url"] = _image_url(data["url"], mime)
        return data

    @classmethod
    def description(cls) -> str:
        return "an image (sent to the model as an image)"

    def format_for_prompt(self) -> str:
        return f"{_IMAGE_OPEN}{self.url}{_IMAGE_CLOSE}"

    def format(self) -> list[dict[str, Any]]:
        """The OpenAI content part(s) for this image."""
        return [{"type": "image_url", "image_url": {"url": self.url}}]

    def __repr__(self) -> str:
        if self.url.startswith("data:") and ";base64," in self.url:
            head, data = self.url.split(";base64,", 1)
            return f"Image(url={head};base64,<IMAGE_BASE_64_ENCODED({len(data)})>)"
        return f"Image(url={self.url})"

    __str__ = __repr__


def _image_url(source: Any, mime: str) -> str:
    import base64
    import mimetypes
    import os

    if isinstance(source, (bytes, bytearray)):
        return f"data:{mime};base64,{base64.b64encode(bytes(source)).decode('ascii')}"
    if not isinstance(source, str) or not source:
        raise ValueError("Image needs a URL, a data URI, a file path or bytes.")
    if "://" in source or source.startswith("data:"):
        return source
    if os.path.isfile(source):
        guessed = mimetypes.guess_type(source)[0] or mime
        with open(source, "rb") as handle:
            return f"data:{guessed};base64,{base64.b64encode(handle.read()).decode('ascii')}"
    raise ValueError(f"Image source {source[:80]!r} is neither a URL, a data URI nor an existing file.")


def split_image_parts(content: str) -> str | list[dict[str, Any]]:
    """``content`` unchanged when it holds no image, else OpenAI content parts: text parts and one
    ``image_url`` part per image, in order."""
    if _IMAGE_OPEN not in content:
        return content
    parts: list[dict[str, Any]] = []
    last = 0
    for match in _IMAGE_MARK.finditer(content):
        text = content[last:match.start()]
        if text.strip():
            parts.append({"type": "text", "text": text})
        parts.append({"type": "image_url", "image_url": {"url": match.group(1)}})
        last = match.end()
    if content[last:].strip():
        parts.append({"type": "text", "text": content[last:]})
    return parts
