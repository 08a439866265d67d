"""Attacks on what we keep on disk (issue 18, items 5 and 9).

- A checkpoint directory or a response cache someone sent you must never run code: every entry of
  the call journal / disk cache is replaced by a pickle whose ``__reduce__`` runs a command; resuming
  (or reading the cache) must not run it, and must skip the entry with a logged warning.
- A damaged disk cache shard (a truncated SQLite file) is rebuilt on its own, once, with a log line;
  the good shards keep their entries and the disk cache stays on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import textgrad_like as dspy
from tests.test_optim_checkpoint import CountingLM, Crash, run_mipro, run_rs
from textgrad_like.lm.base import LMResponse
from textgrad_like.lm.cache import Cache, configure_cache

diskcache = pytest.importorskip("diskcache")


class _Payload:
    """Unpickling it runs ``touch <marker>``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.marker}",))


def shard_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("cache.db"))


def poison(root: Path, marker: Path) -> int:
    """Replace every entry under ``root`` by a pickle payload, as an attacker with the files would
    (diskcache's default Disk pickles any object it is given). Returns how many were replaced."""
    replaced = 0
    for shard in shard_dirs(root):
        store = diskcache.Cache(str(shard))
        try:
            for key in list(store.iterkeys()):
                store.set(key, _Payload(str(marker)))
                replaced += 1
        finally:
            store.close()
    return replaced


def poison_raw_rows(root: Path, marker: Path) -> int:
    """The same with SQL: flip the rows' mode to pickle (diskcache MODE_PICKLE = 4)."""
    import pickle

    replaced = 0
    for shard in shard_dirs(root):
        con = sqlite3.connect(str(shard / "cache.db"))
        try:
            blob = pickle.dumps(_Payload(str(marker)))
            replaced += con.execute("UPDATE Cache SET mode = 4, value = ?, filename = NULL", (blob,)).rowcount
            con.commit()
        finally:
            con.close()
    return replaced


@pytest.mark.parametrize("how", ["diskcache", "sql"])
def test_poisoned_checkpoint_journal_never_runs_code(tmp_path, caplog, how):
    ckpt = tmp_path / "ckpt"
    marker = tmp_path / "PWNED"
    with pytest.raises(Crash):  # the run is killed mid-way; its journal holds the calls paid so far
        run_rs(CountingLM(crash_after=25), str(ckpt))
    replaced = (poison if how == "diskcache" else poison_raw_rows)(ckpt / "calls", marker)
    assert replaced > 0, "the checkpoint has no call store to poison"
    caplog.set_level(logging.WARNING)
    lm = CountingLM()
    best, _ = run_rs(lm, str(ckpt))
    assert not marker.exists(), "resuming from a checkpoint ran code from it"
    assert best is not None
    assert lm.generated, "the poisoned entries were not skipped (the calls should be made again)"
    assert any("refus" in r.getMessage() or "skipp" in r.getMessage() for r in caplog.records), \
        "the poisoned entries were skipped silently"


def test_poisoned_mipro_checkpoint_never_runs_code(tmp_path):
    ckpt = tmp_path / "ckpt"
    marker = tmp_path / "PWNED"
    with pytest.raises(Crash):
        run_mipro(CountingLM(crash_after=40), str(ckpt))
    assert poison(ckpt / "calls", marker) > 0
    best, _ = run_mipro(CountingLM(), str(ckpt))
    assert not marker.exists() and best is not None


def test_poisoned_disk_cache_never_runs_code(tmp_path, caplog):
    cache_dir = tmp_path / "cache"
    marker = tmp_path / "PWNED"
    configure_cache(enable_disk_cache=True, disk_cache_dir=str(cache_dir))
    dspy.configure(lm=dspy.utils.DummyLM([{"answer": "4"}], cache=True))
    dspy.Predict("question -> answer")(question="2+2?")
    assert poison(cache_dir, marker) > 0
    caplog.set_level(logging.WARNING)
    fresh = configure_cache(enable_disk_cache=True, disk_cache_dir=str(cache_dir))  # a new process: memory level empty
    dspy.configure(lm=dspy.utils.DummyLM([{"answer": "5"}], cache=True))
    assert dspy.Predict("question -> answer")(question="2+2?").answer == "5"  # the entry was skipped
    assert not marker.exists(), "reading the disk cache ran code from it"
    assert fresh.enable_disk
    assert any("refus" in r.getMessage() for r in caplog.records)


def test_cache_round_trips_responses_as_data(tmp_path):
    cache = Cache(enable_memory=False, disk_dir=str(tmp_path / "c"))
    response = LMResponse(outputs=["a", "b"], prompt_tokens=3, completion_tokens=4, cost=0.5, model="m",
                          extra={"logprobs": [0.1]})
    cache.put("k" * 64, response)
    back = Cache(enable_memory=False, disk_dir=str(tmp_path / "c")).get("k" * 64)
    assert back == response
    # what is on disk is JSON text, never a pickle
    for shard in shard_dirs(tmp_path / "c"):
        con = sqlite3.connect(str(shard / "cache.db"))
        modes = {row[0] for row in con.execute("SELECT mode FROM Cache")}
        con.close()
        assert 4 not in modes


