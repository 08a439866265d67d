"""DSPy parity: DSPy's own offline tests, run against ``textgrad_like`` under the name ``dspy``.

    python benchmarks/dspy_parity.py [--dspy-tests DIR | --dspy-src DIR | --dspy-version V]
                                     [--groups signatures,primitives,...] [--failures FILE]
                                     [--baseline-python PY | --no-baseline] [--json FILE] [--markdown]

What it does
    1. Finds DSPy's test files (never copied into this repository):
       ``--dspy-tests DIR`` (a folder holding DSPy's ``tests/`` tree, or the tree itself),
       ``--dspy-src DIR`` (a DSPy source checkout), the git-ignored cache ``.dspy-tests/`` at the
       repository root, or else the dspy source distribution from PyPI
       (``pip download --no-deps --no-binary :all: dspy==V``). DSPy's sdists carry almost none of
       the tests (3.4.1 ships two), so in practice the tests come from a checkout or the cache.
    2. Copies the test files of the chosen groups into a temporary folder, with a ``conftest.py``
       and a pytest plugin of our own (DSPy's top-level conftest is not used: it imports DSPy's
       private helpers).
    3. Runs pytest once per group in a subprocess in which ``import dspy`` (and every
       ``dspy.x.y``) resolves to ``textgrad_like`` (``textgrad_like.x.y``) through a meta path
       finder (:class:`DspyAlias`), and, for the baseline column, once more with the real DSPy
       (``/work/dspy-venv/bin/python`` by default, or ``--baseline-python``).
    4. Prints, per group: our passes over the counted tests, DSPy's passes on itself, the tests
       kept out as intentional differences (listed below, each with its reason) and the skipped
       ones (network, API keys, optional dependencies, DSPy's opt-in markers).

    Both sides run offline: HTTP(S) proxies point at a closed local port, so a test that would
    reach a provider fails at once, and only dummy API keys are set (DSPy checks for a key before
    calling a mocked client). Each test has a time limit (``--test-timeout``, 60 s).

Counting
    A test is *counted* when it is collected and not skipped, is not an intentional difference,
    and — when the baseline ran — passes on DSPy itself (the stored test files can be from a
    slightly different DSPy commit than the installed release; a test DSPy fails on itself is no
    specification of its behaviour). A test file that fails to import under the alias counts
    each of its tests as failed. Intentional differences are shown in their own column and
    listed with ``--failures``; they never raise or lower the pass rate silently.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO / ".dspy-tests"
DEFAULT_BASELINE_PYTHON = Path("/work/dspy-venv/bin/python")

# group -> paths under DSPy's tests/ (folders or files)
GROUPS: dict[str, list[str]] = {
    "signatures": ["signatures"],
    "primitives": ["primitives"],
    "predict": ["predict"],
    "evaluate": ["evaluate"],
    "utils/saving": ["utils/test_saving.py"],
    "callback": ["callback"],
    "teleprompt": ["teleprompt"],
    "adapters": ["adapters"],
}

# Tests that pin DSPy's private helpers or its exact prompt wording. They are run and shown, but
# kept out of the pass rate; docs/migrating-from-dspy.md lists them. Key: a test id
# ("tests/x/test_y.py::test_z", parameters ignored) or a whole file ("tests/x/test_y.py").
INTENTIONAL: dict[str, str] = {
    # DSPy's private module paths and helpers
    "tests/utils/test_saving.py::test_load_with_version_mismatch":
        "patches DSPy's private dspy.primitives.base_module / dspy.utils.saving.get_dependency_versions",
    "tests/primitives/test_base_module.py::test_load_with_version_mismatch":
        "patches DSPy's private dspy.primitives.base_module.get_dependency_versions",
    "tests/predict/test_predict.py::test_lm_usage":
        "patches DSPy's private dspy.clients.lm.litellm_completion",
    "tests/predict/test_predict.py::test_lm_usage_with_parallel":
        "patches DSPy's private dspy.clients.lm.litellm_completion",
    # DSPy's exact prompt wording (ours is our own text; DSPy's field markers are still parsed)
    "tests/adapters/test_chat_adapter.py::test_chat_adapter_format_exact_messages_for_simple_signature":
        "compares DSPy's exact ChatAdapter prompt text",
    "tests/adapters/test_chat_adapter.py::test_format_system_message":
        "compares DSPy's exact ChatAdapter system message",
    "tests/adapters/test_two_step_adapter.py::test_two_step_adapter_call":
        "pins DSPy's TwoStepAdapter prompt text (\"You are a helpful assistant that can solve tasks ...\")",
    "tests/adapters/test_chat_adapter.py::test_chat_adapter_formats_conversation_history":
        "pins DSPy's [[ ## field ## ]] markers in history turns (ours: our own turn format)",
    # DSPy's state-file layout where ours is a superset
    "tests/signatures/test_signature.py::test_dump_and_load_state":
        "exact dict equality of Signature.dump_state(); ours adds name/kind/type/desc to DSPy's prefix/description "
        "so a state from another program is refused by field name (DSPy's positional files still load)",
    "tests/adapters/test_code.py::test_code_with_language":
        "checks DSPy's wording of the Code type description shown to the LM (\"Programming language: java\")",
    # PyTorch shape wins
    "tests/primitives/test_base_module.py::test_deepcopy_basic":
        "len(module.parameters()): parameters() is torch's iterator of Parameter objects, not a list of "
        "predictors (DSPy idiom: module.predictors())",
    "tests/primitives/test_base_module.py::test_deepcopy_with_uncopyable_modules":
        "len(module.parameters()): parameters() is torch's iterator (DSPy idiom: module.predictors())",
    "tests/primitives/test_base_module.py::test_deepcopy_with_nested_modules":
        "len(module.parameters()): parameters() is torch's iterator (DSPy idiom: module.predictors())",
    "tests/predict/test_predict.py::test_load_state_chaining":
        "compares two predictors' demos with ==: demos is a Demos parameter and parameters compare by identity, "
        "as torch parameters do (DSPy idiom: list(a.demos) == list(b.demos))",
    # logging configuration
    "tests/primitives/test_base_module.py::test_forward_direct_call_warning":
        "reads the warning from stderr under pytest: DSPy attaches its own stderr handler to the 'dspy' logger; "
        "we log the same warning and leave handlers to the application (pytest's log capture takes it)",
    # behaviour we implement where DSPy has a placeholder
    "tests/teleprompt/test_ensemble.py::test_ensemble_deterministic_behavior":
        "DSPy raises a TODO AssertionError for deterministic=True; ours implements deterministic ensembles",
}

# DSPy's opt-in markers: tests behind them need a live LM, network or extra installs.
OPT_IN_MARKERS = ("reliability", "extra", "llm_call", "deno")


# --------------------------------------------------------------------------------------------
# The alias: ``dspy`` and ``dspy.*`` resolve to ``textgrad_like`` and ``textgrad_like.*``.
# --------------------------------------------------------------------------------------------
class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # a throwaway module; exec_module swaps in the real one

    def exec_module(self, module: ModuleType) -> None:
        real = importlib.import_module(self.target)
        # importlib reads the module back from sys.modules after exec_module, so the alias name
        # ends up bound to the very same module object: ``dspy.Example is textgrad_like.Example``.
        sys.modules[module.__spec__.name] = real


class DspyAlias(importlib.abc.MetaPathFinder):
    """Meta path finder mapping ``alias`` / ``alias.x.y`` onto ``target`` / ``target.x.y``.

    The aliased name is bound to the target's own module object, so classes, ``isinstance`` and
    ``unittest.mock.patch("dspy.x.y.name")`` act on ``textgrad_like`` itself. A submodule the
    target lacks raises ``ModuleNotFoundError`` under its alias name, as a missing DSPy module would.
    """

    def __init__(self, alias: str = "dspy", target: str = "textgrad_like") -> None:
        self.alias = alias
        self.target = target

    def _target_name(self, fullname: str) -> str | None:
        if fullname == self.alias:
            return self.target
        if fullname.startswith(self.alias + "."):
            return self.target + fullname[len(self.alias):]
        return None

    def find_spec(self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None):
        real_name = self._target_name(fullname)
        if real_name is None:
            return None
        try:
            real_spec = importlib.util.find_spec(real_name)
        except ModuleNotFoundError:
            real_spec = None
        if real_spec is None:
            raise ModuleNotFoundError(f"No module named {fullname!r} (looked for {real_name!r})", name=fullname)
        is_package = real_spec.submodule_search_locations is not None
        spec = importlib.machinery.ModuleSpec(fullname, _AliasLoader(real_name), is_package=is_package)
        if is_package:
            spec.submodule_search_locations = list(real_spec.submodule_search_locations or [])
        return spec


def install_alias(alias: str = "dspy", target: str = "textgrad_like") -> DspyAlias:
    """Put a :class:`DspyAlias` first on ``sys.meta_path`` (idempotent) and return it."""
    for finder in sys.meta_path:
        if isinstance(finder, DspyAlias) and finder.alias == alias:
            return finder
    finder = DspyAlias(alias, target)
    sys.meta_path.insert(0, finder)
    return finder


# --------------------------------------------------------------------------------------------
# Files written into the run folder (our own text, not DSPy's).
# --------------------------------------------------------------------------------------------
_PLUGIN = '''
"""pytest plugin for benchmarks/dspy_parity.py: installs the alias and records every outcome."""
import importlib.util
import json
import os
import signal

import pytest

if os.environ.get("DSPY_PARITY_ALIAS") == "1":
    _spec = importlib.util.spec_from_file_location("_dspy_parity_harness", os.environ["DSPY_PARITY_SCRIPT"])
    _harness = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_harness)
    _harness.install_alias()

_OUT = os.environ["DSPY_PARITY_RESULTS"]
_LIMIT = float(os.environ.get("DSPY_PARITY_TEST_TIMEOUT", "60"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Fail a test that runs past the limit (a stuck network call must not stall the group)."""

    def _alarm(signum, frame):
        raise TimeoutError(f"test ran past {_LIMIT:.0f}s (dspy_parity limit)")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, _LIMIT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _emit(record):
    with open(_OUT, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\\n")


def _message(report):
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple):  # skips: (file, line, reason)
        return str(longrepr[2])
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return crash.message
    text = str(longrepr).strip().splitlines()
    errors = [line for line in text if line.startswith("E ")]
    return (errors[-1] if errors else (text[-1] if text else ""))


