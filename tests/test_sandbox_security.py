"""Security tests for the Deno + Pyodide sandbox behind PythonInterpreter.

Each attack must be refused with a typed error, leave the host untouched, and leave the
interpreter usable (or cleanly restarted). One sandbox is shared by the module to keep the
suite quick; every test sets up its own variables.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from textgrad_like.errors import InterpreterError
from textgrad_like.tools.python_interpreter import (
    CodeExecutionError,
    PythonInterpreter,
    SandboxMemoryError,
    SandboxPermissionError,
    SandboxTimeoutError,
    setup_sandbox,
)


@pytest.fixture(scope="module")
def granted(tmp_path_factory):
    root = tmp_path_factory.mktemp("granted")
    (root / "notes.txt").write_text("granted content\n")
    return root


@pytest.fixture(scope="module")
def sandbox(granted):
    setup_sandbox()  # no-op when the Pyodide cache is already there
    interp = PythonInterpreter(
        enable_read_paths=[granted / "notes.txt"], timeout=6.0, memory_limit_mb=256
    )
    interp.start()
    yield interp
    interp.shutdown()


def _assert_alive(interp: PythonInterpreter) -> None:
    assert interp.execute("alive_check = 6 * 7\nalive_check") == 42


# ---------------------------------------------------------------------------
# File system
# ---------------------------------------------------------------------------


def test_reading_etc_passwd_with_open_is_refused(sandbox):
    with pytest.raises(SandboxPermissionError) as info:
        sandbox.execute("open('/etc/passwd').read()")
    assert isinstance(info.value, InterpreterError)
    assert "/etc/passwd" in str(info.value)
    assert "root:" not in str(info.value)
    assert "enable_read_paths" in str(info.value)  # the message says what to do
    _assert_alive(sandbox)


def test_reading_etc_passwd_through_the_js_bridge_is_refused(sandbox):
    with pytest.raises(SandboxPermissionError) as info:
        sandbox.execute("import js\njs.Deno.readTextFileSync('/etc/passwd')")
    assert "NotCapable" in str(info.value)
    assert "root:" not in str(info.value)
    with pytest.raises(SandboxPermissionError):
        sandbox.execute("import js\njs.Deno.readDirSync('/')")
    _assert_alive(sandbox)


def test_writing_a_host_file_is_refused(sandbox, tmp_path):
    target = tmp_path / "owned.txt"
    # Python's own open() only ever reaches the in-memory file system...
    with pytest.raises(CodeExecutionError):
        sandbox.execute(f"open({str(target)!r}, 'w').write('pwned')")
    with pytest.raises(SandboxPermissionError):
        sandbox.execute("open('/etc/cron.d/pwned', 'w').write('pwned')")
    # ...and the JS bridge is stopped by Deno's permissions.
    with pytest.raises(SandboxPermissionError) as info:
        sandbox.execute(f"import js\njs.Deno.writeTextFileSync({str(target)!r}, 'pwned')")
    assert "write access" in str(info.value)
    assert not target.exists()
    _assert_alive(sandbox)


def test_a_granted_read_path_is_readable(sandbox):
    assert sandbox.execute("open('/sandbox/notes.txt').read()") == "granted content\n"


def test_environment_is_not_visible(sandbox):
    with pytest.raises(SandboxPermissionError):
        sandbox.execute("import js\njs.Deno.env.get('HOME')")
    leaked = sandbox.execute("import os\nsorted(k for k in os.environ if 'KEY' in k or 'TOKEN' in k)")
    assert leaked == []


# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------


@pytest.fixture
def loopback_server():
    """A TCP listener on 127.0.0.1 that records any connection it receives."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    hits: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            hits.append(conn)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], hits
    stop.set()
    thread.join(timeout=2)
    server.close()


def test_opening_a_socket_is_refused(sandbox, loopback_server):
    port, hits = loopback_server
    with pytest.raises(SandboxPermissionError) as info:
        sandbox.execute(f"import socket\ns = socket.socket()\ns.connect(('127.0.0.1', {port}))")
    assert "network" in str(info.value)
    with pytest.raises(SandboxPermissionError):
        sandbox.execute(f"import socket\nsocket.create_connection(('127.0.0.1', {port}))")
    # fetch / Deno.connect return promises that the sandbox never runs, and Deno would
    # refuse them anyway (no --allow-net): nothing reaches the listener.
    sandbox.execute(f"import js\njs.fetch('http://127.0.0.1:{port}/')\njs.Deno.connect(js.JSON.parse('{{\"port\": {port}}}'))")
    time.sleep(0.5)
    assert hits == []
    _assert_alive(sandbox)


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "import os\nos.system('touch {marker}')",
        "import subprocess\nsubprocess.run(['touch', '{marker}'])",
        "import subprocess\nsubprocess.check_output('touch {marker}', shell=True)",
        "import os\nos.popen('touch {marker}').read()",
        "import js\njs.Deno.Command.new('touch', js.JSON.parse('{{\"args\": [\"{marker}\"]}}')).outputSync()",
    ],
    ids=["os.system", "subprocess.run", "subprocess.shell", "os.popen", "Deno.Command"],
)
def test_spawning_a_process_is_refused(sandbox, tmp_path, code):
    marker = tmp_path / "spawned"
    with pytest.raises(SandboxPermissionError):
        sandbox.execute(code.format(marker=marker))
    assert not marker.exists()
    _assert_alive(sandbox)


def test_libc_system_via_ctypes_does_not_run_anything(sandbox, tmp_path):
    marker = tmp_path / "spawned"
    status = sandbox.execute(f"import ctypes\nctypes.CDLL(None).system(b'touch {marker}')")
    assert status != 0  # the runner's stand-in reports failure instead of spawning
    assert not marker.exists()
    _assert_alive(sandbox)


# ---------------------------------------------------------------------------
# Memory and time
# ---------------------------------------------------------------------------


def test_allocating_8_gb_is_refused_and_state_survives(sandbox):
    sandbox.execute("kept = 'still here'")
    with pytest.raises(SandboxMemoryError) as info:
        sandbox.execute("blocks = [bytearray(2**30) for _ in range(8)]")
    assert isinstance(info.value, MemoryError)
    assert isinstance(info.value, CodeExecutionError)
    assert "memory" in str(info.value).lower()
    assert sandbox.execute("kept") == "still here"


def test_the_memory_limit_is_below_webassemblys_cap(sandbox):
    # 512 MB passes WebAssembly's 4 GB cap but not memory_limit_mb=256.
    with pytest.raises(SandboxMemoryError):
        sandbox.execute("big = bytearray(512 * 2**20)")
    assert sandbox.execute("small = bytearray(16 * 2**20)\nlen(small)") == 16 * 2**20


def test_an_infinite_loop_hits_the_time_limit_and_the_sandbox_restarts(sandbox):
    host_pid = os.getpid()
    started = time.monotonic()
    with pytest.raises(SandboxTimeoutError) as info:
        sandbox.execute("while True:\n    pass")
    elapsed = time.monotonic() - started
    assert isinstance(info.value, InterpreterError)
    assert isinstance(info.value, TimeoutError)
    assert "time limit" in str(info.value)
    assert elapsed < 6.0 + 5.0
    assert os.getpid() == host_pid
    # The next call starts a fresh sandbox: state is gone, the interpreter works.
    with pytest.raises(CodeExecutionError) as gone:
        sandbox.execute("kept")
    assert gone.value.error_type == "NameError"
    _assert_alive(sandbox)
