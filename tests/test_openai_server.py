"""The OpenAI-compatible server, called through litellm with LM("openai/...", api_base=...)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Literal

import pydantic
import pytest

from textgrad_like.errors import ConfigurationError
from textgrad_like.lm import LM
from textgrad_like.lm.base import BaseLM, LMResponse
from textgrad_like.lm.openai_server import OpenAICompatibleServer


class ScriptedLM(BaseLM):
    """Answers from the request itself, so the test can check what reached the model."""

    def __init__(self) -> None:
        super().__init__("scripted", cache=False)
        self.seen: list[dict[str, Any]] = []

    def _generate(self, messages: list[dict[str, Any]], **kwargs: Any) -> LMResponse:
        self.seen.append(kwargs)
        if kwargs.get("response_format") is not None:
            text = json.dumps({"answer": "yes", "score": 0.5})
        else:
            text = f"echo: {messages[-1]['content']}"
        n = int(kwargs.get("n") or 1)
        return LMResponse(outputs=[f"{text}" for _ in range(n)], prompt_tokens=3, completion_tokens=2 * n,
                          extra={"finish_reasons": ["stop"] * n})


class Answer(pydantic.BaseModel):
    answer: Literal["yes", "no"]
    score: float


@pytest.fixture()
def scripted_server():
    lm = ScriptedLM()
    with OpenAICompatibleServer(lm, port=0, model_name="scripted") as server:
        yield lm, server


def test_litellm_client_round_trip(scripted_server):
    lm, server = scripted_server
    client = LM("openai/scripted", api_base=server.base_url, api_key="local", cache=False)
    assert client("hi there", temperature=0.3, max_tokens=7) == ["echo: hi there"]
    assert lm.seen[-1]["temperature"] == 0.3 and lm.seen[-1]["max_tokens"] == 7
    replies = client("twice", n=2)
    assert replies == ["echo: twice", "echo: twice"]
    typed = client("json please", response_format=Answer)
    assert Answer.model_validate_json(typed[0]).answer == "yes"
    assert lm.seen[-1]["response_format"]["type"] == "json_schema"
    assert client.history[-1]["usage"]["prompt_tokens"] == 3


def test_models_route_and_errors(scripted_server):
    _, server = scripted_server
    with urllib.request.urlopen(server.base_url + "/models", timeout=10) as reply:
        assert json.load(reply)["data"][0]["id"] == "scripted"
    bad = urllib.request.Request(server.base_url + "/chat/completions", data=b'{"messages": []}',
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(bad, timeout=10)
    assert info.value.code == 400 and "messages" in json.load(info.value)["error"]["message"]
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(server.base_url + "/nowhere", timeout=10)
    assert info.value.code == 404


def test_server_needs_an_lm():
    with pytest.raises(ConfigurationError):
        OpenAICompatibleServer("not an lm")  # type: ignore[arg-type]


@pytest.mark.integration
def test_real_embedded_model_behind_server(embedded_lm):
    with OpenAICompatibleServer(embedded_lm, port=0) as server:
        client = LM("openai/embedded", api_base=server.base_url, api_key="local", cache=False)
        plain = client("What is the capital of France? One word.", temperature=0.0, max_tokens=12)
        assert plain[0].strip()
        typed = client("Is water wet? Answer yes or no with a score.", response_format=Answer, max_tokens=40)
        assert Answer.model_validate_json(typed[0]).answer in ("yes", "no")
