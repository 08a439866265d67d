"""Behaviour of PythonInterpreter (DSPy 3.x interface) on the real Deno + Pyodide sandbox."""

from __future__ import annotations

import asyncio

import pytest

from textgrad_like.errors import InterpreterError
from textgrad_like.tools.python_interpreter import (
    CodeExecutionError,
    CodeInterpreterError,
    FinalOutput,
    PythonInterpreter,
    SandboxSetupError,
    SandboxSyntaxError,
    setup_sandbox,
)

CALLS: list[tuple] = []


def add(a: int, b: int = 1) -> int:
    CALLS.append(("add", a, b))
    return a + b


def lookup(query: str) -> dict:
    return {"query": query, "hits": [1, 2, 3], "nested": {"ok": True}}


def fail(reason: str) -> str:
    raise ValueError(f"cannot do {reason}")


async def slow_echo(text: str) -> str:
    await asyncio.sleep(0.01)
    return text.upper()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("files")
    (root / "data.csv").write_text("a,b\n1,2\n3,4\n")
    folder = root / "docs"
    folder.mkdir()
    (folder / "one.txt").write_text("first")
    (folder / "two.txt").write_text("second")
    return root


@pytest.fixture(scope="module")
def interp(files):
    setup_sandbox()
    with PythonInterpreter(
        tools={"add": add, "lookup": lookup, "fail": fail, "slow_echo": slow_echo},
        enable_read_paths=[files / "data.csv", files / "docs"],
        enable_write_paths=[files / "out.txt"],
        timeout=30.0,
    ) as interpreter:
        yield interpreter


def test_seed_example_returns_the_number():
    setup_sandbox()
    with PythonInterpreter({}) as interpreter:
        assert interpreter.execute("9362158 / 1647") == pytest.approx(5684.37037037037)
        assert interpreter.startup_seconds is not None and interpreter.startup_seconds > 0


def test_state_persists_across_calls(interp):
    assert interp.execute("counter = 10\ndef bump(n):\n    global counter\n    counter += n\n    return counter") == ""
    assert interp.execute("bump(5)") == 15
    assert interp.execute("bump(1)\ncounter") == 16


def test_stdout_is_captured_when_there_is_no_value(interp):
    assert interp.execute("for i in range(3):\n    print('line', i)") == "line 0\nline 1\nline 2\n"
    # A last-expression value wins over printed output, as in DSPy.
    assert interp.execute("print('noise')\n[1, (2, 3), {'k': None}]") == [1, [2, 3], {"k": None}]


def test_values_that_are_not_json_come_back_as_repr(interp):
    assert interp.execute("class P:\n    def __repr__(self):\n        return 'P()'\nP()") == "P()"
    assert interp.execute("{1: 'x'}") == "{1: 'x'}"
    assert interp.execute("float('nan')") == "nan"


def test_variables_are_injected(interp):
    result = interp.execute("total = sum(nums) * factor\ntotal", variables={"nums": [1, 2, 3], "factor": 2.5})
    assert result == 15.0
    assert interp.execute("label.upper()", {"label": "ok"}) == "OK"
    with pytest.raises(InterpreterError, match="identifier"):
        interp.execute("1", {"not valid": 1})


def test_host_tools_are_callable(interp):
    CALLS.clear()
    assert interp.execute("add(2, b=5)") == 7
    assert interp.execute("add(a=40)") == 41
    assert CALLS == [("add", 2, 5), ("add", 40, 1)]
    assert interp.execute("r = lookup('pi')\nr['hits'][-1] + len(r['query'])") == 5
    assert interp.execute("slow_echo('hey')") == "HEY"


def test_tool_errors_reach_the_sandbox_as_exceptions(interp):
    code = "try:\n    fail('that')\nexcept ValueError as exc:\n    caught = str(exc)\ncaught"
    assert "cannot do that" in interp.execute(code)
    with pytest.raises(CodeExecutionError) as info:
        interp.execute("add(1, 2, 3)")
    assert info.value.error_type == "TypeError"
    assert "add" in str(info.value)


def test_syntax_error_is_typed_and_shows_the_location(interp):
    with pytest.raises(SandboxSyntaxError) as info:
        interp.execute("def broken(:\n    return 1")
    err = info.value
    assert isinstance(err, SyntaxError) and isinstance(err, CodeInterpreterError)
    assert err.error_type == "SyntaxError"
    assert "line 1" in err.traceback_text
    assert "^" in err.traceback_text


