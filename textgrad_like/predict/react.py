"""``ReAct``: an agent that alternates thoughts and tool calls, then extracts the signature's outputs.

Each step asks ``self.react`` (a :class:`Predict`) for ``next_thought``, ``next_tool_name`` and
``next_tool_args``; the tool runs and its result (or error) becomes the step's observation. When the
agent picks ``finish`` (or ``max_iters`` is reached), ``self.extract`` (a :class:`ChainOfThought`)
reads the whole trajectory and writes the original output fields.

Both predictors are ordinary parameters-holding modules: they show up in ``named_predictors()``
and their instructions and demos can be optimized like any other.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable, Generator
from typing import Any, Literal

from ..errors import AdapterParseError, ConfigurationError, ContextWindowExceededError
from ..nn.module import Module
from ..nn.traced import derive
from ..primitives import Prediction
from ..signatures import InputField, OutputField, ensure_signature, make_signature
from ..tools.tool import Tool
from .chain_of_thought import ChainOfThought
from .predict import Predict

logger = logging.getLogger(__name__)

_CONTEXT_PATTERNS = re.compile(
    r"context[ _-]?(window|length)|maximum context|context_length_exceeded|too many tokens|prompt is too long"
    r"|input is too long",
    re.I,
)

_STEP_KEYS = ("thought", "tool_name", "tool_args", "observation")

# the agent loop: yields ("call", module, kwargs) or ("tool", name, kwargs), receives their results
Steps = Generator[tuple[str, Any, dict[str, Any]], Any, Any]


def is_context_window_error(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it was raised from) says the prompt did not fit the model."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, AdapterParseError):
            return False
        if "ContextWindowExceeded" in type(current).__name__ or _CONTEXT_PATTERNS.search(str(current)):
            return True
        current = current.__cause__ or current.__context__
    return False


def format_error_for_lm(err: BaseException, traceback_frames: int = 0) -> str:
    """An exception as text for the LM: ``Type: message``, or (``traceback_frames > 0``, as DSPy shows a
    failed tool call) a newline and the traceback limited to that many frames."""
    if traceback_frames <= 0:
        return f"{type(err).__name__}: {err}"
    return "\n" + "".join(traceback.format_exception(type(err), err, err.__traceback__, limit=traceback_frames)).strip()


def tool_error_observation(name: str, err: BaseException) -> str:
    """The observation of a tool call that raised, in DSPy's words: ``Execution error in {tool}: {error}``
    with the last five frames of the traceback."""
    return f"Execution error in {name}: {format_error_for_lm(err, traceback_frames=5)}"


def _format_value(value: Any) -> str:
    from ..adapters.values import format_value

    return format_value(value)


class ReAct(Module):
    """``ReAct("question -> answer", tools=[search])``: a tool-using agent over any signature.

    Args:
        signature: the task's signature (string or class).
        tools: functions, callable objects or :class:`Tool` instances.
        max_iters: the most tool-calling steps per call (``max_iters=`` at call time overrides it).
        max_trajectory_chars: when set, the oldest steps are dropped before a call whenever the
            formatted trajectory is longer than this.
    """

    def __init__(self, signature: Any, tools: list[Callable[..., Any] | Tool], max_iters: int = 20,
                 max_trajectory_chars: int | None = None) -> None:
        super().__init__()
        self.signature = signature = ensure_signature(signature)
        self.max_iters = max_iters
        self.max_trajectory_chars = max_trajectory_chars

        by_name: dict[str, Tool] = {}
        for item in tools:
            tool = item if isinstance(item, Tool) else Tool(item)
            if tool.name == "finish":
                raise ConfigurationError("A tool may not be named 'finish': ReAct adds that tool itself. Rename it "
                                         "with Tool(func, name=...).")
            if tool.name in by_name:
                raise ConfigurationError(f"Two tools are named {tool.name!r}; give one another name with "
                                         "Tool(func, name=...).")
            by_name[tool.name] = tool

        outputs = ", ".join(f"`{k}`" for k in signature.output_fields)
        inputs = ", ".join(f"`{k}`" for k in signature.input_fields)
        by_name["finish"] = Tool(
            func=lambda: "Completed.",
            name="finish",
            desc=f"Call this once the trajectory holds everything needed to write {outputs}; it ends the task.",
            args={},
        )
        self.tools = by_name

        lines = [signature.instructions.strip(), ""] if signature.instructions else []
        lines += [
            f"You work as an agent, one step at a time. Each step you receive the input fields {inputs} together "
            "with the trajectory of your earlier steps: their thoughts, tool calls and observations.",
            f"Use the tools below to collect what you need to produce {outputs}.",
            "Each step, write `next_thought` (reason about where you are and plan what comes next), then choose "
            "`next_tool_name` and give `next_tool_args`, a JSON object with the arguments of that tool.",
            "The tool's result is appended to the trajectory as an observation. When you have enough, choose "
            "`finish`.",
            "The tools you may choose from:",
        ]
        for i, tool in enumerate(by_name.values(), 1):
            lines.append(f"({i}) {tool}")
        lines.append("Write `next_tool_args` as valid JSON (an empty object {} when the tool takes no arguments).")

        react_signature = (
            make_signature(dict(signature.input_fields), "\n".join(lines))
            .append("trajectory", InputField(), type_=str)
            .append("next_thought", OutputField(), type_=str)
            .append("next_tool_name", OutputField(), type_=Literal[tuple(by_name)])  # type: ignore[misc]
            .append("next_tool_args", OutputField(), type_=dict[str, Any])
        )
        extract_signature = make_signature(
            {**signature.input_fields, **signature.output_fields}, signature.instructions,
        ).append("trajectory", InputField(), type_=str)

        self.react = Predict(react_signature)
        self.extract = ChainOfThought(extract_signature)

    # --- trajectory ----------------------------------------------------------------------------
    def _format_trajectory(self, trajectory: dict[str, Any]) -> str:
        text = "\n".join(f"<{key}>\n{_format_value(value)}\n</{key}>" for key, value in trajectory.items())
        return derive(text, *trajectory.values())  # keeps the edges to the steps that wrote it

    @staticmethod
    def _steps(trajectory: dict[str, Any]) -> list[str]:
        steps: list[str] = []
        for key in trajectory:
            index = key.rsplit("_", 1)[-1]
            if index not in steps:
                steps.append(index)
        return steps

    def truncate_trajectory(self, trajectory: dict[str, Any]) -> dict[str, Any]:
        """Drop the oldest step (thought, tool name, args, observation) in place, as DSPy does; with one step
        left raise :class:`ContextWindowExceededError`. Override to change how."""
        steps = self._steps(trajectory)
        if len(steps) <= 1:
            raise ContextWindowExceededError(
                "The prompt exceeded the model's context window, and the trajectory cannot be truncated further (one "
                "step left). Use a model with a larger context window, shorter inputs, or tools that return shorter "
                "observations.")
        oldest = steps[0]
        for key in [k for k in trajectory if k.rsplit("_", 1)[-1] == oldest]:
            trajectory.pop(key)
        return trajectory

    def _fit(self, trajectory: dict[str, Any]) -> None:
        limit = self.max_trajectory_chars
        if limit is None:
            return
        while len(self._steps(trajectory)) > 1 and len(self._format_trajectory(trajectory)) > limit:
            logger.info("ReAct trajectory is longer than max_trajectory_chars=%d; dropping the oldest step.", limit)
            self.truncate_trajectory(trajectory)

    _TRUNCATION_TRIES = 3

    def _drop_oldest_on_overflow(self, err: Exception, trajectory: dict[str, Any]) -> None:
        """Re-raise ``err`` unless it says the prompt overflowed the context window; then drop a step."""
        if not is_context_window_error(err):
            raise err
        logger.warning("ReAct: the prompt exceeded the context window; dropping the oldest step.")
        self.truncate_trajectory(trajectory)

    def _still_overflowing(self, last: BaseException | None) -> ContextWindowExceededError:
        error = ContextWindowExceededError(f"The prompt still exceeded the context window after dropping the {self._TRUNCATION_TRIES} "
                        "oldest steps of the trajectory. Use a model with a larger context window or set "
                        "max_trajectory_chars.")
        error.__cause__ = last
        return error

    def _predict(self, module: Module, trajectory: dict[str, Any], input_args: dict[str, Any]) -> Steps:
        """Call ``module`` with the trajectory, dropping the oldest step and retrying (up to three times)
        when the prompt overflows the context window, as DSPy does."""
        last: BaseException | None = None
        for _ in range(self._TRUNCATION_TRIES):
            self._fit(trajectory)
            try:
                return (yield ("call", module, {**input_args, "trajectory": self._format_trajectory(trajectory)}))
            except Exception as err:
                self._drop_oldest_on_overflow(err, trajectory)
                last = err
        raise self._still_overflowing(last)

    def _step_failed(self, err: Exception) -> bool:
        """Whether ``err`` from the step predictor ends the loop (True) or must propagate (False)."""
        if isinstance(err, AdapterParseError):
            logger.warning("ReAct: ending the trajectory, the agent did not choose a valid tool: %s",
                           format_error_for_lm(err))
            return True
        if is_context_window_error(err):
            logger.warning("ReAct: ending the trajectory: %s", format_error_for_lm(err))
            return True
        return False

    # --- forward -------------------------------------------------------------------------------
    # The agent loop is written once, as a generator that yields the calls it needs ("call" a module,
    # run a "tool") and receives their results; forward and aforward only perform those calls.
    def _agent_loop(self, input_args: dict[str, Any]) -> Steps:
        trajectory: dict[str, Any] = {}
        max_iters = input_args.pop("max_iters", self.max_iters)
        for idx in range(max_iters):
            try:
                pred = yield from self._predict(self.react, trajectory, input_args)
            except Exception as err:
                if self._step_failed(err):
                    break
                raise
            name, args = pred.next_tool_name, pred.next_tool_args
            trajectory[f"thought_{idx}"] = pred.next_thought
            trajectory[f"tool_name_{idx}"] = name
            trajectory[f"tool_args_{idx}"] = args
            try:
                trajectory[f"observation_{idx}"] = yield ("tool", name, args or {})
            except Exception as err:
                trajectory[f"observation_{idx}"] = tool_error_observation(name, err)
            if name == "finish":
                break
        extract = yield from self._predict(self.extract, trajectory, input_args)
        return Prediction(trajectory=trajectory, **dict(extract.items()))

    def forward(self, **input_args: Any) -> Prediction:
        steps = self._agent_loop(input_args)
        request = next(steps)
        while True:
            kind, target, kwargs = request
            try:
                result = target(**kwargs) if kind == "call" else self.tools[target](**kwargs)
            except Exception as err:
                request, done = _resume(steps, error=err)
            else:
                request, done = _resume(steps, value=result)
            if done:
                return request

    async def aforward(self, **input_args: Any) -> Prediction:
        steps = self._agent_loop(input_args)
        request = next(steps)
        while True:
            kind, target, kwargs = request
            try:
                result = await (target.acall(**kwargs) if kind == "call" else self.tools[target].acall(**kwargs))
            except Exception as err:
                request, done = _resume(steps, error=err)
            else:
                request, done = _resume(steps, value=result)
            if done:
                return request


def _resume(steps: Steps, value: Any = None, error: BaseException | None = None) -> tuple[Any, bool]:
    """Send the agent loop a call's result (or throw its error in); ``(next request, False)`` or
    ``(the final prediction, True)``."""
    try:
        return (steps.throw(error) if error is not None else steps.send(value)), False
    except StopIteration as stop:
        return stop.value, True
