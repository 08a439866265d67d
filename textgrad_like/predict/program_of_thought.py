"""``ProgramOfThought``: the LM writes Python, a sandbox runs it, and the result feeds the answer.

Three :class:`ChainOfThought` modules: ``code_generate`` writes code for the inputs,
``code_regenerate`` repairs code that failed (it sees the code and the error), and
``generate_output`` writes the signature's outputs from the final code and what it printed or
returned. Code runs in :class:`textgrad_like.tools.python_interpreter.PythonInterpreter` (a
Deno + Pyodide sandbox), never in this process.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from ..errors import InputError, InterpreterError
from ..nn.module import Module
from ..nn.traced import derive
from ..primitives import Prediction
from ..signatures import InputField, OutputField, ensure_signature, make_signature
from .chain_of_thought import ChainOfThought

logger = logging.getLogger(__name__)

_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:\n```|$)", re.S | re.I)


def _names(fields: Any) -> str:
    return ", ".join(f"`{name}`" for name in fields)


def _default_interpreter() -> Any:
    try:
        from ..tools.python_interpreter import PythonInterpreter
    except ModuleNotFoundError as exc:
        raise InterpreterError("ProgramOfThought needs textgrad_like.tools.python_interpreter (the sandboxed "
                               "PythonInterpreter), which is not installed; pass interpreter= with an object that "
                               "has .execute(code).") from exc
    return PythonInterpreter()


def _is_setup_error(err: BaseException) -> bool:
    """Errors that mean the sandbox itself is unusable (not that the code is wrong)."""
    return type(err).__name__ in ("SandboxSetupError",)


class ProgramOfThought(Module):
    """``ProgramOfThought("question -> answer: float")(question=...)``.

    Args:
        signature: the task's signature.
        max_iters: attempts at writing code that runs (the first try plus repairs).
        interpreter: an object with ``execute(code)`` to reuse across calls (you shut it down).
            By default each call starts a fresh sandboxed ``PythonInterpreter`` and shuts it down.
    """

    def __init__(self, signature: Any, max_iters: int = 3, interpreter: Any = None) -> None:
        super().__init__()
        if not isinstance(max_iters, int) or max_iters < 1:
            raise InputError(f"max_iters must be a positive integer, got {max_iters!r}.")
        if interpreter is not None and not callable(getattr(interpreter, "execute", None)):
            raise InputError("interpreter must have an execute(code) method, e.g. PythonInterpreter().")
        self.signature = signature = ensure_signature(signature)
        self.max_iters = max_iters
        self.interpreter = interpreter
        self.input_fields = signature.input_fields
        self.output_fields = signature.output_fields

        self.code_generate = ChainOfThought(self._mode_signature("generate"))
        self.code_regenerate = ChainOfThought(self._mode_signature("regenerate"))
        self.generate_output = ChainOfThought(self._mode_signature("answer"))

    # --- signatures ---------------------------------------------------------------------------------
    def _mode_signature(self, mode: str) -> Any:
        fields: dict[str, Any] = dict(self.input_fields)
        code_out = OutputField(desc="Python code that computes the answer; its last line is an expression "
                                    "whose value is the result")
        if mode == "generate":
            fields["generated_code"] = code_out
        elif mode == "regenerate":
            fields["previous_code"] = InputField(desc="Python code written earlier, which failed")
            fields["error"] = InputField(desc="the error that code raised")
            fields["generated_code"] = code_out
        else:
            fields["final_generated_code"] = InputField(desc="Python code that computes the answer")
            fields["code_output"] = InputField(desc="what that code returned or printed")
            fields.update(self.output_fields)
        return make_signature(fields, self._instructions(mode, fields))

    def _instructions(self, mode: str, fields: dict[str, Any]) -> str:
        inputs = _names(k for k, v in fields.items() if v.is_input)
        finals = _names(self.output_fields)
        if mode == "generate":
            return (f"From {inputs}, write Python code that computes {finals}.\n"
                    "The code runs in a sandbox with the standard library only (no network, no files, no "
                    "third-party packages). Compute the result step by step in code rather than guessing it, "
                    "and make the last line an expression whose value is the result (or print it).")
        if mode == "regenerate":
            return (f"You get {inputs}. The previous code failed with the given error.\n"
                    "Fix the problem and write new, complete code in `generated_code`; as before, its last line "
                    "must be an expression whose value is the result.")
        return f"From {inputs}, write the final {finals}, using the code's output as the basis of the answer."

    # --- code handling ------------------------------------------------------------------------------
    @staticmethod
    def _parse_code(text: Any) -> tuple[str, str | None]:
        """The code block inside the reply (fences removed), or an error saying what is wrong with it."""
        raw = str(text or "")
        match = _FENCE.search(raw)
        code = (match.group(1) if match else raw).strip("\n")
        if not code.strip():
            return code, "Error: the reply contains no code."
        lines = code.rstrip().split("\n")
        last = lines[-1].strip()
        assigned = re.match(r"^([A-Za-z_]\w*)\s*=(?!=)", last)
        if assigned and not lines[-1].startswith((" ", "\t")):
            code = code.rstrip() + "\n" + assigned.group(1)
        return code, None

    @staticmethod
    def _execute(code: str, interpreter: Any) -> tuple[str | None, str | None]:
        try:
            result = interpreter.execute(code)
        except (InterpreterError, SyntaxError) as err:
            if _is_setup_error(err):
                raise
            return None, f"{type(err).__name__}: {err}"
        if hasattr(result, "output") and type(result).__name__ == "FinalOutput":
            result = result.output
        if isinstance(result, str):
            return result, None
        try:
            return json.dumps(result, ensure_ascii=False, default=str), None
        except (TypeError, ValueError):
            return str(result), None

    # --- forward ---------------------------------------------------------------------------------------
    def forward(self, interpreter: Any = None, /, **kwargs: Any) -> Prediction:
        missing = [k for k in self.input_fields if k not in kwargs]
        if missing:
            raise InputError(f"ProgramOfThought is missing input field(s) {missing}; call it with "
                             f"{', '.join(f'{k}=...' for k in self.input_fields)}.")
        owned = False
        interp = interpreter or self.interpreter
        if interp is None:
            interp = _default_interpreter()
            owned = True
        try:
            return self._run(interp, {k: kwargs[k] for k in self.input_fields})
        finally:
            if owned and hasattr(interp, "shutdown"):
                interp.shutdown()

    def _run(self, interpreter: Any, inputs: dict[str, Any]) -> Prediction:
        generated = self.code_generate(**inputs).generated_code
        code, error = self._parse_code(generated)
        code = derive(code, generated)  # the parsed code and its output keep the edge to the code writer
        output: str | None = None
        if error is None:
            output, error = self._execute(code, interpreter)
            output = derive(output, code)
        attempt = 1
        while error is not None:
            logger.info("ProgramOfThought: attempt %d failed: %s", attempt, error)
            if attempt >= self.max_iters:
                raise InterpreterError(f"ProgramOfThought could not write code that runs in {self.max_iters} "
                                       f"attempt(s); the last error was: {error}. Raise max_iters or use a "
                                       "stronger LM.")
            repaired = self.code_regenerate(**inputs, previous_code=code, error=error)
            code, error = self._parse_code(repaired.generated_code)
            code = derive(code, repaired.generated_code)
            if error is None:
                output, error = self._execute(code, interpreter)
                output = derive(output, code)
            attempt += 1
        return self.generate_output(**inputs, final_generated_code=code, code_output=output)
