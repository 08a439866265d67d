"""The import alias used by benchmarks/dspy_parity.py: ``dspy.*`` resolves to ``textgrad_like.*``."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "dspy_parity.py"


def _harness():
    spec = importlib.util.spec_from_file_location("_dspy_parity_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(code: str) -> subprocess.CompletedProcess:
    prelude = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('h', {str(SCRIPT)!r})\n"
        "h = importlib.util.module_from_spec(spec); spec.loader.exec_module(h)\n"
        "h.install_alias()\n"
    )
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=120)


def test_alias_binds_the_same_module_objects():
    result = _run(
        "import dspy, textgrad_like\n"
        "from dspy.primitives.example import Example\n"
        "import dspy.primitives.prediction as p\n"
        "import textgrad_like.primitives.prediction as q\n"
        "assert dspy is textgrad_like\n"
        "assert Example is textgrad_like.Example\n"
        "assert p is q and sys.modules['dspy.primitives.prediction'] is q\n"
        "assert q.__name__ == 'textgrad_like.primitives.prediction'\n"
        "print('ok')\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_alias_missing_submodule_raises_module_not_found_under_alias_name():
    result = _run(
        "try:\n"
        "    import dspy.no_such_module_here\n"
        "except ModuleNotFoundError as e:\n"
        "    print(e.name)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "dspy.no_such_module_here"


def test_alias_lets_mock_patch_reach_the_target():
    result = _run(
        "from unittest.mock import patch\n"
        "import textgrad_like.primitives.example as ex\n"
        "with patch('dspy.primitives.example._to_plain', return_value='patched'):\n"
        "    assert ex._to_plain(1) == 'patched'\n"
        "print('ok')\n"
    )
    assert result.returncode == 0, result.stderr


def test_install_alias_is_idempotent_and_ignores_other_names():
    harness = _harness()
    before = list(sys.meta_path)
    try:
        first = harness.install_alias()
        second = harness.install_alias()
        assert first is second
        assert sum(isinstance(f, harness.DspyAlias) for f in sys.meta_path) == 1
        assert first.find_spec("json") is None
        assert first.find_spec("dspyx") is None
    finally:
        sys.meta_path[:] = before


def test_intentional_differences_match_by_test_and_by_file(monkeypatch):
    harness = _harness()
    monkeypatch.setattr(harness, "INTENTIONAL", {"tests/a/test_x.py::test_y": "r1", "tests/b/test_z.py": "r2"})
    assert harness.intentional_reason("tests/a/test_x.py::test_y[param-1]") == "r1"
    assert harness.intentional_reason("tests/a/test_x.py::test_other") is None
    assert harness.intentional_reason("tests/b/test_z.py::test_anything") == "r2"


@pytest.mark.parametrize("outcome", ["passed", "failed"])
def test_summary_counts_only_tests_dspy_passes_on_itself(outcome, tmp_path):
    harness = _harness()
    ours = [
        {"nodeid": "tests/p/test_a.py::t1", "kind": "call", "outcome": outcome, "message": ""},
        {"nodeid": "tests/p/test_a.py::t2", "kind": "call", "outcome": "passed", "message": ""},
        {"nodeid": "tests/p/test_a.py::t3", "kind": "setup", "outcome": "skipped", "message": "needs key"},
    ]
    base = [
        {"nodeid": "tests/p/test_a.py::t1", "kind": "call", "outcome": "passed", "message": ""},
        {"nodeid": "tests/p/test_a.py::t2", "kind": "call", "outcome": "failed", "message": "newer dspy"},
        {"nodeid": "tests/p/test_a.py::t3", "kind": "call", "outcome": "passed", "message": ""},
        {"nodeid": "tests/p/test_b.py::t4", "kind": "call", "outcome": "passed", "message": ""},
    ]
    row = harness.summarize("g", ours + [{"nodeid": "tests/p/test_b.py", "kind": "collect", "outcome": "error",
                                          "message": "ImportError: x"}], base, tmp_path)
    assert row["counted"] == 2  # t1 and t4 (t2: DSPy fails it; t3: skipped for us)
    assert row["passed"] == (1 if outcome == "passed" else 0)
    assert [n for n, _ in row["skipped"]] == ["tests/p/test_a.py::t3"]
    assert any("ImportError: x" in m for n, m in row["failed"] if n.endswith("t4"))