def pytest_collectreport(report):
    if report.failed:
        _emit({"nodeid": report.nodeid, "kind": "collect", "outcome": "error",
               "message": _message(report)[:400]})


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        outcome = report.outcome
        if getattr(report, "wasxfail", None) is not None:
            outcome = "xfail"
        elif report.when != "call" and report.outcome == "failed":
            outcome = "error"
        _emit({"nodeid": report.nodeid, "kind": report.when, "outcome": outcome,
               "message": _message(report)[:400]})
'''

_CONFTEST = '''
"""Fixtures for running DSPy's tests under benchmarks/dspy_parity.py (written for this harness)."""
import copy
import os

import pytest

ALIASED = os.environ.get("DSPY_PARITY_ALIAS") == "1"
OPT_IN = %(opt_in)r


def _reset():
    import dspy

    if ALIASED:
        from textgrad_like.settings import settings

        settings.reset()
        try:
            dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
        except TypeError:
            dspy.configure_cache(enable_disk=False)
    else:
        import importlib

        dspy_settings = importlib.import_module("dspy.dsp.utils.settings")

        dspy_settings.main_thread_config = copy.deepcopy(dspy_settings.DEFAULT_CONFIG)
        dspy_settings.config_owner_thread_id = None
        dspy_settings.config_owner_async_task = None
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)


