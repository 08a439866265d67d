import asyncio
import os
import threading

import pytest

import textgrad_like as dspy
from textgrad_like.errors import BudgetExceeded, ConfigurationError, LMError
from textgrad_like.lm.cache import configure_cache

from .fake_openai_server import FakeOpenAI

SECRET = "sk-test-SECRET-123456"


@pytest.fixture
def server():
    with FakeOpenAI() as s:
        yield s


def make_lm(server, **kwargs):
    return dspy.LM("openai/test-model", api_base=server.api_base, api_key=SECRET, num_retries=0, **kwargs)


def test_prompt_and_messages_return_lists(server):
    lm = make_lm(server)
    out = lm("Say this is a test!")
    assert isinstance(out, list) and out[0].startswith("reply 0 to: Say this is a test!")
    out2 = lm(messages=[{"role": "user", "content": "hello"}])
    assert out2[0].startswith("reply 0 to: hello")
    assert {k.lower(): v for k, v in server.headers[0].items()}["authorization"] == f"Bearer {SECRET}"


def test_n_completions(server):
    lm = make_lm(server)
    out = lm("pick", n=3)
    assert len(out) == 3 and server.requests[-1]["n"] == 3


def test_cache_hits_do_not_call_and_are_flagged(server):
    lm = make_lm(server, temperature=0.0)
    a = lm("same")
    b = lm("same")
    assert a == b and len(server.requests) == 1
    assert [h["cache_hit"] for h in lm.history] == [False, True]
    assert lm.usage.calls == 1 and lm.usage.cache_hits == 1
    lm("same", rollout_id=1)  # a new rollout id splits the cache
    assert len(server.requests) == 2
    assert "rollout_id" not in server.requests[-1]


def test_cache_false_always_calls(server):
    lm = make_lm(server, cache=False)
    lm("x")
    lm("x")
    assert len(server.requests) == 2


def test_arguments_that_change_answer_split_cache(server):
    lm = make_lm(server)
    lm("x", temperature=0.0)
    lm("x", temperature=0.5)
    lm("x", max_tokens=10)
    assert len(server.requests) == 3


def test_secret_never_in_history_cache_or_saved_files(server, tmp_path):
    cache = configure_cache(enable_disk_cache=True, disk_cache_dir=str(tmp_path / "cache"))
    lm = make_lm(server)
    lm("hello")
    assert SECRET not in repr(list(lm.history))
    assert "api_key" not in lm.history[0]["kwargs"]
    assert SECRET not in repr(lm.dump_state())
    cache.close()
    for root, _, files in os.walk(tmp_path / "cache"):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                assert SECRET.encode() not in f.read()
    prog = dspy.Predict("q -> a")
    prog.set_lm(lm)
    path = tmp_path / "prog.json"
    prog.save(path)
    assert SECRET not in path.read_text()


def test_disk_cache_survives_new_cache_object(server, tmp_path):
    configure_cache(enable_disk_cache=True, disk_cache_dir=str(tmp_path / "c"))
    make_lm(server)("persist me")
    configure_cache(enable_memory_cache=False, enable_disk_cache=True, disk_cache_dir=str(tmp_path / "c"))
    make_lm(server)("persist me")
    assert len(server.requests) == 1


def test_history_bounded_and_inspect(server, capsys):
    lm = make_lm(server, cache=False)
    lm("first")
    assert lm.inspect_history(1) is None
    out = capsys.readouterr().out
    assert "first" in out and "reply 0" in out
    assert dspy.inspect_history(1) is None
    assert "first" in capsys.readouterr().out


def test_provider_error_is_typed():
    lm = dspy.LM("openai/x", api_base="http://127.0.0.1:9/v1", api_key="k", num_retries=0, timeout=2)
    with pytest.raises(LMError, match="provider call failed"):
        lm("hi")


def test_bad_model_name():
    with pytest.raises(ConfigurationError):
        dspy.LM("")


def test_budget_raises_before_the_call(server):
    lm = make_lm(server, cache=False)
    with dspy.budget(max_calls=2) as b:
        lm("1")
        lm("2")
        with pytest.raises(BudgetExceeded):
            lm("3")
    assert len(server.requests) == 2 and b.usage.calls == 2


def test_lm_level_budget_on_tokens(server):
    lm = make_lm(server, cache=False, budget={"max_tokens": 40})
    lm("a", max_tokens=5)  # uses 18 tokens
    with pytest.raises(BudgetExceeded):
        lm("b", max_tokens=30)
    assert len(server.requests) == 1


def test_async_call(server):
    lm = make_lm(server)

    async def main():
        return await asyncio.gather(lm.acall("a"), lm.acall("b"))

    a, b = asyncio.run(main())
    assert a[0].startswith("reply 0 to: a") and b[0].startswith("reply 0 to: b")


def test_thread_safe_calls_and_usage(server):
    lm = make_lm(server, cache=False)
    threads = [threading.Thread(target=lambda i=i: lm(f"t{i}")) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lm.usage.calls == 16 and len(lm.history) == 16
    assert lm.usage.prompt_tokens == 16 * 11


def test_predict_through_litellm(server):
    server.reply = lambda body, i: "<answer>\n42\n</answer>"
    dspy.configure(lm=make_lm(server))
    assert dspy.Predict("question -> answer: int")(question="6*7?").answer == 42


def test_lm_copy_changes_kwargs(server):
    lm = make_lm(server, temperature=0.0)
    other = lm.copy(temperature=0.9)
    assert other.kwargs["temperature"] == 0.9 and lm.kwargs["temperature"] == 0.0
