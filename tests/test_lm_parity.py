"""DSPy parity of the LM layer: custom LMs written as DSPy documents them, caching only in the
library's LMs, DSPy's history keys, inspect_history, usage tracking, configure_cache names, and the
untyped errors of issue 18.8 (surrogates, cycles, non-string replies)."""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace

import pytest

import textgrad_like as dspy
from textgrad_like.errors import InputError, LMError
from textgrad_like.lm.base import BaseLM, LMResponse
from textgrad_like.lm.cache import cache_key, configure_cache, get_cache
from textgrad_like.lm.usage import UsageTracker, track_usage


def openai_response(text, model="my-model", prompt_tokens=7, completion_tokens=3):
    """What an OpenAI client returns (attribute access)."""
    return SimpleNamespace(
        choices=[SimpleNamespace(message=SimpleNamespace(content=text, role="assistant"), finish_reason="stop")],
        usage=SimpleNamespace(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                              total_tokens=prompt_tokens + completion_tokens),
        model=model,
    )


class ScriptLM(BaseLM):
    """A custom LM exactly as DSPy's docs write one: only ``forward``."""

    def __init__(self, replies, **kwargs):
        super().__init__(model="my-model", **kwargs)
        self.replies = list(replies)
        self.seen = []

    def forward(self, prompt=None, messages=None, **kwargs):
        self.seen.append({"prompt": prompt, "messages": messages, "kwargs": kwargs})
        return openai_response(self.replies.pop(0))


class DictLM(BaseLM):
    def forward(self, prompt=None, messages=None, **kwargs):
        return {"choices": [{"message": {"content": "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"}}],
                "usage": {"prompt_tokens": 2, "completion_tokens": 1}, "model": "dict-model"}


def test_custom_lm_with_only_forward_runs_a_program():
    lm = ScriptLM(["<answer>\nParis\n</answer>"])
    dspy.configure(lm=lm)
    pred = dspy.Predict("question -> answer")(question="Capital of France?")
    assert pred.answer == "Paris"
    assert lm.seen[0]["messages"][-1]["role"] == "user"


def test_custom_lm_dict_response_and_dspy_markers():
    dspy.configure(lm=DictLM("dict-model"))
    assert dspy.Predict("question -> answer")(question="Capital?").answer == "Paris"


def test_custom_lm_prompt_is_passed_as_given_and_outputs_are_strings():
    lm = ScriptLM(["hello"])
    assert lm("hi there") == ["hello"]
    assert lm.seen[0]["prompt"] == "hi there" and lm.seen[0]["messages"] is None


def test_custom_lm_aforward_is_used_by_acall():
    class AsyncLM(BaseLM):
        def forward(self, prompt=None, messages=None, **kwargs):
            raise AssertionError("acall must use aforward")

        async def aforward(self, prompt=None, messages=None, **kwargs):
            return openai_response("<answer>\nasync\n</answer>")

    dspy.configure(lm=AsyncLM("a"))
    pred = asyncio.run(dspy.Predict("question -> answer").acall(question="q"))
    assert pred.answer == "async"


def test_custom_lm_forward_only_works_with_acall():
    dspy.configure(lm=ScriptLM(["<answer>\nthreaded\n</answer>"]))
    assert asyncio.run(dspy.Predict("question -> answer").acall(question="q")).answer == "threaded"


def test_custom_lms_are_not_cached_even_across_instances():
    configure_cache(enable_disk_cache=False)
    first = ScriptLM(["one"])
    assert first("same") == ["one"]
    second = ScriptLM(["two"])  # same model name, same prompt: a changed mock must not replay "one"
    assert second("same") == ["two"]
    assert [h["cache_hit"] for h in second.history] == [False]


def test_generate_backends_are_not_cached_by_default_but_can_opt_in():
    class Backend(BaseLM):
        calls = 0

        def _generate(self, messages, **kwargs):
            type(self).calls += 1
            return LMResponse(outputs=[f"reply {type(self).calls}"])

    assert Backend("b").cache is False
    assert Backend("b")("x") != Backend("b")("x")
    opted = Backend("b", cache=True)
    assert opted("y") == opted("y")
    assert dspy.LM("openai/x").cache is True


def test_history_has_dspy_keys():
    lm = ScriptLM(["hi"])
    lm(messages=[{"role": "user", "content": "hello"}], temperature=0.5)
    entry = lm.history[-1]
    for key in ("prompt", "messages", "kwargs", "response", "outputs", "usage", "cost", "timestamp", "uuid",
                "model", "response_model", "model_type"):
        assert key in entry, key
    assert entry["outputs"] == ["hi"] and entry["usage"]["prompt_tokens"] == 7
    assert entry["response"].choices[0].message.content == "hi"
    assert entry["response_model"] == "my-model" and entry["kwargs"]["temperature"] == 0.5


