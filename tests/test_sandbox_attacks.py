"""Attacks on the sandbox that once worked (issue 18, items 1-3), each reproduced.

1. Code that keeps running after ``execute`` returns (a Web Worker, a worker from
   ``node:worker_threads``, timers and promise callbacks, a forged reply on the runner's
   stdout or through the host-call bridge) and reads or forges the next call.
2. A flood of output on the sandbox's stdout and stderr (twelve 50 MB lines on each).
3. Symbolic and hard links inside a granted directory that lead outside it.

Each attack must be refused (or come to nothing), the next call must return its true
result, and no Deno process may outlive its interpreter.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import psutil
import pytest

from textgrad_like.errors import InterpreterError
from textgrad_like.tools.python_interpreter import (
    PythonInterpreter,
    SandboxPermissionError,
    setup_sandbox,
)

REPO = Path(__file__).resolve().parents[1]


def _load_attacks():
    spec = importlib.util.spec_from_file_location("sandbox_attacks", REPO / "benchmarks" / "sandbox_attacks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


attacks = _load_attacks()  # the attack code lives once, in benchmarks/sandbox_attacks.py
WORKER_ROUTES = attacks.WORKER_ROUTES
_threads = attacks.thread_names
_gone = attacks.gone


def _deno_children() -> list[int]:
    return [p.pid for p in psutil.Process().children(recursive=True) if "deno" in (p.name() or "")]


@pytest.fixture(scope="module")
def sandbox():
    setup_sandbox()
    interp = PythonInterpreter(timeout=8.0, startup_timeout=180.0)
    interp.start()
    yield interp
    interp.shutdown()


def _true_result_follows(interp: PythonInterpreter) -> None:
    """A later call with a secret input returns its own, true result."""
    assert attacks.true_result_follows(interp)


# ---------------------------------------------------------------------------
# 1. Nothing of the sandboxed program runs after execute returns
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("route", list(WORKER_ROUTES))
def test_a_worker_cannot_outlive_execute(sandbox, route):
    try:
        sandbox.execute(WORKER_ROUTES[route])
    except InterpreterError:
        pass  # refused (the expected outcome), or the sandbox was stopped
    _true_result_follows(sandbox)
    pid = sandbox._proc.pid
    assert not [name for name in _threads(pid) if name.startswith("worker")], _threads(pid)


def test_a_thread_the_host_did_not_expect_stops_the_sandbox(sandbox):
    """The backstop behind the refused constructors: a thread born during execute kills Deno."""
    sandbox.execute("1")
    pid = sandbox._proc.pid
    sandbox._baseline_threads = set()  # pretend every thread of the runner is new
    with pytest.raises(SandboxPermissionError, match="thread"):
        sandbox.execute("2")
    assert _gone(pid)
    _true_result_follows(sandbox)


def test_timers_and_promise_callbacks_never_run_between_calls(sandbox):
    code = attacks.TIMERS_CODE
    assert sandbox.execute(code) == "scheduled"
    time.sleep(0.5)
    assert sandbox.execute("len(fired)") == 0
    _true_result_follows(sandbox)
    assert sandbox.execute("len(fired)") == 0


def test_a_forged_result_on_stdout_is_ignored(sandbox):
    """The code answers its own call on the runner's stdout, then serves the next calls itself."""
    code = attacks.FORGE_STDOUT_CODE
    try:
        assert sandbox.execute(code) != "FORGED-1"
    except InterpreterError:
        pass  # the sandbox waited for the real result and timed out
    _true_result_follows(sandbox)


def test_a_forged_result_through_the_host_call_bridge_is_ignored(sandbox):
    code = attacks.FORGE_BRIDGE_CODE
    try:
        assert sandbox.execute(code) == "true end"
    except InterpreterError:
        pass
    _true_result_follows(sandbox)


def test_no_deno_process_survives_shutdown():
    setup_sandbox()
    before = set(_deno_children())
    interp = PythonInterpreter(timeout=8.0, startup_timeout=180.0)
    interp.start()
    pid = interp._proc.pid
    try:
        interp.execute(WORKER_ROUTES["web-worker-blob"] + "\nimport js\nfrom pyodide.ffi import create_proxy\n"
                       "js.setInterval(create_proxy(lambda: None), 5)")
    except InterpreterError:
        pass
    interp.shutdown()
    assert _gone(pid, within=5.0)
    assert set(_deno_children()) <= before


def test_the_sandbox_dies_with_a_killed_host():
    """kill -9 on the host between calls: the runner sees its stdin close and exits (workers included)."""
    setup_sandbox()
    _, exited = attacks.run_killed_host()
    assert exited, "the Deno process outlived its host"


# ---------------------------------------------------------------------------
# 2. Output floods keep host memory bounded
# ---------------------------------------------------------------------------

FLOOD_MB = int(os.environ.get("TG_FLOOD_MB", "50"))


