"""Attacks on the code sandbox (issue 18, items 1-3): each one tried, and whether it held.

``run_attacks()`` returns ``[(name, held), ...]`` for ``benchmarks/reliability.py``;
``tests/test_sandbox_attacks.py`` asserts the same attacks one by one (it loads the attack
code from this file, so there is one copy of it).

Run: python benchmarks/sandbox_attacks.py [--flood-mb 50]
(needs `python -m textgrad_like.tools.python_interpreter --setup` once; about 2-4 minutes on
a busy 2-core machine: three sandboxes start, 2.4 GB of output is written).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from textgrad_like.errors import InterpreterError
from textgrad_like.tools.python_interpreter import PythonInterpreter, SandboxPermissionError, setup_sandbox

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------
# 1. Code that would keep running after execute returns
# ---------------------------------------------------------------------------

# A worker body that reads every request the host sends next and answers it with a forged
# result (for the old protocol and any line-based one), then spins the CPU.
FORGER_JS = r"""
const enc = new TextEncoder();
const dec = new TextDecoder();
const buf = new Uint8Array(1 << 20);
for (;;) {
  let n = null;
  try { n = Deno.stdin.readSync(buf); } catch (_e) { n = null; }
  if (n === null || n === 0) { for (;;) {} }
  const text = dec.decode(buf.subarray(0, n));
  const m = text.match(/id\\?"\s*:\s*\\?"([0-9a-f]+)/);
  const forged = {op: "result", id: m ? m[1] : "", ok: true, has_value: true,
                  value: "FORGED, saw: " + text.slice(0, 300), stdout: "", stderr: ""};
  try { Deno.stdout.writeSync(enc.encode("\n" + JSON.stringify(forged) + "\n")); } catch (_e) {}
}
"""


def _js_object(pairs: str) -> str:
    return f"to_js({pairs}, dict_converter=js.Object.fromEntries)"


WORKER_ROUTES = {
    "web-worker-blob": textwrap.dedent(
        f"""
        import js
        from pyodide.ffi import to_js
        src = {FORGER_JS!r}
        url = js.URL.createObjectURL(js.Blob.new(to_js([src]), {_js_object('{"type": "text/javascript"}')}))
        w = js.Worker.new(url, {_js_object('{"type": "module"}')})
        'started'
        """
    ),
    "web-worker-data-url-via-globalThis": textwrap.dedent(
        f"""
        import js, base64
        from pyodide.ffi import to_js
        src = {FORGER_JS!r}
        url = 'data:text/javascript;base64,' + base64.b64encode(src.encode()).decode()
        w = js.globalThis.Worker.new(url, {_js_object('{"type": "module"}')})
        'started'
        """
    ),
    "web-worker-via-eval": textwrap.dedent(
        f"""
        import js, json
        src = {FORGER_JS!r}
        js.eval("globalThis.__w = new Worker(URL.createObjectURL(new Blob([" + json.dumps(src) + "])), {{type: 'module'}})")
        'started'
        """
    ),
    "node-worker-threads": textwrap.dedent(
        f"""
        import js
        from pyodide.ffi import to_js
        src = {FORGER_JS!r}
        wt = js.process.getBuiltinModule('node:worker_threads')
        w = wt.Worker.new(src, {_js_object('{"eval": True}')})
        'started'
        """
    ),
    # An asynchronous read runs on a Deno thread and would take the bytes of the next request.
    "async-deno-stdin-read": "import js\npending = js.Deno.stdin.read(js.Uint8Array.new(1 << 16))\n'started'",
}

TIMERS_CODE = textwrap.dedent(
    """
    import js
    from pyodide.ffi import create_proxy
    fired = []
    def later(*args):
        fired.append(1)
        js.Deno.stdout.writeSync(js.TextEncoder.new().encode('\\n{"op": "result", "ok": true, "value": "FORGED"}\\n'))
    keep = create_proxy(later)
    js.setTimeout(keep, 0)
    js.setInterval(keep, 5)
    js.queueMicrotask(keep)
    js.Promise.resolve(1).then(keep)
    'scheduled'
    """
)

_FIND_REQUEST_ID = textwrap.dedent(
    """
    import sys, gc
    def _request_id():
        frame = sys._getframe()
        while frame is not None:
            req = frame.f_locals.get('request')
            if isinstance(req, dict) and 'id' in req:
                return req['id']
            frame = frame.f_back
        for obj in gc.get_objects():
            if isinstance(obj, dict) and 'id' in obj and 'code' in obj:
                return obj['id']
        return ''
    rid = _request_id()
    """
)

# The code answers its own call on the runner's stdout, then tries to serve the next calls.
FORGE_STDOUT_CODE = _FIND_REQUEST_ID + textwrap.dedent(
    """
    import js, json, re
    enc = js.TextEncoder.new()
    def forge(i, value):
        msg = {"op": "result", "id": i, "ok": True, "has_value": True, "value": value, "stdout": "", "stderr": ""}
        js.Deno.stdout.writeSync(enc.encode("\\n" + json.dumps(msg) + "\\n"))
    forge(rid, "FORGED-1")
    buf = js.Uint8Array.new(1 << 20)
    for _ in range(3):
        n = js.Deno.stdin.readSync(buf)
        text = bytes(buf.subarray(0, n).to_py()).decode(errors="replace")
        m = re.search(r'id\\\\?"\\s*:\\s*\\\\?"([0-9a-f]+)', text)
        forge(m.group(1) if m else "", "FORGED, saw: " + text[:200])
    'true end'
    """
)

# The same through the bridge the runner gives Python for host tools.
FORGE_BRIDGE_CODE = _FIND_REQUEST_ID + textwrap.dedent(
    """
    import json, __main__
    bridge = getattr(__main__, '_tg_host_call', None) or globals().get('_tg_host_call')
    msg = {"op": "result", "id": rid, "ok": True, "has_value": True, "value": "FORGED-1", "stdout": "", "stderr": ""}
    answers = []
    if bridge is not None:
        for _ in range(3):
            answers.append(bridge(json.dumps(msg)))
    'true end'
    """
)

# A host that runs an attack, then is killed with SIGKILL between calls.
HOST_SCRIPT = """
import os, signal, sys
from textgrad_like.tools.python_interpreter import PythonInterpreter
interp = PythonInterpreter(timeout=30.0, startup_timeout=180.0)
interp.start()
print(interp._proc.pid, flush=True)
code = sys.stdin.read()
try:
    interp.execute(code)