def test_inspect_history_prints_and_returns_none(capsys):
    lm = ScriptLM(["the reply"])
    lm("the question")
    assert lm.inspect_history(1) is None
    out = capsys.readouterr().out
    assert "the question" in out and "the reply" in out
    assert dspy.inspect_history(1) is None
    assert "the reply" in capsys.readouterr().out


def test_forward_of_library_lms_has_an_openai_view():
    from textgrad_like.utils import DummyLM

    response = DummyLM([{"answer": "x"}]).forward(messages=[{"role": "user", "content": "q"}])
    assert "x" in response.choices[0].message.content and "prompt_tokens" in response.usage


def test_launch_and_kill_exist():
    lm = ScriptLM([])
    assert lm.launch() is None and lm.kill() is None
    assert dspy.LM("openai/x").launch() is None


# --- usage -------------------------------------------------------------------------------------

def test_track_usage_in_dspy_shape_and_cache_hits_not_counted():
    from textgrad_like.utils import DummyLM

    lm = DummyLM([{"answer": "cached"}], cache=True)
    dspy.configure(lm=lm, track_usage=True)
    predict = dspy.Predict("question -> answer")
    first = predict(question="same").get_lm_usage()
    assert set(first) == {"dummy"}
    assert {"prompt_tokens", "completion_tokens", "total_tokens"} <= set(first["dummy"])
    assert predict(question="same").get_lm_usage() == {}  # a cache hit costs nothing


def test_usage_tracker_api_like_dspy():
    tracker = UsageTracker()
    tracker.add_usage("m", {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 1}})
    tracker.add_usage("m", {"completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 2}})
    assert tracker.usage_data["m"][0]["prompt_tokens"] == 5
    total = tracker.get_total_tokens()["m"]
    assert total["prompt_tokens"] == 5 and total["completion_tokens"] == 2
    assert total["prompt_tokens_details"]["cached_tokens"] == 3


def test_nested_track_usage_rolls_up():
    lm = ScriptLM(["a", "b"])
    with track_usage() as outer:
        lm("one")
        with track_usage() as inner:
            lm("two")
    assert inner.get_total_tokens()["my-model"]["prompt_tokens"] == 7
    assert outer.get_total_tokens()["my-model"]["prompt_tokens"] == 14


# --- configure_cache ---------------------------------------------------------------------------

def test_configure_cache_takes_dspy_names(tmp_path):
    params = inspect.signature(configure_cache).parameters
    assert {"enable_disk_cache", "enable_memory_cache", "disk_cache_dir", "disk_size_limit_bytes",
            "memory_max_entries"} <= set(params)
    dspy.configure_cache(enable_disk_cache=True, enable_memory_cache=False, disk_cache_dir=str(tmp_path / "c"),
                         disk_size_limit_bytes=10_000_000, memory_max_entries=10)
    cache = get_cache()
    assert cache.enable_disk and not cache.enable_memory and cache.disk_dir == str(tmp_path / "c")
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    assert not get_cache().enable_disk and not get_cache().enable_memory


# --- issue 18.8 --------------------------------------------------------------------------------

def test_lone_surrogate_does_not_break_the_cache_key():
    assert cache_key({"messages": [{"role": "user", "content": "\udcff"}]}) != cache_key({"messages": []})
    from textgrad_like.utils import DummyLM

    dspy.configure(lm=DummyLM([{"answer": "ok"}], cache=True))
    assert dspy.Predict("question -> answer")(question="bad \udcff text").answer == "ok"


def test_cyclic_input_is_an_input_error():
    from textgrad_like.utils import DummyLM

    dspy.configure(lm=DummyLM([{"answer": "ok"}]))
    cyclic: list = [1]
    cyclic.append(cyclic)
    with pytest.raises(InputError, match="refers to itself"):
        dspy.Predict("question -> answer")(question=cyclic)
    looped: dict = {}
    looped["self"] = looped
    with pytest.raises(InputError):
        dspy.Predict("question -> answer")(question=looped)


@pytest.mark.parametrize("content", [123, {"text": "x"}, ["a"]])
def test_non_string_reply_is_a_typed_error(content):
    class Odd(BaseLM):
        def forward(self, prompt=None, messages=None, **kwargs):
            return {"choices": [{"message": {"content": content}}], "usage": {}}

    dspy.configure(lm=Odd("odd"))
    with pytest.raises(LMError, match="must be text|reply must be text"):
        dspy.Predict("question -> answer")(question="q")


def test_non_response_from_forward_is_a_typed_error():
    class Bare(BaseLM):
        def forward(self, prompt=None, messages=None, **kwargs):
            return "just a string"

    with pytest.raises(LMError, match="OpenAI-style"):
        Bare("bare")("hi")
