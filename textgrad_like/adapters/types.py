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
import json
import re
from typing import Any, ClassVar

import pydantic


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


class Code(pydantic.BaseModel):
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
        return data

    @classmethod
    def from_text(cls, text: str) -> Code:
        """The value of a reply's text (a fenced block or plain code)."""
        return cls(code=_strip_code_fence(text))

    @classmethod
    def description(cls) -> str:
        return f"{cls.language} source code; write only the code, in a ```{cls.language.lower()} fenced block or plain"

    def format_for_prompt(self) -> str:
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
    stripped = text.strip()
    match = re.match(r"^```[^\n`]*\n(.*?)\n?```\s*$", stripped, re.S)
    return match.group(1) if match else stripped


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
