"""Unit tests of the sandbox's parts that run without Deno: the driver, granted files, the channel."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

import pytest

from textgrad_like.tools.sandbox import driver
from textgrad_like.tools.sandbox.channel import Channel, ChannelTimeout
from textgrad_like.tools.sandbox.grants import Grant, GrantWriter, read_grant

# ---------------------------------------------------------------------------
# The driver (imported on the host: it only defines functions until _tg_init runs)
# ---------------------------------------------------------------------------


def test_importing_the_driver_installs_no_guards():
    assert os.system is not driver._tg_refuse_process
    assert subprocess.Popen is not driver._RefusedPopen


def _run(code: str, **variables) -> dict:
    return json.loads(driver._tg_run(json.dumps({"id": "x1", "code": code, "variables": variables})))


def test_run_returns_the_last_expression_and_the_printed_output():
    reply = _run("print('hi')\nn * 2", n=21)
    assert reply["ok"] and reply["value"] == 42 and reply["stdout"] == "hi\n" and reply["id"] == "x1"


def test_run_reports_syntax_and_runtime_errors():
    assert _run("def (:")["category"] == "syntax"
    reply = _run("{}['k']")
    assert reply["type"] == "KeyError" and "<cell-" in reply["traceback"]
    assert _run("raise PermissionError('no')")["category"] == "permission"


def test_submit_checks_the_fields():
    driver._tg_configure({"tools": [], "outputs": ["answer"]})
    try:
        assert _run("SUBMIT(answer=3)")["final"] == {"answer": 3}
        assert "missing answer" in _run("SUBMIT()")["message"]
    finally:
        driver._tg_configure({"tools": [], "outputs": []})


def test_a_reply_never_passes_the_size_limit():
    old = driver._TG_STATE["max_output"]
    driver._TG_STATE["max_output"] = 1000
    try:
        for code in ("'\\x00' * 10**6", "print('\\U0001f600' * 10**5)\n['\\x01' * 1000] * 1000", "import sys\nsys.stderr.write('e' * 10**6)"):
            encoded = driver._tg_run(json.dumps({"id": "x", "code": code}))
            assert len(encoded) <= driver._tg_reply_limit()
            assert json.loads(encoded)["ok"]
    finally:
        driver._TG_STATE["max_output"] = old


# ---------------------------------------------------------------------------
# Granted files
# ---------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "outside.txt").write_text("outside\n")
    grant = tmp_path / "grant"
    (grant / "sub").mkdir(parents=True)
    (grant / "a.txt").write_text("a\n")
    (grant / "sub" / "b.txt").write_text("b\n")
    (grant / "inner").symlink_to("a.txt")
    (grant / "out_link").symlink_to("../outside.txt")
    (grant / "dir_link").symlink_to(tmp_path)
    os.link(tmp_path / "outside.txt", grant / "hard")
    os.mkfifo(grant / "fifo")
    return tmp_path, grant


def test_read_grant_skips_links_that_leave_it_hard_links_and_fifos(tree):
    _, grant = tree
    seen = {rel: chunk for rel, is_dir, chunk, _ in read_grant(str(grant)) if not is_dir}
    assert seen == {"a.txt": b"a\n", "sub/b.txt": b"b\n", "inner": b"a\n"}
    dirs = [rel for rel, is_dir, _, _ in read_grant(str(grant)) if is_dir]
    assert dirs == ["sub"]


def test_a_granted_file_is_read_once(tree):
    root, _ = tree
    assert list(read_grant(str(root / "outside.txt"))) == [("", False, b"outside\n", True)]


def _write(writer: GrantWriter, rel: str, data: bytes) -> None:
    writer.chunk(rel, base64.b64encode(data).decode(), True, True)


def test_the_writer_refuses_links_and_escapes(tree):
    root, grant = tree
    writer = GrantWriter(Grant("grant", str(grant), True))
    _write(writer, "out_link", b"pwned")
    _write(writer, "hard", b"pwned")
    _write(writer, "dir_link/outside.txt", b"pwned")
    _write(writer, "../outside.txt", b"pwned")
    _write(writer, "fifo", b"pwned")
    writer.directory("dir_link/x")
    refused = writer.finish()
    assert len(refused) == 6
    assert (root / "outside.txt").read_text() == "outside\n"
    assert not (root / "x").exists()


def test_the_writer_writes_new_and_chunked_files(tree):
    _, grant = tree
    writer = GrantWriter(Grant("grant", str(grant), True))
    writer.directory("new/deeper")
    writer.chunk("new/deeper/f.bin", base64.b64encode(b"12").decode(), True, False)
    writer.chunk("new/deeper/f.bin", base64.b64encode(b"34").decode(), False, True)
    _write(writer, "a.txt", b"A")
    assert writer.finish() == []
    assert (grant / "new" / "deeper" / "f.bin").read_bytes() == b"1234"
    assert (grant / "a.txt").read_text() == "A"


def test_a_single_granted_file_is_written_without_following_a_swapped_link(tree):
    root, _ = tree
    target = root / "single.txt"
    target.write_text("x")
    writer = GrantWriter(Grant("single.txt", str(target), True))
    _write(writer, "", b"new")
    assert writer.finish() == [] and target.read_text() == "new"
    target.unlink()
    target.symlink_to(root / "outside.txt")
    writer = GrantWriter(Grant("single.txt", str(target), True))
    _write(writer, "", b"pwned")
    assert len(writer.finish()) == 1
    assert (root / "outside.txt").read_text() == "outside\n"


# ---------------------------------------------------------------------------
# The channel: only lines with the token, bounded lines
# ---------------------------------------------------------------------------

ECHO = """
import sys
token = "T0KEN"
out = sys.stdout.buffer
out.write(b'{"op": "result", "forged": true}\\n')
out.write(b"x" * 5_000_000 + b"\\n")
out.write(b"T0KEN" + b"y" * 5_000_000 + b"\\n")
out.write(b"partial without newline")
out.write(b"\\nT0KEN" + b'{"op": "ok"}' + b"\\n")
sys.stderr.buffer.write(b"e" * 3_000_000)
out.flush()
"""


def test_the_channel_keeps_only_authenticated_bounded_lines():
    proc = subprocess.Popen([sys.executable, "-c", ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    channel = Channel(proc, "T0KEN", line_cap=1_000_000, stderr_tail_bytes=1000)
    assert channel.receive(time.monotonic() + 30) == {"op": "ok"}
    assert channel.receive(time.monotonic() + 30) is None  # end of stream
    proc.wait(timeout=10)
    time.sleep(0.2)
    assert len(channel.stderr_text()) <= 1000
    assert channel.dropped_lines >= 3
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with pytest.raises(ChannelTimeout):
            Channel(sleeper, "T", line_cap=10).receive(time.monotonic() + 0.3)
    finally:
        sleeper.kill()
        sleeper.wait()
