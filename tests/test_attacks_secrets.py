"""Attacks on credentials (issue 18, item 4).

A key passed per call, configured under any credential name litellm accepts (``api_token``,
``client_secret``, ``azure_password``...), set on one predictor, or written inside ``api_base``
(``https://user:pass@host``) must never reach span attributes, LM history, the cache, checkpoint
files, logs, saved programs (JSON or pickle) or error messages — even when the server echoes the
key back in a 401 body.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from pathlib import Path
from typing import Any

import pytest

import textgrad_like as dspy
from textgrad_like.errors import LMError
from textgrad_like.lm.base import GLOBAL_HISTORY
from textgrad_like.lm.cache import cache_key, configure_cache
from textgrad_like.lm.secrets import (
    CREDENTIAL_NAMES,
    is_secret_key,
    redact_mapping,
    redact_text,
    redact_url,
    secret_values,
    strip_mapping,
)
from textgrad_like.optim.checkpoint import Checkpoint
from textgrad_like.utils import DummyLM

from .fake_openai_server import FakeOpenAI

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch when litellm is imported here
SECRET = "sk-live-HUSH-0a1b2c3d4e5f6789"
FRAGMENTS = (SECRET, SECRET[3:], SECRET[-12:])
# every name litellm accepts for a credential, and some spellings a user may reach for
NAMES = sorted({"api_key", "api_token", "client_secret", "azure_password", "azure_ad_token", "aws_secret_access_key",
                "aws_session_token", "vertex_credentials", "token", "password", "api_secret", "apiKey",
                "anthropic_identity_token", "s3_secret_access_key", "langfuse_secret_key", "my_service_token"})


def leaks(blob: Any) -> list[str]:
    if isinstance(blob, bytes):
        data = blob
    else:
        data = (blob if isinstance(blob, str) else json.dumps(blob, default=repr)).encode("utf-8", "surrogatepass")
    return [f for f in FRAGMENTS if f.encode() in data]


def files_leaking(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and leaks(p.read_bytes())]


def span_text(exporter: Any) -> str:
    parts = []
    for span in exporter.get_finished_spans():
        parts.append(json.dumps(dict(span.attributes or {}), default=repr))
        parts.append(str(span.status.description))
        for event in span.events:
            parts.append(json.dumps(dict(event.attributes or {}), default=repr))
    return "\n".join(parts)


# --- the redaction module -------------------------------------------------------------------------------------------

def test_every_litellm_credential_name_is_a_secret_and_counts_are_not():
    assert all(is_secret_key(name) for name in CREDENTIAL_NAMES | set(NAMES))
    for name in ("x-api-key", "Authorization", "Ocp-Apim-Subscription-Key", "clientSecret", "AZURE_PASSWORD"):
        assert is_secret_key(name), name
    for name in ("max_tokens", "max_completion_tokens", "temperature", "n", "model", "messages", "rollout_id",
                 "api_base", "stop", "top_p", "seed", "response_format", "signature", "instructions"):
        assert not is_secret_key(name), name


def test_litellm_credential_parameters_are_all_covered():
    """The credential fields litellm declares (``CredentialLiteLLMParams``) are all secrets by our test."""
    try:
        from litellm.types.router import CredentialLiteLLMParams
    except Exception:  # pragma: no cover - litellm layout changed
        pytest.skip("litellm's credential parameter model is not importable")
    import re

    credential_like = [f for f in CredentialLiteLLMParams.model_fields
                       if re.search("(^|_)(key|secret|token|password|credentials?)(_|$)", f)
                       and not f.startswith("token_exchange_")]
    missing = [f for f in credential_like if not is_secret_key(f)]
    assert not missing


def test_redaction_helpers():
    url = f"https://alice:{SECRET}@llm.example.com:8443/v1?api-key={SECRET}&sig={SECRET}&deployment=d1"
    assert not leaks(redact_url(url)) and "deployment=d1" in redact_url(url) and "alice" in redact_url(url)
    nested = {"api_base": url, "config": {"client_secret": SECRET, "ok": 1, "list": [{"api_token": SECRET}]},
              "extra_headers": {"Authorization": f"Bearer {SECRET}"}, "temperature": 0.5}
    assert not leaks(redact_mapping(nested)) and not leaks(strip_mapping(nested))
    assert redact_mapping(nested)["temperature"] == 0.5 and redact_mapping(nested)["config"]["ok"] == 1
    assert SECRET in secret_values(nested)
    text = f"401: bad key {SECRET} for {url}; header Bearer {SECRET}"
    assert not leaks(redact_text(text, secret_values(nested)))
    assert not leaks(redact_text(f"Authorization: Bearer {SECRET}"))
    cyclic: dict[str, Any] = {"api_key": SECRET}
    cyclic["self"] = cyclic
    assert not leaks(redact_mapping(cyclic))


def test_cache_key_ignores_credentials_under_any_name():
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.0}
    keys = {cache_key({**base, name: SECRET}) for name in NAMES}
    keys.add(cache_key({**base, "api_key": "another-key-123456"}))
    assert keys == {cache_key(base)}
    assert cache_key({**base, "max_tokens": 5}) != cache_key(base)


# --- a per-call key and a key in api_base, through a real HTTP server -----------------------------------------------

def echo_reply(body: dict[str, Any], i: int) -> str:
    return "[[ ## answer ## ]]\n42\n\n[[ ## completed ## ]]"


def test_per_call_and_api_base_keys_stay_out_of_spans_history_and_cache(tmp_path, exporter, caplog):
    caplog.set_level(logging.DEBUG)
    configure_cache(enable_disk_cache=True, disk_cache_dir=str(tmp_path / "cache"))
    with FakeOpenAI(reply=echo_reply) as server:
        base_with_creds = server.api_base.replace("http://", f"http://alice:{SECRET}@")
        lm = dspy.LM("openai/test-model", api_base=server.api_base, num_retries=0, cache=True)
        creds_lm = dspy.LM("openai/test-model", api_base=base_with_creds, api_key="placeholder-key", num_retries=0)
        with Checkpoint(tmp_path / "ckpt").active():
            lm("hello", api_key=SECRET)  # a per-call key
            lm(messages=[{"role": "user", "content": "again"}], api_key=SECRET, temperature=0.1)
            creds_lm("from the api_base with credentials")
            dspy.configure(lm=lm)
            dspy.Predict("question -> answer", api_key=SECRET)(question="per-predictor key?")
        assert any("Bearer " + SECRET in str(h) for h in server.headers), "the per-call key was not sent"
    assert leaks(span_text(exporter)) == [], "a span attribute holds the key"
    assert leaks(list(lm.history)) == [] and leaks(list(creds_lm.history)) == []
    assert leaks(list(GLOBAL_HISTORY)) == []
    assert leaks(creds_lm.dump_state()) == [] and leaks(repr(creds_lm)) == []
    assert files_leaking(tmp_path) == []
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert leaks(logged) == []


@pytest.mark.parametrize("how", ["constructor", "per_call", "environment", "api_base"])
def test_key_echoed_in_a_401_body_never_reaches_the_error(how, monkeypatch, caplog, exporter):
    caplog.set_level(logging.DEBUG)

    def unauthorized(body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        seen = {k.lower(): v for k, v in headers.items()}
        return 401, {"error": {"message": f"Incorrect API key provided: {seen.get('authorization')} "
                               f"(request {json.dumps(body)[:200]}, creds {SECRET})",
                               "type": "invalid_request_error", "code": "invalid_api_key"}}

    with FakeOpenAI(error=unauthorized) as server:
        kwargs: dict[str, Any] = {"api_base": server.api_base, "num_retries": 0, "cache": False}
        call: dict[str, Any] = {}
        if how == "constructor":
            kwargs["api_key"] = SECRET
        elif how == "per_call":
            kwargs["api_key"] = "placeholder-key"
            call["api_key"] = SECRET
        elif how == "environment":
            monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        else:
            kwargs["api_base"] = server.api_base.replace("http://", f"http://alice:{SECRET}@")
            kwargs["api_key"] = "placeholder-key"
        lm = dspy.LM("openai/test-model", **kwargs)
        with pytest.raises(LMError) as info:
            lm("hello", **call)
    error = info.value
    assert "401" in str(error) or "Incorrect API key" in str(error)
    assert leaks(str(error)) == [] and leaks(repr(error)) == []
    assert leaks("".join(traceback.format_exception(error))) == [], "the chained provider error holds the key"
    assert leaks(span_text(exporter)) == []
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert leaks(logged) == []


# --- every credential name, end to end: history, cache, checkpoint, saved JSON and pickles, spans, logs ---------------

@pytest.mark.parametrize("name", NAMES)
def test_credentials_under_any_name_stay_out_of_everything_saved(name, tmp_path, exporter, caplog):
    caplog.set_level(logging.DEBUG)
    configure_cache(enable_disk_cache=True, disk_cache_dir=str(tmp_path / "cache"))
    lm = DummyLM([{"reasoning": "2 and 2", "answer": "4"}] * 8, cache=True, **{name: SECRET, "api_base": f"https://u:{SECRET}@h.example/v1"})
    program = dspy.ChainOfThought("question -> answer")
    program.set_lm(lm)
    (predictor,) = program.predictors()
    predictor.config[name] = SECRET  # a per-predictor key as well
    with Checkpoint(tmp_path / "ckpt").active():
        program(question="2+2?")
        program(question="2+2?", config={name: SECRET, "temperature": 0.3})
    assert lm.kwargs[name] == SECRET  # the live LM keeps its credential
    assert leaks(list(lm.history)) == [] and leaks(list(GLOBAL_HISTORY)) == []
    assert leaks(lm.dump_state()) == [] and leaks(program.dump_state()) == []
    program.save(tmp_path / "program.json")
    program.save(tmp_path / "program.pkl")
    program.save(tmp_path / "program_dir", save_program=True)
    assert files_leaking(tmp_path) == [], f"{name} leaked into a file"
    assert leaks(span_text(exporter)) == []
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert leaks(logged) == []