except Exception as exc:
    print("refused:", type(exc).__name__, flush=True)
print("attacked", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
KILLED_HOST_ATTACK = (WORKER_ROUTES["web-worker-blob"]
                      + "\nimport js\nfrom pyodide.ffi import create_proxy\njs.setInterval(create_proxy(lambda: None), 5)\n")


def thread_names(pid: int) -> list[str]:
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            names.append(Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip())
        except OSError:
            pass
    return names


def gone(pid: int, within: float = 10.0) -> bool:
    """True once ``pid`` has exited (a zombie counts) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def true_result_follows(interp: PythonInterpreter) -> bool:
    """A later call with a secret input returns its own, true result (nothing steals or forges it)."""
    time.sleep(1.0)  # give anything left running time to steal the next request
    return (interp.execute("secret * 2", {"secret": 21}) == 42
            and interp.execute("'-'.join([secret, 'ok'])", {"secret": "s3cr3t"}) == "s3cr3t-ok")


def run_killed_host() -> tuple[int, bool]:
    """Kill -9 a host between calls after an attack; (deno pid, whether the Deno process exited)."""
    host = subprocess.run([sys.executable, "-c", HOST_SCRIPT], input=KILLED_HOST_ATTACK, capture_output=True,
                          text=True, timeout=300, cwd=REPO)
    pid = int(host.stdout.split()[0])
    exited = gone(pid, within=10.0)
    if not exited:
        os.kill(pid, signal.SIGKILL)
    return pid, exited


# ---------------------------------------------------------------------------
# 2. Output floods
# ---------------------------------------------------------------------------

FLOODS = {
    "Deno.stderr": "js.Deno.stderr.writeSync(line)",
    "Deno.stdout": "js.Deno.stdout.writeSync(line)",
    "sys.stderr": "sys.stderr.write(text)",
    "sys.stdout": "sys.stdout.write(text)",
}


def flood_code(stream: str, megabytes: int) -> str:
    """Twelve lines of ``megabytes`` MB each on ``stream``."""
    return textwrap.dedent(
        f"""
        import js, sys
        from pyodide.ffi import to_js
        text = 'x' * {megabytes * 1_000_000 - 1} + '\\n'
        line = to_js(text.encode())
        for _ in range(12):
            {FLOODS[stream]}
        del text, line
        'flooded'
        """
    )


class PeakRss:
    """Samples this process's resident memory while the block runs."""

    def __init__(self) -> None:
        self.start = psutil.Process().memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, psutil.Process().memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, psutil.Process().memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 1e6


FLOOD_BOUND_MB = 150


# ---------------------------------------------------------------------------
# 3. Links in grants
# ---------------------------------------------------------------------------


def make_link_tree(root: Path) -> None:
    """``out/`` (to grant for writing) and ``data/`` (for reading), with links that lead outside them."""
    (root / "victim.txt").write_text("victim intact\n")
    (root / "hard_victim.txt").write_text("hard victim intact\n")
    (root / "secret.txt").write_text("TOPSECRET\n")
    out = root / "out"
    out.mkdir()
    (out / "link").symlink_to("../victim.txt")
    os.link(root / "hard_victim.txt", out / "hard")
    (out / "plain.txt").write_text("plain\n")
    (out / "later.txt").write_text("swapped later\n")
    data = root / "data"
    data.mkdir()
    (data / "hostname").symlink_to("/etc/hostname")
    (data / "secret").symlink_to(root / "secret.txt")
    (data / "etc").symlink_to("/etc")
    os.link(root / "secret.txt", data / "hard_secret")
    (data / "inner_link").symlink_to("readme.txt")
    (data / "readme.txt").write_text("readable\n")


def link_attacks(root: Path) -> dict[str, tuple[str, Callable[[], bool]]]:
    """name -> (code to run, check that the host is intact afterwards)."""
    victim = root / "victim.txt"

    def intact() -> bool:
        return victim.read_text() == "victim intact\n"

    return {
        "symlink-write-open": ("open('/sandbox/out/link', 'w').write('pwned')", intact),
        "symlink-write-deno": (f"import js\njs.Deno.writeTextFileSync({str(root / 'out' / 'link')!r}, 'pwned')", intact),
        "hardlink-write": ("open('/sandbox/out/hard', 'w').write('pwned')",
                           lambda: (root / "hard_victim.txt").read_text() == "hard victim intact\n"),
        "symlink-swapped-in-after-start": ("open('/sandbox/out/later.txt', 'w').write('pwned')", intact),
    }


READ_ATTACKS = {
    "symlink-read-open": "open('/sandbox/data/secret').read()",
    "symlink-read-hostname": "open('/sandbox/data/hostname').read()",
    "symlink-read-dir": "open('/sandbox/data/etc/passwd').read()",
    "hardlink-read": "open('/sandbox/data/hard_secret').read()",
    "symlink-read-deno": "import js\njs.Deno.readTextFileSync({path!r})",
}


def swap_in_link(root: Path) -> None:
    later = root / "out" / "later.txt"
    later.unlink()
    later.symlink_to(root / "victim.txt")


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def _attempt(results: list[tuple[str, bool]], name: str, attack: Callable[[], bool]) -> None:
    try:
        held = bool(attack())
    except Exception as exc:  # an attack that breaks the harness did not demonstrably hold
        print(f"  {name}: error {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
        held = False
    results.append((name, held))


def run_attacks(flood_mb: int = 50) -> list[tuple[str, bool]]:
    """Try every sandbox attack; ``[(name, held), ...]`` (held: refused or came to nothing)."""
    setup_sandbox()
    results: list[tuple[str, bool]] = []
    with PythonInterpreter(timeout=8.0, startup_timeout=300.0) as interp:
        interp.start()

        def run_then_check(code: str, check_value: Callable[[object], bool] = lambda v: True) -> bool:
            try:
                value = interp.execute(code)
                ok = check_value(value)
            except InterpreterError:
                ok = True  # refused, or the sandbox was stopped
            return ok and true_result_follows(interp)

        for route, code in WORKER_ROUTES.items():
            def worker_attack(code: str = code) -> bool:
                ok = run_then_check(code)
                return ok and not [n for n in thread_names(interp._proc.pid) if n.startswith("worker")]
            _attempt(results, f"worker:{route}", worker_attack)

        def timers() -> bool:
            return (run_then_check(TIMERS_CODE, lambda v: v == "scheduled")
                    and interp.execute("len(fired)") == 0)
        _attempt(results, "timers-and-promises", timers)
        _attempt(results, "forged-result-on-stdout", lambda: run_then_check(FORGE_STDOUT_CODE, lambda v: v != "FORGED-1"))
        _attempt(results, "forged-result-via-bridge", lambda: run_then_check(FORGE_BRIDGE_CODE, lambda v: v == "true end"))

        interp.timeout = 300.0
        for stream in FLOODS:
            def flood(stream: str = stream) -> bool:
                with PeakRss() as rss:
                    value = interp.execute(flood_code(stream, flood_mb))
                bounded = isinstance(value, str) and len(value) <= interp.max_output_chars + 100
                return bounded and rss.growth_mb < FLOOD_BOUND_MB and true_result_follows(interp)
            _attempt(results, f"flood:{stream}", flood)
        interp.timeout = 8.0
        pid = interp._proc.pid
    _attempt(results, "no-process-after-shutdown", lambda: gone(pid, within=5.0))
    _attempt(results, "sandbox-dies-with-killed-host", lambda: run_killed_host()[1])

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_link_tree(root)
        with PythonInterpreter(enable_read_paths=[root / "data"], enable_write_paths=[root / "out"], timeout=20.0,
                               startup_timeout=300.0) as interp:
            interp.start()
            swap_in_link(root)
            for name, (code, intact) in link_attacks(root).items():
                def write_attack(code: str = code, intact: Callable[[], bool] = intact) -> bool:
                    try:
                        interp.execute(code)
                        refused = False
                    except SandboxPermissionError:
                        refused = True
                    return refused and intact()
                _attempt(results, f"link:{name}", write_attack)
            for name, template in READ_ATTACKS.items():
                def read_attack(template: str = template) -> bool:
                    code = template.format(path=str(root / "data" / "secret"))
                    try:
                        interp.execute(code)
                    except InterpreterError as exc:
                        return "TOPSECRET" not in str(exc)
                    return False  # the read succeeded
                _attempt(results, f"link:{name}", read_attack)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flood-mb", type=int, default=50, help="size of each of the twelve flood lines")
    args = parser.parse_args()
    began = time.perf_counter()
    results = run_attacks(flood_mb=args.flood_mb)
    for name, held in results:
        print(f"{'held  ' if held else 'BROKEN'} {name}")
    held = sum(1 for _, ok in results if ok)
    print(f"sandbox attacks: {held}/{len(results)} held ({time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