@pytest.mark.parametrize("stream", [*attacks.FLOODS, "sys.__stderr__"])
def test_an_output_flood_keeps_host_memory_bounded(sandbox, stream):
    if stream == "sys.__stderr__":  # Pyodide's own stderr (slow: it goes through Emscripten's TTY)
        code = attacks.flood_code("sys.stderr", max(1, FLOOD_MB // 10)).replace("sys.stderr.write(text)",
                                                                               "sys.__stderr__.write(text)")
    else:
        code = attacks.flood_code(stream, FLOOD_MB)
    sandbox.timeout = 300.0
    try:
        with attacks.PeakRss() as rss:
            result = sandbox.execute(code)
            assert result == "flooded" or (isinstance(result, str) and result.startswith("x"))
            assert len(result) <= sandbox.max_output_chars + 100
            assert len(sandbox._stderr_text()) <= 64 * 1024
    finally:
        sandbox.timeout = 8.0
    assert rss.growth_mb < attacks.FLOOD_BOUND_MB, f"the host grew by {rss.growth_mb:.0f} MB for {12 * FLOOD_MB} MB"
    _true_result_follows(sandbox)


# ---------------------------------------------------------------------------
# 3. Links inside a grant cannot lead outside it
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    root = tmp_path_factory.mktemp("links")
    attacks.make_link_tree(root)
    data, out = root / "data", root / "out"
    setup_sandbox()
    interp = PythonInterpreter(enable_read_paths=[data], enable_write_paths=[out], timeout=20.0, startup_timeout=180.0)
    interp.start()
    yield root, interp
    interp.shutdown()


def test_a_symlink_in_a_write_grant_cannot_write_outside(linked):
    root, interp = linked
    with pytest.raises(SandboxPermissionError):
        interp.execute("open('/sandbox/out/link', 'w').write('pwned')")
    assert (root / "victim.txt").read_text() == "victim intact\n"
    with pytest.raises(SandboxPermissionError):
        interp.execute(f"import js\njs.Deno.writeTextFileSync({str(root / 'out' / 'link')!r}, 'pwned')")
    assert (root / "victim.txt").read_text() == "victim intact\n"
    assert (root / "out" / "link").is_symlink()


def test_a_hard_link_in_a_write_grant_cannot_write_outside(linked):
    root, interp = linked
    with pytest.raises(SandboxPermissionError):
        interp.execute("open('/sandbox/out/hard', 'w').write('pwned')")
    assert (root / "hard_victim.txt").read_text() == "hard victim intact\n"


def test_a_file_swapped_for_a_symlink_after_start_is_not_followed(linked):
    root, interp = linked
    attacks.swap_in_link(root)
    with pytest.raises(SandboxPermissionError):
        interp.execute("open('/sandbox/out/later.txt', 'w').write('pwned')")
    assert (root / "victim.txt").read_text() == "victim intact\n"


def test_symlinks_in_a_read_grant_cannot_read_outside(linked):
    root, interp = linked
    listing = interp.execute("import os\nsorted(os.listdir('/sandbox/data'))")
    for name in ("hostname", "secret", "etc", "hard_secret"):
        assert name not in listing
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else None
    for path in ("/sandbox/data/hostname", "/sandbox/data/secret", "/sandbox/data/hard_secret", "/sandbox/data/etc/passwd"):
        with pytest.raises(InterpreterError) as info:
            interp.execute(f"open({path!r}).read()")
        assert "TOPSECRET" not in str(info.value)
    for host_path in (root / "data" / "secret", root / "data" / "hostname", root / "data" / "hard_secret"):
        with pytest.raises(SandboxPermissionError) as info:
            interp.execute(f"import js\njs.Deno.readTextFileSync({str(host_path)!r})")
        assert "TOPSECRET" not in str(info.value)
        if hostname:
            assert f"'{hostname}" not in str(info.value)


def test_files_and_links_inside_the_grants_still_work(linked):
    root, interp = linked
    assert interp.execute("open('/sandbox/data/readme.txt').read()") == "readable\n"
    assert interp.execute("open('/sandbox/data/inner_link').read()") == "readable\n"
    before = os.stat(root / "out" / "plain.txt").st_mtime_ns
    assert interp.execute("open('/sandbox/out/plain.txt').read()") == "plain\n"
    assert os.stat(root / "out" / "plain.txt").st_mtime_ns == before  # unchanged files are not copied back
    interp.execute(
        "import os\nopen('/sandbox/out/plain.txt', 'w').write('changed')\n"
        "os.makedirs('/sandbox/out/sub', exist_ok=True)\nopen('/sandbox/out/sub/new.bin', 'wb').write(bytes(range(256)))"
    )
    assert (root / "out" / "plain.txt").read_text() == "changed"
    assert (root / "out" / "sub" / "new.bin").read_bytes() == bytes(range(256))
