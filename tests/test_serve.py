"""textgrad_like.lm.serve: starting an OpenAI-compatible server process and calling it through LM."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from textgrad_like.errors import ConfigurationError, LMError
from textgrad_like.lm import serve as serve_module
from textgrad_like.lm.serve import ServedLM, engine_command, pick_engine, serve

FAKE = str(Path(__file__).resolve().parent / "serve_fake_engine.py")


def test_serve_starts_a_server_waits_for_it_and_kills_it():
    lm = serve("fake-model", command=[sys.executable, FAKE, "--host", "{host}", "--port", "{port}",
                                      "--model", "{model}", "--delay", "1.0"], temperature=0.0, cache=False)
    try:
        assert isinstance(lm, ServedLM) and lm.model == "openai/fake-model"
        assert lm.server.running() and lm.kwargs["api_base"] == lm.server.api_base
        assert lm("hello there") == ["echo: hello there"]
        pid = lm.server.process.pid
    finally:
        lm.kill()
    assert not lm.server.running()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    lm.launch()  # launch() starts it again, on the same port
    try:
        assert lm("again") == ["echo: again"]
    finally:
        lm.kill()


def test_a_server_that_exits_early_is_an_lm_error_with_its_output():
    with pytest.raises(LMError, match="out of memory"):
        serve("m", command=[sys.executable, FAKE, "--port", "{port}", "--fail"])


def test_a_server_that_never_answers_times_out():
    with pytest.raises(LMError, match="did not answer"):
        serve("m", command=[sys.executable, "-c", "import time; time.sleep(30)"], startup_timeout_s=1.0)


def test_context_manager_and_unstarted_lm():
    lm = serve("fake-model", command=[sys.executable, FAKE, "--port", "{port}", "--delay", "0"], launch=False)
    assert not lm.server.running()
    with lm:
        assert lm("x", cache=False) == ["echo: x"]
    assert not lm.server.running()


def test_engine_choice_and_commands(monkeypatch):
    monkeypatch.setattr(serve_module, "engine_available", lambda name: name in ("sglang", "textgrad_like"))
    assert pick_engine("auto") == "sglang"
    assert pick_engine("textgrad_like") == "textgrad_like"
    with pytest.raises(ConfigurationError, match="not installed"):
        pick_engine("vllm")
    with pytest.raises(ConfigurationError, match="not known"):
        pick_engine("tgi")
    monkeypatch.setattr(serve_module, "engine_available", lambda name: name == "textgrad_like")
    with pytest.raises(ConfigurationError, match="neither vLLM nor SGLang"):
        pick_engine("auto")
    vllm = engine_command("vllm", "Qwen/Qwen2.5-0.5B-Instruct", "127.0.0.1", 8001, ["--dtype", "bfloat16"])
    assert vllm[1:] == ["-m", "vllm.entrypoints.openai.api_server", "--model", "Qwen/Qwen2.5-0.5B-Instruct",
                        "--host", "127.0.0.1", "--port", "8001", "--dtype", "bfloat16"]
    sglang = engine_command("sglang", "m", "0.0.0.0", 30000)
    assert sglang[1:4] == ["-m", "sglang.launch_server", "--model-path"] and sglang[-1] == "30000"


def test_a_command_that_cannot_start_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="Could not start"):
        serve("m", command=["/nonexistent/engine-binary", "--port", "{port}"])


def test_local_lm_launch_and_kill(tmp_path):
    sys.path.insert(0, os.path.dirname(__file__))
    from test_constrained import build_tiny_model_dir

    from textgrad_like.lm import LM
    from textgrad_like.lm.local_backend import _WEIGHTS

    path = build_tiny_model_dir(str(tmp_path / "tiny"), max_positions=64)
    lm = LM(f"local/{path}", max_tokens=2, cache=False)
    lm.launch()
    assert any(key[0] == os.path.abspath(path) for key in _WEIGHTS)
    assert len(lm("hi")) == 1
    lm.kill()
    assert not any(key[0] == os.path.abspath(path) for key in _WEIGHTS)
    assert len(lm("hi")) == 1  # loads again on demand