def test_runtime_error_carries_the_python_traceback_and_keeps_state(interp):
    interp.execute("survivor = 'yes'")
    with pytest.raises(CodeExecutionError) as info:
        interp.execute("def inner(d):\n    return d['missing']\n\ninner({})", )
    err = info.value
    assert err.error_type == "KeyError"
    assert "Traceback (most recent call last)" in err.traceback_text
    assert "in inner" in err.traceback_text
    assert "return d['missing']" in err.traceback_text
    assert "KeyError: 'missing'" in str(err)
    assert interp.execute("survivor") == "yes"


def test_partial_stdout_is_kept_on_error(interp):
    with pytest.raises(CodeExecutionError) as info:
        interp.execute("print('before')\n1 / 0")
    assert info.value.stdout == "before\n"
    assert info.value.error_type == "ZeroDivisionError"


def test_granted_files_and_directories_are_readable(interp):
    assert interp.execute("import csv\nlist(csv.reader(open('/sandbox/data.csv')))") == [["a", "b"], ["1", "2"], ["3", "4"]]
    assert interp.execute("import os\nsorted(os.listdir('/sandbox/docs'))") == ["one.txt", "two.txt"]
    assert interp.execute("open('/sandbox/docs/two.txt').read()") == "second"


def test_granted_write_paths_are_synced_back(interp, files):
    interp.execute("with open('/sandbox/out.txt', 'w') as fh:\n    fh.write('written in the sandbox')")
    assert (files / "out.txt").read_text() == "written in the sandbox"


def test_submit_returns_final_output(interp):
    assert interp.execute("SUBMIT({'answer': 42})") == FinalOutput({"output": {"answer": 42}})


def test_tools_and_output_fields_can_change_after_start(interp):
    interp.tools["triple"] = lambda x: 3 * x
    interp.output_fields = [{"name": "answer", "type": "int"}, {"name": "why"}]
    interp._tools_registered = False  # what DSPy's RLM does after changing them
    assert interp.execute("triple(4)") == 12
    assert interp.execute("SUBMIT(triple(2), why='because')") == FinalOutput({"answer": 6, "why": "because"})
    with pytest.raises(CodeExecutionError, match="missing why"):
        interp.execute("SUBMIT(1)")
    interp.output_fields = None
    del interp.tools["triple"]


def test_call_syntax_and_standard_library(interp):
    assert interp("import statistics, fractions, decimal\nstr(statistics.mean([fractions.Fraction(1, 3), 1]))") == "2/3"
    assert interp("def gen():\n    yield from range(4)\nsum(gen())") == 6


def test_shutdown_and_context_manager():
    setup_sandbox()
    interpreter = PythonInterpreter(timeout=30.0)
    with interpreter as same:
        assert same is interpreter
        assert same.execute("1 + 1") == 2
    with pytest.raises(InterpreterError, match="shut down"):
        interpreter.execute("1")
    interpreter.shutdown()  # idempotent


def test_constructor_validation(tmp_path):
    with pytest.raises(InterpreterError, match="identifier"):
        PythonInterpreter({"bad name": len})
    with pytest.raises(InterpreterError, match="not callable"):
        PythonInterpreter(tools={"x": 3})
    with pytest.raises(InterpreterError, match="network"):
        PythonInterpreter(enable_network_access=["example.com"])
    with pytest.raises(InterpreterError, match="twice"):
        PythonInterpreter({"a": len}, tools={"b": len})
    with pytest.raises(InterpreterError, match="unique basenames"):
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        PythonInterpreter(enable_read_paths=[tmp_path / "a" / "f.txt", tmp_path / "b" / "f.txt"])
    with pytest.raises(InterpreterError, match="timeout"):
        PythonInterpreter(timeout=0)


def test_missing_pyodide_gives_the_setup_command(tmp_path):
    interpreter = PythonInterpreter(cache_dir=tmp_path / "empty-cache")
    with pytest.raises(SandboxSetupError, match="--setup"):
        interpreter.execute("1")


def test_missing_read_path_is_reported(tmp_path):
    interpreter = PythonInterpreter(enable_read_paths=[tmp_path / "nope.txt"])
    with pytest.raises(InterpreterError, match="does not exist"):
        interpreter.execute("1")


def test_a_tool_cannot_reenter_its_interpreter(interp):
    def reenter() -> str:
        try:
            interp.execute("1")
        except InterpreterError as exc:
            return f"refused: {exc}"
        return "ran"

    interp.tools["reenter"] = reenter
    try:
        assert interp.execute("reenter()").startswith("refused: A host tool cannot call execute()")
    finally:
        del interp.tools["reenter"]