def _fill(cache: Cache, n: int) -> list[str]:
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]
    for i, key in enumerate(keys):
        cache.put(key, LMResponse(outputs=[f"reply {i}"]))
    return keys


@pytest.mark.parametrize("size", [0, 100, "half"])
def test_truncated_shard_is_rebuilt_and_the_others_kept(tmp_path, caplog, size):
    root = tmp_path / "cache"
    cache = Cache(enable_memory=False, disk_dir=str(root))
    keys = _fill(cache, 64)
    cache.close()
    shards = shard_dirs(root)
    assert len(shards) > 1
    victim = shards[0] / "cache.db"
    length = victim.stat().st_size
    with open(victim, "r+b") as f:
        f.truncate(length // 2 if size == "half" else size)
    for suffix in ("-wal", "-shm"):
        Path(str(victim) + suffix).unlink(missing_ok=True)
    caplog.set_level(logging.WARNING)
    reopened = Cache(enable_memory=False, disk_dir=str(root))
    found = [reopened.get(k) for k in keys]
    assert reopened.enable_disk, "a damaged shard turned the disk cache off"
    hits = sum(v is not None for v in found)
    assert hits >= len(keys) // 2, f"the good shards lost their entries ({hits} of {len(keys)} left)"
    # caching works again everywhere, including the rebuilt shard
    _fill(reopened, 64)
    again = Cache(enable_memory=False, disk_dir=str(root))
    assert all(again.get(k) is not None for k in keys)
    damaged_logs = [r for r in caplog.records if "damaged" in r.getMessage()]
    if size != 0:  # an empty file is a valid empty SQLite database: nothing to report
        assert len(damaged_logs) == 1, [r.getMessage() for r in caplog.records]
    assert not any("memory only" in r.getMessage() for r in caplog.records)


def test_shard_damaged_while_open_is_rebuilt(tmp_path, caplog):
    root = tmp_path / "cache"
    cache = Cache(enable_memory=False, disk_dir=str(root))
    keys = _fill(cache, 64)
    victim = shard_dirs(root)[0] / "cache.db"
    with open(victim, "r+b") as f:  # overwrite the header while the cache holds it open
        f.write(b"\0" * 4096)
    caplog.set_level(logging.WARNING)
    assert sum(cache.get(k) is not None for k in keys) >= 48  # the open cache goes on working
    # a later process finds the damage, rebuilds that shard and keeps the others
    later = Cache(enable_memory=False, disk_dir=str(root))
    assert sum(later.get(k) is not None for k in keys) >= 48
    assert later.enable_disk and len([r for r in caplog.records if "damaged" in r.getMessage()]) == 1
    _fill(later, 64)
    assert all(Cache(enable_memory=False, disk_dir=str(root)).get(k) is not None for k in keys)


def test_shard_that_fails_mid_run_is_rebuilt_once(tmp_path, caplog):
    cache = Cache(enable_memory=False, disk_dir=str(tmp_path / "cache"))
    keys = _fill(cache, 64)
    shards = cache._disk_shards()
    broken = shards[0]

    def malformed(*args, **kwargs):
        raise sqlite3.DatabaseError("database disk image is malformed")

    broken.get = malformed
    broken.set = malformed
    caplog.set_level(logging.WARNING)
    found = sum(cache.get(k) is not None for k in keys)
    assert 32 <= found < 64  # the rebuilt shard lost its entries, the others did not
    _fill(cache, 64)
    assert all(cache.get(k) is not None for k in keys) and cache.enable_disk
    assert len([r for r in caplog.records if "damaged" in r.getMessage()]) == 1


@pytest.mark.parametrize("content", [b"\x80\x04\x95 not json", b"[" * 200_000, b"[1, 2]", b'{"format": 5'])
def test_damaged_checkpoint_state_restarts_with_a_warning(tmp_path, caplog, content):
    from textgrad_like.optim.checkpoint import Checkpoint

    ckpt = Checkpoint(tmp_path / "ckpt")
    ckpt.save({"format": "x", "events": []})
    (tmp_path / "ckpt" / "state.json").write_bytes(content)
    caplog.set_level(logging.WARNING)
    assert ckpt.load() is None
    assert any("starting the search over" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("damage", ["demo_candidates", "instruction_candidates", "events", "history"])
def test_hostile_mipro_state_is_a_typed_error(tmp_path, damage):
    import json

    from textgrad_like.errors import OptimizerError

    ckpt = tmp_path / "ckpt"
    run_mipro(CountingLM(), str(ckpt))
    state = json.loads((ckpt / "state.json").read_text())
    state[damage] = {"demo_candidates": {"0": [[5]]}, "instruction_candidates": {"x": ["a"]},
                     "events": [{"kind": "default"}], "history": [{"score": "NaN?"}]}[damage]
    (ckpt / "state.json").write_text(json.dumps(state))
    with pytest.raises(OptimizerError, match="damaged"):
        run_mipro(CountingLM(), str(ckpt))
