"""Secrets: an LM's ``api_key`` never reaches the disk cache, the checkpoint journal, history dumps,
log records (DEBUG), ``RunHistory.to_json()`` or saved programs; loading a saved program never runs
code unless ``allow_pickle=True``."""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import pytest

import textgrad_like as dspy
from textgrad_like.errors import LMError, StateDictError
from textgrad_like.lm.base import GLOBAL_HISTORY, format_history
from textgrad_like.lm.cache import configure_cache
from textgrad_like.optim.checkpoint import Checkpoint
from textgrad_like.primitives import RunHistory

from .fake_openai_server import FakeOpenAI

SECRET = "sk-live-TOPSECRET-9f8e7d6c5b4a"
FRAGMENTS = (SECRET, SECRET[3:], SECRET[-12:])


def leaks(blob: bytes | str) -> list[str]:
    data = blob if isinstance(blob, bytes) else blob.encode("utf-8", "surrogatepass")
    return [f for f in FRAGMENTS if f.encode() in data]


def files_leaking(root: Path) -> list[str]:
    bad = []
    for path in root.rglob("*"):
        if path.is_file() and leaks(path.read_bytes()):
            bad.append(str(path))
    return bad


def answer_reply(body: dict[str, Any], i: int) -> str:
    return "<reasoning>\nsix times seven\n</reasoning>\n<answer>\n42\n</answer>"


@pytest.fixture
def server():
    with FakeOpenAI(reply=answer_reply) as s:
        yield s


def test_api_key_never_reaches_disk_logs_history_or_saved_programs(server, tmp_path, caplog):
    cache_dir = tmp_path / "cache"
    configure_cache(enable_disk_cache=True, disk_cache_dir=str(cache_dir))
    caplog.set_level(logging.DEBUG)
    lm = dspy.LM("openai/test-model", api_base=server.api_base, api_key=SECRET, num_retries=0, temperature=0.0)
    dspy.configure(lm=lm)
    program = dspy.ChainOfThought("question -> answer")
    devset = [dspy.Example(question=f"what is {i}?", answer="42").with_inputs("question") for i in range(4)]

    with Checkpoint(tmp_path / "ckpt").active():
        result = dspy.Evaluate(devset=devset, metric=lambda ex, pred, trace=None: ex.answer == pred.answer,
                               num_threads=2)(program)
        assert result.score == 100.0
        program(question="what is 0?")  # a cache hit
    from textgrad_like.optim.bootstrap import BootstrapFewShot

    opt = BootstrapFewShot(metric=lambda ex, pred, trace=None: True, max_bootstrapped_demos=2, max_labeled_demos=2)
    compiled = opt.compile(program, trainset=devset, disable_progress=True)
    # the key was really sent to the provider
    auth = {k.lower(): v for k, v in server.headers[0].items()}["authorization"]
    assert auth == f"Bearer {SECRET}"

    # disk cache and checkpoint journal
    assert list(cache_dir.rglob("*")), "the disk cache was not written"
    assert files_leaking(cache_dir) == []
    assert files_leaking(tmp_path / "ckpt") == []
    # history dumps
    assert leaks(json.dumps(list(lm.history), default=str)) == []
    assert leaks(json.dumps(list(GLOBAL_HISTORY), default=str)) == []
    assert leaks(format_history(len(lm.history), history=list(lm.history))) == []
    # run reports
    assert leaks(opt.history.to_json()) == []
    history = RunHistory("secrets")
    history.record(1.0, lm=lm.dump_state())
    assert leaks(history.to_json()) == []
    # saved programs (JSON) and LM state
    compiled.save(tmp_path / "program.json")
    assert leaks((tmp_path / "program.json").read_bytes()) == []
    assert leaks(json.dumps(compiled.dump_state(), default=str)) == []
    assert leaks(json.dumps(lm.dump_state())) == [] and leaks(repr(lm)) == []
    # log records, at DEBUG, of every logger (litellm included)
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records and leaks(logged) == []


def test_provider_errors_do_not_echo_the_key(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    lm = dspy.LM("openai/test-model", api_base="http://127.0.0.1:9/v1", api_key=SECRET, num_retries=0,
                 timeout=5)
    with pytest.raises(LMError) as info:
        lm("hello")
    assert leaks(str(info.value)) == []
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert leaks(logged) == []


# --- loading never runs code without allow_pickle ------------------------------------------------------------------

class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (open, (self.marker, "w"))  # unpickling this creates the marker file


def crafted_pickle(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "PWNED"
    program_dir = tmp_path / "saved_program"
    program_dir.mkdir()
    (program_dir / "program.pkl").write_bytes(pickle.dumps(_Payload(str(marker))))
    (program_dir / "metadata.json").write_text(json.dumps({"format": "textgrad_like.program/1"}))
    return program_dir, marker


def test_crafted_pickle_is_refused_without_allow_pickle(tmp_path):
    program_dir, marker = crafted_pickle(tmp_path)
    pkl = program_dir / "program.pkl"
    disguised = tmp_path / "program.json"
    disguised.write_bytes(pkl.read_bytes())  # a pickle with a .json name
    for path in (program_dir, pkl):
        with pytest.raises(StateDictError, match="allow_pickle"):
            dspy.load(str(path))
        with pytest.raises(StateDictError):
            dspy.Predict("question -> answer").load(str(path))
    with pytest.raises(StateDictError):
        dspy.Predict("question -> answer").load(str(disguised))
    assert not marker.exists(), "loading ran code from the file"
    # the flag is what allows it: with allow_pickle=True the payload does run
    dspy.load(str(program_dir), allow_pickle=True)
    assert marker.exists()


def test_json_load_never_unpickles(tmp_path):
    marker = tmp_path / "PWNED"
    blob = pickle.dumps(_Payload(str(marker))).hex()
    data = {"format": "textgrad_like.program/1", "state_dict": {"instruction": "x", "demos": [{"q": blob}]},
            "signatures": {}, "lms": {"self": {"model": "openai/x", "py/object": "os.system"}}}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    program = dspy.Predict("question -> answer")
    program.load(str(path))
    assert program.demos[0].q == blob and not marker.exists()
    assert not os.path.exists(marker)


def test_pickled_program_has_no_key_and_loads_only_with_the_flag(tmp_path):
    lm = dspy.LM("openai/test-model", api_base="http://127.0.0.1:9/v1", api_key=SECRET)
    program = dspy.ChainOfThought("question -> answer")
    program.set_lm(lm)
    program.save(tmp_path / "prog", save_program=True)
    assert files_leaking(tmp_path / "prog") == []
    with pytest.raises(StateDictError, match="allow_pickle"):
        dspy.load(str(tmp_path / "prog"))
    loaded = dspy.load(str(tmp_path / "prog"), allow_pickle=True)
    (predictor,) = loaded.predictors()
    assert predictor.lm.model == "openai/test-model" and "api_key" not in predictor.lm.kwargs
    assert lm.kwargs["api_key"] == SECRET  # the live LM keeps its key