@pytest.fixture(autouse=True)
def _parity_fresh_settings():
    _reset()
    yield
    _reset()


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def lm_for_test():
    pytest.skip("needs a real LM (LM_FOR_TEST)")


@pytest.fixture
def litellm_test_server():
    pytest.skip("needs DSPy's local LiteLLM proxy test server")


def pytest_configure(config):
    for flag in OPT_IN:
        config.addinivalue_line("markers", flag)
    config.addinivalue_line("markers", "xdist_group(name): unused here")


def pytest_collection_modifyitems(config, items):
    # a test that interrupts its own process (SIGINT) runs last, so a stray KeyboardInterrupt cannot end
    # the session before the tests after it have run
    items.sort(key=lambda item: "cancelled" in item.name)
    for item in items:
        for flag in OPT_IN:
            if flag in item.keywords:
                item.add_marker(pytest.mark.skip(reason=f"DSPy opt-in marker '{flag}' (live LM / extras)"))
'''

_PYTEST_INI = """[pytest]
addopts =
asyncio_default_fixture_loop_scope = function
filterwarnings = ignore
"""


# --------------------------------------------------------------------------------------------
# Finding DSPy's tests.
# --------------------------------------------------------------------------------------------
def _tests_root(folder: Path) -> Path | None:
    """``folder/tests`` or ``folder`` itself, whichever holds DSPy's test groups."""
    for candidate in (folder / "tests", folder):
        if candidate.is_dir() and any((candidate / g).exists() for paths in GROUPS.values() for g in paths):
            return candidate
    return None


def _from_sdist(version: str | None) -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "textgrad_like" / "dspy-sdist"
    cache.mkdir(parents=True, exist_ok=True)
    spec = f"dspy=={version}" if version else "dspy"
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", spec,
                    "-d", str(cache)], check=True)
    archives = sorted(cache.glob(f"dspy-{version or '*'}.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not archives:
        raise SystemExit(f"pip download left no dspy sdist in {cache}")
    target = cache / archives[-1].name.removesuffix(".tar.gz")
    if not target.exists():
        with tarfile.open(archives[-1]) as tar:
            tar.extractall(cache, filter="data")
    root = _tests_root(target)
    if root is None:
        raise SystemExit(
            f"{archives[-1].name} carries no DSPy test groups under tests/ (DSPy's sdists ship almost none).\n"
            "Pass --dspy-tests DIR (a folder with DSPy's tests/ tree, e.g. from a DSPy git checkout) "
            "or --dspy-src DIR."
        )
    return root


def find_tests(args: argparse.Namespace) -> Path:
    for option, folder in (("--dspy-tests", args.dspy_tests), ("--dspy-src", args.dspy_src)):
        if folder:
            root = _tests_root(Path(folder))
            if root is None:
                raise SystemExit(f"{option} {folder}: no DSPy test groups ({', '.join(GROUPS)}) found there")
            return root
    if args.dspy_version is None:
        root = _tests_root(DEFAULT_CACHE)
        if root is not None:
            return root
    return _from_sdist(args.dspy_version)


def _count_tests_in_file(path: Path) -> int:
    """Test functions in a file that could not be collected (parametrizations count once)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return 1
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            count += 1
    return max(count, 1)


# --------------------------------------------------------------------------------------------
# Running.
# --------------------------------------------------------------------------------------------
def prepare_run_dir(tests_root: Path, groups: list[str]) -> Path:
    run = Path(tempfile.mkdtemp(prefix="dspy_parity_"))
    dest = run / "tests"
    dest.mkdir()
    (dest / "__init__.py").write_text("")

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n in ("__pycache__",) or (Path(folder) == tests_root and n == "conftest.py")}

    for item in tests_root.iterdir():
        if item.name == "conftest.py" or item.name == "__pycache__":
            continue
        if item.is_dir():
            shutil.copytree(item, dest / item.name, ignore=ignore)
        else:
            shutil.copy2(item, dest / item.name)
    (dest / "conftest.py").write_text(_CONFTEST % {"opt_in": OPT_IN_MARKERS})
    (run / "_dspy_parity_plugin.py").write_text(_PLUGIN)
    (run / "pytest.ini").write_text(_PYTEST_INI)
    return run


def run_group(python: str, run: Path, group: str, aliased: bool, timeout: float,
              test_timeout: float = 60.0) -> list[dict]:
    paths = [str(Path("tests") / p) for p in GROUPS[group] if (run / "tests" / p).exists()]
    if not paths:
        return []
    results = run / f"results-{'ours' if aliased else 'dspy'}-{group.replace('/', '_')}.jsonl"
    env = dict(os.environ)
    env.update(
        DSPY_PARITY_RESULTS=str(results),
        DSPY_PARITY_SCRIPT=str(Path(__file__).resolve()),
        DSPY_PARITY_ALIAS="1" if aliased else "0",
        PYTHONPATH=str(run),
        PYTHONDONTWRITEBYTECODE="1",
        TEXTGRAD_LIKE_DISK_CACHE="0",
        DSPY_CACHEDIR=str(run / ".dspy_cache"),
        DSPY_PARITY_TEST_TIMEOUT=str(test_timeout),
        # offline: any real network call fails at once instead of waiting on a dead route
        HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
        http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
        NO_PROXY="localhost,127.0.0.1", no_proxy="localhost,127.0.0.1",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    env.pop("LM_FOR_TEST", None)
    # DSPy's tests mock litellm but DSPy checks for a provider key first: a dummy key, never a real one
    env.update(OPENAI_API_KEY="sk-dspy-parity-dummy", ANTHROPIC_API_KEY="sk-ant-dspy-parity-dummy")
    cmd = [python, "-m", "pytest", "-q", "-p", "_dspy_parity_plugin", "-p", "no:cacheprovider",
           "--import-mode=importlib", "--continue-on-collection-errors", "--rootdir", str(run), "-c", str(run / "pytest.ini"), *paths]
    try:
        proc = subprocess.run(cmd, cwd=run, env=env, capture_output=True, text=True, timeout=timeout)
        tail = proc.stdout[-2000:] + proc.stderr[-2000:]
    except subprocess.TimeoutExpired:
        tail = f"timed out after {timeout:.0f}s"
    records = []
    if results.exists():
        records = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines() if line]
    if not records:
        records.append({"nodeid": paths[0], "kind": "collect", "outcome": "error",
                        "message": "pytest produced no results: " + tail.strip().splitlines()[-1:][0]
                        if tail.strip() else "pytest produced no results"})
    return records


def _base_id(nodeid: str) -> str:
    return nodeid.split("[", 1)[0]


def intentional_reason(nodeid: str) -> str | None:
    base = _base_id(nodeid)
    return INTENTIONAL.get(base) or INTENTIONAL.get(base.split("::", 1)[0])


def _outcomes(records: list[dict]) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """Per test id: (outcome, message), the worst seen; and per file that failed to collect: message."""
    rank = {"passed": 0, "xfail": 1, "skipped": 1, "failed": 2, "error": 3}
    tests: dict[str, tuple[str, str]] = {}
    broken: dict[str, str] = {}
    for rec in records:
        if rec["kind"] == "collect":
            broken[rec["nodeid"]] = rec["message"]
            continue
        previous = tests.get(rec["nodeid"])
        if previous is None or rank[rec["outcome"]] > rank[previous[0]]:
            tests[rec["nodeid"]] = (rec["outcome"], rec["message"])
    return tests, broken


def summarize(group: str, ours: list[dict], base: list[dict] | None, run: Path) -> dict:
    our_tests, our_broken = _outcomes(ours)
    row: dict = {"group": group, "passed": 0, "counted": 0, "intentional": [], "skipped": [], "failed": [],
                 "not_counted": []}
    if base is not None:
        base_tests, base_broken = _outcomes(base)
        row["dspy_passed"] = sum(1 for o, _ in base_tests.values() if o == "passed")
        row["dspy_total"] = sum(1 for o, _ in base_tests.values() if o not in ("skipped", "xfail"))
        row["dspy_broken_files"] = base_broken
        universe = sorted(set(base_tests) | set(our_tests))
    else:
        base_tests = {}
        universe = sorted(our_tests)
    for nodeid in universe:
        outcome, message = our_tests.get(nodeid, (None, ""))
        if outcome is None:
            file = nodeid.split("::", 1)[0]
            outcome, message = "error", "not collected: " + our_broken.get(file, "file did not import")
        reason = intentional_reason(nodeid)
        if reason:
            row["intentional"].append((nodeid, outcome, reason))
            continue
        if outcome in ("skipped", "xfail"):
            row["skipped"].append((nodeid, message))
            continue
        if base is not None:
            b_outcome, b_message = base_tests.get(nodeid, ("missing", ""))
            if b_outcome != "passed":
                row["not_counted"].append((nodeid, f"DSPy on itself: {b_outcome} {b_message}".strip()))
                continue
        row["counted"] += 1
        if outcome == "passed":
            row["passed"] += 1
        else:
            row["failed"].append((nodeid, message))
    if base is None:  # files that never imported: estimate their tests from the source
        for file, message in our_broken.items():
            if not any(n.startswith(file + "::") for n in our_tests) and not intentional_reason(file):
                n = _count_tests_in_file(run / file)
                row["counted"] += n
                row["failed"].append((file, f"{n} test(s) not collected: {message}"))
    return row


def _pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:5.1f}%" if b else "   n/a"


def print_table(rows: list[dict], baseline: bool) -> None:
    head = f"{'group':<14}{'ours':>16}"
    head += f"{'DSPy on itself':>22}" if baseline else ""
    head += f"{'intentional':>13}{'skipped':>9}"
    print(head)
    print("-" * len(head))
    tot_p = tot_c = tot_dp = tot_dt = tot_i = tot_s = 0
    for r in rows:
        line = f"{r['group']:<14}{r['passed']:>5}/{r['counted']:<4}{_pct(r['passed'], r['counted']):>7}"
        if baseline:
            line += f"{r['dspy_passed']:>11}/{r['dspy_total']:<4}{_pct(r['dspy_passed'], r['dspy_total']):>7}"
            tot_dp += r["dspy_passed"]
            tot_dt += r["dspy_total"]
        line += f"{len(r['intentional']):>13}{len(r['skipped']):>9}"
        print(line)
        tot_p += r["passed"]
        tot_c += r["counted"]
        tot_i += len(r["intentional"])
        tot_s += len(r["skipped"])
    print("-" * len(head))
    line = f"{'all':<14}{tot_p:>5}/{tot_c:<4}{_pct(tot_p, tot_c):>7}"
    if baseline:
        line += f"{tot_dp:>11}/{tot_dt:<4}{_pct(tot_dp, tot_dt):>7}"
    print(line + f"{tot_i:>13}{tot_s:>9}")


def markdown_table(rows: list[dict], baseline: bool) -> str:
    """The figures as a markdown table (for the README and docs/migrating-from-dspy.md)."""
    head = "| group | textgrad_like (passed / counted) |" + (" DSPy on itself |" if baseline else "") + \
        " intentional differences | skipped |"
    lines = [head, "|---|---|" + ("---|" if baseline else "") + "---|---|"]
    for r in rows:
        line = f"| {r['group']} | {r['passed']}/{r['counted']} ({_pct(r['passed'], r['counted']).strip()}) |"
        if baseline:
            line += f" {r['dspy_passed']}/{r['dspy_total']} ({_pct(r['dspy_passed'], r['dspy_total']).strip()}) |"
        lines.append(line + f" {len(r['intentional'])} | {len(r['skipped'])} |")
    return "\n".join(lines)


def write_failures(rows: list[dict], path: Path) -> None:
    out = ["# DSPy parity: per-test results", ""]
    for r in rows:
        out.append(f"## {r['group']}: {r['passed']}/{r['counted']} passed")
        out.append("")
        for title, items in (("Failing", r["failed"]), ("Not counted", r["not_counted"]),
                             ("Skipped", r["skipped"])):
            if items:
                out.append(f"### {title}")
                out.extend(f"- `{nodeid}` — {message.splitlines()[0] if message else ''}" for nodeid, message in items)
                out.append("")
        broken = r.get("dspy_broken_files") or {}
        if broken:
            out.append("### Files DSPy itself cannot import (not counted)")
            out.extend(f"- `{file}` — {message}" for file, message in broken.items())
            out.append("")
        if r["intentional"]:
            out.append("### Intentional differences")
            out.extend(f"- `{nodeid}` ({outcome}) — {reason}" for nodeid, outcome, reason in r["intentional"])
            out.append("")
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dspy-tests", help="folder with DSPy's tests/ tree (or the tree itself)")
    parser.add_argument("--dspy-src", help="a DSPy source checkout")
    parser.add_argument("--dspy-version", help="take the tests from this dspy sdist on PyPI")
    parser.add_argument("--groups", default=",".join(GROUPS), help="comma-separated, from: " + ", ".join(GROUPS))
    parser.add_argument("--failures", help="write the per-test failures (markdown) here")
    parser.add_argument("--json", help="write the raw per-group figures here")
    parser.add_argument("--baseline-python", default=os.environ.get("DSPY_PARITY_BASELINE_PYTHON"),
                        help=f"python with the real dspy and pytest (default {DEFAULT_BASELINE_PYTHON} if present)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the DSPy-on-itself column")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per group and side")
    parser.add_argument("--test-timeout", type=float, default=60.0, help="seconds per test")
    parser.add_argument("--keep", action="store_true", help="keep the temporary run folder")
    parser.add_argument("--markdown", action="store_true", help="also print the figures as a markdown table")
    args = parser.parse_args(argv)

    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {unknown}; choose from {list(GROUPS)}")
    baseline_python = None
    if not args.no_baseline:
        baseline_python = args.baseline_python or (str(DEFAULT_BASELINE_PYTHON) if DEFAULT_BASELINE_PYTHON.exists()
                                                   else None)
    tests_root = find_tests(args)
    run = prepare_run_dir(tests_root, groups)
    print(f"DSPy tests from {tests_root}; run folder {run}", file=sys.stderr)
    rows = []
    try:
        for group in groups:
            started = time.time()
            ours = run_group(sys.executable, run, group, aliased=True, timeout=args.timeout,
                             test_timeout=args.test_timeout)
            base = run_group(baseline_python, run, group, aliased=False, timeout=args.timeout,
                             test_timeout=args.test_timeout) if baseline_python else None
            rows.append(summarize(group, ours, base, run))
            print(f"  {group}: {time.time() - started:.0f}s", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(run, ignore_errors=True)
    print_table(rows, baseline=baseline_python is not None)
    if baseline_python is None:
        print("(no baseline: pass --baseline-python PY with the real dspy and pytest installed)")
    print(textwrap.dedent("""
        ours: passed / counted (collected, not skipped, not intentional, and passed by DSPy on itself
        when the baseline ran); DSPy on itself: passed / collected-and-not-skipped with the real dspy."""))
    if args.markdown:
        print(markdown_table(rows, baseline=baseline_python is not None))
    if args.failures:
        write_failures(rows, Path(args.failures))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
