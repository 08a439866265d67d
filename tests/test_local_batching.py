"""Continuous batching, shared-prefix reuse, device and numeric-mode selection of the local backend.

The batcher is tested with a pure-Python engine; the decode engine with a tiny random 2-layer Llama
built in-process (no download); one integration test uses the embedded model.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from textgrad_like.errors import ConfigurationError, LMError
from textgrad_like.lm import LM
from textgrad_like.lm.batching import ContinuousBatcher, GenerationRow

sys.path.insert(0, os.path.dirname(__file__))
from greedy_runs import assert_same_up_to_rounding, record_step_logits  # noqa: E402
from test_constrained import build_tiny_model_dir  # noqa: E402


class FakeEngine:
    """Each row 'decodes' prompt_ids[0] tokens, one per step; records who was running at each step."""

    def __init__(self, step_s: float = 0.01) -> None:
        self.rows: list[GenerationRow] = []
        self.step_s = step_s
        self.widths: list[int] = []
        self.fail_prompt: int | None = None

    def admit(self, rows):
        for row in rows:
            if row.prompt_ids == [self.fail_prompt]:
                raise ValueError("bad row")
        self.rows += rows
        return []

    def step(self):
        time.sleep(self.step_s)
        self.widths.append(len(self.rows))
        finished = []
        for row in self.rows:
            row.token_ids.append(len(row.token_ids))
            if len(row.token_ids) >= row.prompt_ids[0]:
                row.text = f"{row.prompt_ids[0]}:{len(row.token_ids)}"
                finished.append(row)
        self.rows = [r for r in self.rows if r not in finished]
        return finished

    def active(self):
        return len(self.rows)

    def reset(self):
        self.rows = []


def test_a_request_joins_a_running_batch_and_finished_rows_leave():
    engine = FakeEngine()
    batcher = ContinuousBatcher(engine, max_batch_size=8, wait_ms=0)
    done: dict[str, float] = {}

    def call(name: str, steps: int) -> None:
        row = batcher.submit([GenerationRow([steps], steps)])[0]
        done[name] = time.perf_counter()
        assert row.text == f"{steps}:{steps}"

    long = threading.Thread(target=call, args=("long", 40))
    long.start()
    time.sleep(0.1)  # the long row is decoding now
    short = threading.Thread(target=call, args=("short", 3))
    short.start()
    short.join()
    long.join()
    assert done["short"] < done["long"]  # answered as soon as its own row finished
    assert 2 in engine.widths and engine.widths[-1] == 1  # it decoded beside the long row, then left
    assert batcher.stats["joined_running"] == 1


def test_batcher_respects_max_batch_size_and_reports_errors():
    engine = FakeEngine(step_s=0.002)
    batcher = ContinuousBatcher(engine, max_batch_size=3, wait_ms=20)
    out: dict[int, str] = {}
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, batcher.submit(
        [GenerationRow([2 + i % 3], 4)])[0].text)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == {i: f"{2 + i % 3}:{2 + i % 3}" for i in range(9)}
    assert max(engine.widths) <= 3 and sum(batcher.batch_sizes) == 9
    engine.fail_prompt = 99
    with pytest.raises(ValueError, match="bad row"):
        batcher.submit([GenerationRow([99], 1)])
    assert batcher.submit([GenerationRow([2], 2)])[0].text == "2:2"  # still serving after a failure
    with pytest.raises(ConfigurationError):
        ContinuousBatcher(engine, max_batch_size=0)


def test_a_failing_step_fails_the_running_requests_only():
    engine = FakeEngine()
    batcher = ContinuousBatcher(engine, max_batch_size=4, wait_ms=0)
    original = engine.step
    engine.step = lambda: (_ for _ in ()).throw(KeyboardInterrupt())  # not an Exception: wrapped
    with pytest.raises(LMError, match="stopped"):
        batcher.submit([GenerationRow([3], 3)])
    engine.step = original
    assert batcher.submit([GenerationRow([1], 1)])[0].text == "1:1"


def test_batch_history_does_not_grow():
    engine = FakeEngine(step_s=0)
    batcher = ContinuousBatcher(engine, max_batch_size=2, wait_ms=0)
    for _ in range(300):
        batcher.submit([GenerationRow([1], 1)])
    assert len(batcher.batch_sizes) <= 256 and batcher.stats["rows"] == 300


# -- the decode engine on a tiny random model ------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_model_dir(str(tmp_path_factory.mktemp("tiny-batching")), max_positions=256)


def _lm(tiny_dir, **kwargs):
    kwargs.setdefault("temperature", 0.0)
    kwargs.setdefault("cache", False)
    return LM(f"local/{tiny_dir}", **kwargs)


def test_a_request_joins_a_running_batch_on_the_model(tiny_dir, monkeypatch):
    """A request that arrives while another decodes joins its batch at the next step; each prompt's
    greedy run agrees with its run alone up to attention's rounding over the batch's padding."""
    import torch

    seen = record_step_logits(monkeypatch)
    lm = _lm(tiny_dir, max_batch_size=8, batch_wait_ms=0, prefix_cache_mb=0)
    long_prompt, short_prompt = "a long answer please", "and a short one"
    lm(long_prompt, max_tokens=60)
    lm(short_prompt, max_tokens=5)
    solo = dict(seen)
    seen.clear()
    assert len(lm.history[-2]["outputs"][0]) > 0
    backend = lm.backend
    joined_before = backend.batcher.stats["joined_running"]
    results: dict[str, str] = {}
    started = threading.Event()

    def on_text(_: str) -> None:
        started.set()

    def run_long() -> None:
        rows = [GenerationRow(backend.encode_messages([{"role": "user", "content": long_prompt}]), 60,
                              on_text=on_text)]
        results["long"] = backend.generate(rows)[0].text

    thread = threading.Thread(target=run_long)
    thread.start()
    assert started.wait(30)
    results["short"] = lm(short_prompt, max_tokens=5)[0]
    thread.join()
    assert backend.batcher.stats["joined_running"] > joined_before
    assert set(seen) == set(solo) and all(results.values())
    for prompt_ids, steps in solo.items():
        assert_same_up_to_rounding(steps, seen[prompt_ids], torch.float32)


def test_prefix_reuse_gives_the_same_tokens_as_a_cold_call(tiny_dir):
    cold = _lm(tiny_dir, prefix_cache_mb=0, max_tokens=12)
    warm = _lm(tiny_dir, prefix_cache_mb=16, max_tokens=12, batch_wait_ms=1)
    system = {"role": "system", "content": "positive negative neutral red green blue " * 3}
    questions = [f"The quick brown fox number {i}" for i in range(4)]
    expected = [cold(messages=[system, {"role": "user", "content": q}])[0] for q in questions]
    got = [warm(messages=[system, {"role": "user", "content": q}])[0] for q in questions]
    assert got == expected
    cache = warm.backend.prefix_cache
    assert cache.hits >= 3 and cache.reused_tokens >= 3 * 30
    assert cache.nbytes <= cache.max_bytes
    # concurrent calls share the prefix within one batch too
    out: dict[int, str] = {}
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, warm(
        messages=[system, {"role": "user", "content": questions[i]}])[0])) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [out[i] for i in range(4)] == expected


def test_prefix_cache_is_bounded_in_bytes():
    import torch

    from textgrad_like.lm.decoding import PrefixCache

    def layers(n: int) -> list:
        return [(torch.zeros(1, 2, n, 4), torch.zeros(1, 2, n, 4))]  # 2 * 2*n*4 floats = 64n bytes

    cache = PrefixCache(max_bytes=64 * 100, min_tokens=4)
    cache.insert(list(range(60)), layers(60))
    cache.insert([7] * 50, layers(50))  # evicts the first (least recently used)
    assert len(cache) == 1 and cache.nbytes == 64 * 50
    shared, key, found = cache.lookup([7] * 10 + [1])
    assert shared == 10 and key == tuple([7] * 50) and found is not None
    assert cache.lookup([7, 7, 1])[0] == 0  # under min_tokens
    assert cache.lookup([7] * 50)[0] == 49  # one token is always left to prefill


def test_rows_of_different_adapters_use_separate_lanes(tiny_dir):
    lm = _lm(tiny_dir, max_tokens=4)
    loaded = lm.backend.loaded
    seen: list[str | None] = []
    previous = loaded.activate
    loaded.activate = seen.append
    try:
        backend = lm.backend
        ids = backend.encode_messages([{"role": "user", "content": "hi"}])
        rows = [GenerationRow(ids, 3, adapter=name) for name in (None, "a", None, "b")]
        backend.generate(rows)
    finally:
        loaded.activate = previous
    assert {"a", "b"} <= set(seen)  # base rows run on the compact decoder, which needs no switching
    assert None in seen or backend.decoder is not None
    assert rows[0].text == rows[2].text


def test_an_unknown_adapter_is_a_configuration_error(tiny_dir):
    lm = _lm(tiny_dir, max_tokens=4)
    backend = lm.backend
    if backend.loaded.activate is not None:
        pytest.skip("a LoRA switch is installed on this model by another test")
    with pytest.raises(ConfigurationError, match="not on this model"):
        backend.generate([GenerationRow(backend.encode_messages([{"role": "user", "content": "x"}]), 2,
                                        adapter="nope")])


# -- device and numeric mode ----------------------------------------------------------------------------
def _fake_torch(cuda: bool, bf16: bool = True):
    import torch

    return SimpleNamespace(cuda=SimpleNamespace(is_available=lambda: cuda, is_bf16_supported=lambda: bf16),
                           dtype=torch.dtype)


def test_device_selection():
    from textgrad_like.lm.loading import requested_mode, resolve_device

    assert resolve_device(None, _fake_torch(True)) == "cpu"
    assert resolve_device("auto", _fake_torch(True)) == "cuda"
    assert resolve_device("auto", _fake_torch(False)) == "cpu"
    assert resolve_device("cuda:1", _fake_torch(True)) == "cuda:1"
    with pytest.raises(ConfigurationError, match="no CUDA GPU"):
        resolve_device("cuda", _fake_torch(False))
    assert requested_mode(None, "cuda", _fake_torch(True, bf16=True)) == "bfloat16"
    assert requested_mode("auto", "cuda", _fake_torch(True, bf16=False)) == "float16"
    assert requested_mode(None, "cpu", _fake_torch(False)) == "auto"
    assert requested_mode("torch.bfloat16", "cpu", _fake_torch(False)) == "bfloat16"
    assert requested_mode("int8", "cpu", _fake_torch(False)) == "int8"
    with pytest.raises(ConfigurationError, match="not supported"):
        requested_mode("float8", "cpu", _fake_torch(False))


def test_cuda_without_a_gpu_fails_at_load_with_a_clear_error(tiny_dir, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigurationError, match="no CUDA GPU"):
        LM(f"local/{tiny_dir}", device="cuda").load()


def test_choose_numerics_measures_and_picks_a_mode(tiny_dir):
    from textgrad_like.lm.loading import choose_numerics

    model = _lm(tiny_dir).backend.model
    mode, figures = choose_numerics(model, modes=("float32", "bfloat16", "int8"))
    assert mode in ("float32", "bfloat16", "int8")
    assert figures["float32"]["agreement"] == 1.0 and "step_ms" in figures["bfloat16"]
    assert next(model.parameters()).dtype == torch_float32()  # the measured model is unchanged


def torch_float32():
    import torch

    return torch.float32


def test_weights_cache_entry_round_trip_and_damage(tiny_dir, tmp_path):
    import transformers

    from textgrad_like.lm.loading import WEIGHTS_FILE, _read_entry, _write_entry

    lm = _lm(tiny_dir)
    folder = str(tmp_path / "entry")
    _write_entry(folder, lm.backend.model, lm.backend.tokenizer, "tiny")
    model, tokenizer = _read_entry(transformers, folder)
    import torch

    for (name, a), (_, b) in zip(model.state_dict().items(), lm.backend.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    path = os.path.join(folder, WEIGHTS_FILE)
    with open(path, "r+b") as fh:
        fh.seek(os.path.getsize(path) // 2)
        fh.write(b"\xff" * 64)
    assert _read_entry(transformers, folder) is None  # damaged: the caller converts again
    os.remove(os.path.join(folder, "manifest.json"))
    assert _read_entry(transformers, folder) is None


# -- the embedded model ---------------------------------------------------------------------------------
@pytest.mark.integration
def test_embedded_prefix_reuse_matches_a_cold_call(embedded_lm):
    # float32: bit-for-bit the same KV whatever the batch layout (bfloat16 kernels round by shape)
    cold = embedded_lm.copy(dtype="float32", prefix_cache_mb=0, cache=False, max_tokens=16)
    warm = embedded_lm.copy(dtype="float32", prefix_cache_mb=64, cache=False, max_tokens=16)
    system = {"role": "system", "content": "Classify the sentiment of the review as positive or negative. "
              "Review: I loved it. Sentiment: positive. Review: Awful film. Sentiment: negative."}
    for review in ("What a great day!", "This is terrible."):
        messages = [system, {"role": "user", "content": review}]
        expected = cold(messages=messages)[0]
        assert warm(messages=messages)[0] == expected
    assert warm.backend.prefix_cache.hits >= 1


@pytest.mark.integration
def test_embedded_request_joins_a_running_batch(embedded_lm):
    lm = embedded_lm.copy(dtype="float32", cache=False, batch_wait_ms=0)
    solo = lm("Say hello.", max_tokens=8)[0]
    joined_before = lm.backend.batcher.stats["joined_running"]
    thread = threading.Thread(target=lm, args=("Write a long story about the sea.",), kwargs={"max_tokens": 48})
    thread.start()
    time.sleep(1.0)
    assert lm("Say hello.", max_tokens=8)[0] == solo
    thread.join()
    assert lm.backend.batcher.stats["joined_running"] > joined_before


class _TimedModel:
    """A stand-in for a decoder whose prefill and decode steps take set times (choose_numerics' view)."""

    vocab_size = 200
    takes_decode_step = True

    def __init__(self, prefill_s: float, step_s: float) -> None:
        self.prefill_s, self.step_s = prefill_s, step_s

    def __call__(self, input_ids, use_cache=True, cache=None, decode_step=False, **_):
        import time
        from types import SimpleNamespace

        import torch

        time.sleep(self.prefill_s if input_ids.shape[1] > 1 else self.step_s)
        logits = torch.zeros(input_ids.shape[0], input_ids.shape[1], self.vocab_size)
        logits[..., 7] = 1.0
        return SimpleNamespace(logits=logits, cache=object())


def test_choose_numerics_counts_prefill_and_credits_a_shared_prefill_kernel():
    """A mode that decodes faster but prefills 10x slower loses; two modes with the same prefill dtype
    are compared on decoding alone, however noisy one of their prefills was."""
    from textgrad_like.lm.loading import choose_numerics

    models = {"float32": _TimedModel(0.02, 0.02), "bfloat16": _TimedModel(0.2, 0.012),
              "float32+int8": _TimedModel(0.06, 0.012), "float32+int4": _TimedModel(0.02, 0.008)}
    mode, figures = choose_numerics(models["float32"], modes=tuple(models), convert=lambda _, m: models[m])
    assert figures["bfloat16"]["gain"] < 1.0  # 1.67x faster steps, 10x slower prefill
    assert figures["float32+int8"]["prefill_ms"] >= 55  # its own (noisy) prefill is reported ...
    assert figures["float32+int8"]["gain"] == pytest.approx((0.02 / 0.012) ** (2 / 3), rel=0.15)  # ... not counted
    assert mode == "float32+int4"
