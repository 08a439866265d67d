"""RunHistory: recording rows, best-so-far, JSON round trips, thread safety and the PNG curve."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from textgrad_like.errors import ConfigurationError
from textgrad_like.primitives.run_history import RunHistory


def test_record_fills_defaults_and_best_so_far():
    h = RunHistory("demo", metadata={"optimizer": "bootstrap"})
    r0 = h.record(0.2, lm_calls=10, tokens=1000, cost=0.01)
    assert r0 == {"step": 0, "score": 0.2, "lm_calls": 10, "tokens": 1000, "cost": 0.01, "best_so_far": 0.2}
    h.record(0.5, lm_calls=25, tokens=2600, cost=0.03, candidate="prompt B")
    r2 = h.record(0.4)  # spend columns repeat the last row, step counts up
    assert (r2["step"], r2["lm_calls"], r2["tokens"], r2["cost"], r2["best_so_far"]) == (2, 25, 2600, 0.03, 0.5)
    h.record(0.7, step=10, lm_calls=40)
    assert h.column("best_so_far") == [0.2, 0.5, 0.5, 0.7]
    assert h.column("candidate") == [None, "prompt B", None, None]
    assert h.best["step"] == 10 and h.best_score == 0.7
    assert len(h) == 4 and h[1]["candidate"] == "prompt B" and [r["step"] for r in h] == [0, 1, 2, 10]
    h.rows[0]["score"] = 99  # rows are copies
    assert h[0]["score"] == 0.2
    assert "best=0.7" in repr(h)


def test_lower_is_better_and_usage_object():
    h = RunHistory("loss", higher_is_better=False)
    usage = SimpleNamespace(calls=3, total_tokens=300, cost=0.5)
    row = h.record(2.0, usage=usage)
    assert (row["lm_calls"], row["tokens"], row["cost"]) == (3, 300, 0.5)
    h.record(1.0, usage=SimpleNamespace(calls=6, total_tokens=700, cost=1.0))
    h.record(1.5, usage=usage, lm_calls=9)  # explicit values win over usage
    assert h.column("best_so_far") == [2.0, 1.0, 1.0]
    assert h[2]["lm_calls"] == 9 and h.best["score"] == 1.0


def test_record_validation():
    h = RunHistory()
    assert h.best is None and h.best_score is None
    for bad in ("high", None, float("nan")):
        with pytest.raises(ConfigurationError):
            h.record(bad)
    with pytest.raises(ConfigurationError, match="best_so_far"):
        h.record(1.0, best_so_far=3)
    with pytest.raises(ConfigurationError, match="Nothing to plot"):
        h.plot("x.png")
    assert len(h) == 0


def test_json_round_trip_and_files(tmp_path):
    h = RunHistory("rt", higher_is_better=True, metadata={"model": "m"})
    h.record(0.1, lm_calls=1, tokens=10, cost=0.0)
    h.record(0.3, lm_calls=2, tokens=20, cost=0.001, note={"k": [1, 2]})
    again = RunHistory.from_json(h.to_json())
    assert again.rows == h.rows and again.name == "rt" and again.metadata == {"model": "m"}
    path = h.save(tmp_path / "sub" / "history.json")
    assert json.loads(path.read_text())["rows"][1]["note"] == {"k": [1, 2]}
    loaded = RunHistory.load(path)
    assert loaded.rows == h.rows and loaded.best_score == 0.3
    loaded.record(0.2)  # continues from the loaded state
    assert loaded[-1]["best_so_far"] == 0.3 and loaded[-1]["step"] == 2
    with pytest.raises(ConfigurationError, match="not JSON"):
        RunHistory.from_json("{oops")
    with pytest.raises(ConfigurationError, match="rows"):
        RunHistory.from_json('{"name": "x"}')
    with pytest.raises(ConfigurationError, match="lacks"):
        RunHistory.from_json('{"rows": [{"score": 1}]}')


def test_concurrent_records_are_all_kept():
    h = RunHistory()
    per_thread, threads = 200, 8

    def work(offset: int) -> None:
        for i in range(per_thread):
            h.record((offset * per_thread + i) / 10_000, lm_calls=i)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    rows = h.rows
    assert len(rows) == per_thread * threads
    assert [r["step"] for r in rows] == list(range(len(rows)))  # auto steps never collide
    best = float("-inf")
    for r in rows:  # best_so_far is the running max in record order
        best = max(best, r["score"])
        assert r["best_so_far"] == best
    assert h.best_score == max(r["score"] for r in rows)


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=30),
       st.booleans())
def test_best_so_far_property(scores, higher):
    h = RunHistory(higher_is_better=higher)
    for s in scores:
        h.record(s)
    pick = max if higher else min
    assert h.column("best_so_far") == [pick(scores[: i + 1]) for i in range(len(scores))]
    assert h.best_score == pick(scores)
    assert h.best["step"] == scores.index(pick(scores))


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    h = RunHistory("curve")
    for i, s in enumerate([0.1, 0.4, 0.3, 0.6, 0.55]):
        h.record(s, lm_calls=(i + 1) * 12, tokens=(i + 1) * 900, cost=i * 0.002)
    other = RunHistory("baseline")
    for i, s in enumerate([0.2, 0.25, 0.3]):
        other.record(s, lm_calls=(i + 1) * 20)
    out = h.plot(tmp_path / "plots" / "curve.png", others={"baseline": other})
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (700, 450)
    for x in ("tokens", "cost", "step"):
        assert h.plot(tmp_path / f"{x}.png", x=x).stat().st_size > 5_000
    with pytest.raises(ConfigurationError, match="x must be"):
        h.plot(tmp_path / "bad.png", x="score")
