"""Tool: schema inference, validation and coercion, async calls, litellm format, callbacks."""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Literal

import pydantic
import pytest

from textgrad_like.callbacks import BaseCallback
from textgrad_like.errors import ToolError
from textgrad_like.settings import settings
from textgrad_like.tools import Tool


class Point(pydantic.BaseModel):
    x: int
    y: int = 0


def search(query: str, k: int = 3, mode: Literal["fast", "full"] = "fast") -> list[str]:
    """Search the corpus.

    Returns passages."""
    return [f"{query}:{i}:{mode}" for i in range(k)]


def shift(points: list[Point], dx: int) -> list[int]:
    """Shift points along x."""
    return [p.x + dx for p in points]


def test_infers_name_description_and_schema() -> None:
    tool = Tool(search)
    assert tool.name == "search"
    assert tool.desc == "Search the corpus.\n\nReturns passages."
    assert tool.args == {
        "query": {"type": "string"},
        "k": {"type": "integer", "default": 3},
        "mode": {"enum": ["fast", "full"], "type": "string", "default": "fast"},
    }
    assert tool.arg_types["k"] is int
    assert tool.has_kwargs is False


def test_pydantic_args_schema_is_inlined_and_values_are_models() -> None:
    tool = Tool(shift)
    schema = tool.args["points"]
    assert schema["type"] == "array"
    assert schema["items"]["properties"]["x"]["type"] == "integer"
    assert "$ref" not in str(schema) and "$defs" not in str(schema)
    assert tool(points=[{"x": 1}, {"x": 5, "y": 2}], dx=2) == [3, 7]


def test_explicit_name_desc_args_and_arg_desc() -> None:
    tool = Tool(search, name="lookup", desc="Find things.", arg_desc={"query": "what to look for"})
    assert tool.name == "lookup"
    assert tool.desc == "Find things."
    assert tool.args["query"] == {"type": "string", "description": "what to look for"}

    custom = Tool(lambda **kw: kw, name="echo", desc="Echo.", args={"a": {"type": "integer"}})
    assert custom.args == {"a": {"type": "integer"}}
    assert custom(a="7") == {"a": 7}  # type from the JSON schema when the function has none


def test_coerces_arguments_written_by_an_lm() -> None:
    tool = Tool(search)
    assert tool(query="cats", k="2") == ["cats:0:fast", "cats:1:fast"]
    assert tool(query=42, k=1) == ["42:0:fast"]  # a number for a str argument becomes text
    assert Tool(shift)(points='[{"x": 1}]', dx="1") == [2]  # JSON text for a list argument


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"query": "a", "k": "many"}, "argument 'k' is invalid"),
        ({"query": "a", "mode": "slow"}, "argument 'mode' is invalid"),
        ({"k": 1}, "missing required argument(s) ['query']"),
        ({"query": "a", "limit": 3}, "unknown argument(s) ['limit']"),
    ],
)
def test_invalid_arguments_raise_tool_error(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ToolError) as info:
        Tool(search)(**kwargs)
    message = str(info.value)
    assert fragment in message
    assert "'search'" in message and "It takes:" in message


def test_var_kwargs_accept_extra_arguments() -> None:
    def anything(a: int, **rest: Any) -> dict[str, Any]:
        return {"a": a, **rest}

    tool = Tool(anything)
    assert tool.has_kwargs is True
    assert set(tool.args) == {"a"}
    assert tool(a="1", extra="x") == {"a": 1, "extra": "x"}


def test_callable_objects_and_partials() -> None:
    class Counter:
        """Count words."""

        def __call__(self, text: str) -> int:
            return len(text.split())

    tool = Tool(Counter())
    assert (tool.name, tool.desc, tool.args) == ("Counter", "Count words.", {"text": {"type": "string"}})
    assert tool(text="a b c") == 3

    part = Tool(functools.partial(search, k=1))
    assert part.name == "search"
    assert part.args["k"]["default"] == 1
    assert part(query="q") == ["q:0:fast"]


def test_tool_wrapping_a_tool_keeps_the_function() -> None:
    assert Tool(Tool(search)).func is search


def test_format_as_litellm_function_call() -> None:
    spec = Tool(search).format_as_litellm_function_call()
    assert spec["type"] == "function"
    assert spec["function"]["name"] == "search"
    assert spec["function"]["description"].startswith("Search the corpus.")
    params = spec["function"]["parameters"]
    assert params["type"] == "object"
    assert params["required"] == ["query"]
    assert set(params["properties"]) == {"query", "k", "mode"}


def test_str_describes_the_tool_for_prompts() -> None:
    text = str(Tool(search))
    assert text.startswith("search: Search the corpus. Returns passages.")
    assert '"query": {"type": "string"}' in text


async def test_acall_runs_sync_and_async_functions() -> None:
    async def fetch(url: str, retries: int = 1) -> str:
        await asyncio.sleep(0)
        return f"{url}#{retries}"

    assert await Tool(fetch).acall(url="u", retries="2") == "u#2"
    assert await Tool(search).acall(query="q", k=1) == ["q:0:fast"]
    with pytest.raises(ToolError, match="bad arguments"):
        await Tool(fetch).acall(retries=1)


def test_sync_call_of_async_tool_needs_opt_in() -> None:
    async def fetch(url: str) -> str:
        return url.upper()

    tool = Tool(fetch)
    with pytest.raises(ToolError, match="acall"):
        tool(url="x")
    with settings.context(allow_tool_async_sync_conversion=True):
        assert tool(url="x") == "X"


def test_tool_errors_from_the_function_propagate_unchanged() -> None:
    def broken(x: int) -> int:
        raise KeyError("nope")

    with pytest.raises(KeyError):
        Tool(broken)(x=1)


class Recorder(BaseCallback):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.events.append(("start", (instance.name, inputs)))

    def on_tool_end(self, call_id: str, outputs: Any | None, exception: Exception | None = None) -> None:
        self.events.append(("end", (outputs, type(exception).__name__ if exception else None)))

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.events.append(("module", instance))


def test_callbacks_see_tool_calls_and_failures() -> None:
    recorder = Recorder()
    settings.configure(callbacks=[recorder])
    tool = Tool(search)
    tool(query="q", k=1)
    with pytest.raises(ToolError):
        tool(query="q", k="x")
    assert recorder.events == [  # DSPy's shape: the bound arguments of Tool.__call__(**kwargs)
        ("start", ("search", {"kwargs": {"query": "q", "k": 1}})),
        ("end", (["q:0:fast"], None)),
        ("start", ("search", {"kwargs": {"query": "q", "k": "x"}})),
        ("end", (None, "ToolError")),
    ]


def test_non_callable_is_rejected() -> None:
    with pytest.raises(ToolError, match="callable"):
        Tool(42)  # type: ignore[arg-type]
