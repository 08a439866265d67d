"""``Refine``: like :class:`BestOfN`, but after a weak attempt an LM writes advice for each predictor,
and the next attempt sees that advice as an extra ``hint_`` input.

Attempts sample with a distinct ``rollout_id`` and ``temperature=1.0`` in their predictors'
``config``. The advice comes from a :class:`Predict` over :class:`OfferFeedback`, which reads the
program's source, each predictor's inputs and outputs in the failed attempt, and the reward code.
"""

from __future__ import annotations

import inspect
import json
import logging
from typing import Any

from ..nn.graph import Graph, no_grad
from ..nn.module import Module
from ..settings import settings
from ..signatures import InputField, OutputField, Signature
from .best_of_n import BestOfN, RewardFn
from .predict import Predict

logger = logging.getLogger(__name__)


class OfferFeedback(Signature):
    """A program made of several modules produced outputs whose reward fell short of the target.
    Study the program, each module's inputs and outputs in this run, and the reward function. Decide which
    modules are responsible for the shortfall and why. Then, for every module, write specific and actionable
    advice it can follow the next time it receives the same or similar inputs; it will not see this run, so
    the advice must stand on its own. Write N/A for a module that did nothing wrong."""

    program_code: str = InputField(desc="source code of the program")
    modules_defn: str = InputField(desc="each module of the program with its input and output fields")
    program_inputs: str = InputField(desc="the inputs the program was called with")
    program_trajectory: str = InputField(desc="each module call of this run: module name, inputs and outputs")
    program_outputs: str = InputField(desc="the outputs the program returned")
    reward_code: str = InputField(desc="source code of the reward function")
    target_threshold: str = InputField(desc="the reward the outputs should reach")
    reward_value: str = InputField(desc="the reward the outputs got")
    module_names: str = InputField(desc="names of the modules that need advice")
    discussion: str = OutputField(desc="which modules went wrong, if any, and how")
    advice: dict[str, str] = OutputField(
        desc="for each module name: the situations where it went wrong and what it got wrong, then what to do "
             "differently in such situations; N/A if it is not to blame")


def _source(obj: Any) -> str:
    for target in (obj, type(obj)):
        try:
            return inspect.getsource(target)
        except (OSError, TypeError):
            continue
    return repr(obj)


def _dump(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(_plain(value), indent=2, ensure_ascii=False, default=lambda o: f"<{type(o).__name__}>")


def _plain(value: Any) -> Any:
    if hasattr(value, "toDict"):
        return _plain(value.toDict())
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump()
    return value


def inspect_modules(program: Module) -> str:
    """A text description of every predictor of ``program``: its fields and instructions."""
    rule = "-" * 60
    parts = [rule]
    for name, predictor in program.named_predictors():
        sig = predictor.signature
        ins = "\n".join(f"    - {k}: {v.desc or ''}".rstrip(": ") for k, v in sig.input_fields.items())
        outs = "\n".join(f"    - {k}: {v.desc or ''}".rstrip(": ") for k, v in sig.output_fields.items())
        instructions = "\n".join("    " + line for line in sig.instructions.splitlines())
        parts.append(f"Module {name}\n  Input fields:\n{ins}\n  Output fields:\n{outs}\n"
                     f"  Instructions:\n{instructions}\n{rule}")
    return "\n".join(parts)


class Refine(BestOfN):
    """Run ``module`` up to ``N`` times, feeding LM-written advice into each retry; return the first
    prediction whose reward reaches ``threshold``, else the best one.

    Args:
        module: the module to refine.
        N: the most attempts.
        reward_fn: ``reward_fn(inputs: dict, prediction) -> float``.
        threshold: the reward that is good enough (``None``: always run ``N`` attempts).
        fail_count: how many failed attempts are tolerated before the error is raised (default ``N``).
    """

    def __init__(self, module: Module, N: int, reward_fn: RewardFn, threshold: float | None,  # noqa: N803
                 fail_count: int | None = None) -> None:
        super().__init__(module, N, reward_fn, threshold, fail_count)
        self.module_code = _source(module)
        self.reward_fn_code = _source(reward_fn)
        self._feedback = Predict(OfferFeedback)

    def _with_hints(self, module: Module, advice: dict[str, str]) -> None:
        for name, predictor in module.named_predictors():
            hint = advice.get(name) or "N/A"
            sig = predictor.signature
            if "hint_" in sig.input_fields:
                sig = sig.delete("hint_")
            predictor.signature = sig.append(
                "hint_", InputField(desc="advice from an earlier attempt at this task", default=str(hint)))

    def _advise(self, module: Module, graph: Graph, kwargs: dict[str, Any], outputs: Any,
                reward: float) -> dict[str, str] | None:
        names = {id(p): name for name, p in module.named_predictors()}
        trajectory = [{"module_name": names.get(id(node.module), node.name),
                       "inputs": {k: v for k, v in node.inputs.items() if k != "hint_"},
                       "outputs": node.outputs} for node in graph.nodes]
        lm = settings.get("lm")
        if lm is None:
            lm = next((p.lm for p in module.predictors() if getattr(p, "lm", None) is not None), None)
        call: dict[str, Any] = {
            "program_code": self.module_code,
            "modules_defn": inspect_modules(module),
            "program_inputs": _dump(kwargs),
            "program_trajectory": _dump(trajectory),
            "program_outputs": _dump(dict(outputs.items()) if hasattr(outputs, "items") else outputs),
            "reward_code": self.reward_fn_code,
            "target_threshold": _dump(self.threshold),
            "reward_value": _dump(reward),
            "module_names": _dump([name for name, _ in module.named_predictors()]),
        }
        try:
            with no_grad():
                advice = self._feedback(**call, lm=lm).advice
        except Exception as exc:
            logger.warning("Refine: could not get advice for the next attempt (%s: %s); retrying without new advice.",
                           type(exc).__name__, exc)
            return None
        return {str(k): str(v) for k, v in (advice or {}).items()}

    def _prepare_attempt(self, candidate: Module, state: dict[str, Any]) -> None:
        if state.get("advice"):
            self._with_hints(candidate, state["advice"])

    def _after_attempt(self, candidate: Module, graph: Graph, kwargs: dict[str, Any], prediction: Any,
                       reward: float, state: dict[str, Any]) -> None:
        state["advice"] = self._advise(candidate, graph, kwargs, prediction, reward) or state.get("advice")
