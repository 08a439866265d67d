"""``BestOfN``: run a module up to ``N`` times and keep the prediction with the highest reward.

Every attempt runs a copy of the module whose predictors get a distinct ``rollout_id`` and
``temperature=1.0`` in their ``config``, so the LM cache returns a fresh sample each time. The copy
shares the original's parameters (instructions, demos): the graph recorded for the chosen attempt
points at the original parameters, so a loss on the result trains the wrapped module.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

from ..errors import ConfigurationError
from ..nn.graph import Graph, current_graph, no_grad, record
from ..nn.module import Module
from ..primitives import Prediction
from ..settings import settings

logger = logging.getLogger(__name__)

RewardFn = Callable[[dict[str, Any], Prediction], float]


def attempt_copy(module: Module, rollout_id: int) -> Module:
    """A copy of ``module`` sharing its parameters, whose predictors sample with ``rollout_id`` at temperature 1.0."""
    memo: dict[int, Any] = {id(p): p for _, p in module.named_parameters()}
    new = copy.deepcopy(module, memo)
    for _, predictor in new.named_predictors():
        config = dict(getattr(predictor, "config", None) or {})
        config.update(rollout_id=rollout_id, temperature=1.0)
        predictor.config = config
    return new


def start_rollout_id(module: Module) -> int:
    """The first rollout id to use: one already set on a predictor or its LM, else 0."""
    for _, predictor in module.named_predictors():
        value = (getattr(predictor, "config", None) or {}).get("rollout_id")
        if value is None:
            lm = getattr(predictor, "lm", None) or settings.get("lm")
            value = (getattr(lm, "kwargs", None) or {}).get("rollout_id")
        if isinstance(value, int):
            return value
    return 0


def run_attempt(module: Module, kwargs: dict[str, Any]) -> tuple[Any, Graph]:
    """Call ``module(**kwargs)`` recording its predictor calls into a fresh graph."""
    with record() as graph:
        prediction = module(**kwargs)
    return prediction, graph


def score(reward_fn: RewardFn, kwargs: dict[str, Any], prediction: Any) -> float:
    with no_grad():  # the reward's own LM calls are not part of the program's graph
        value = reward_fn(kwargs, prediction)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"reward_fn must return a number (or bool); it returned {value!r}.") from None


def merge_into_current(graph: Graph | None, original: Module, attempt: Module | None) -> None:
    """Add the chosen attempt's nodes to the graph of the enclosing forward pass, if one is recorded.

    Nodes are re-pointed from the attempt's predictor copies to the original predictors (whose
    parameters they already use), so node names and backward passes refer to the real program.
    """
    outer = current_graph()
    if outer is None or graph is None or outer is graph:
        return
    originals: dict[int, Any] = {}
    if attempt is not None:
        mine = dict(original.named_predictors())
        originals = {id(p): mine[name] for name, p in attempt.named_predictors() if name in mine}
    for node in graph.nodes:
        node.module = originals.get(id(node.module), node.module)
        outer.add(node)


def check_common(module: Any, N: int, fail_count: int | None) -> int:  # noqa: N803
    if not isinstance(module, Module):
        raise ConfigurationError(f"module must be a textgrad_like Module (e.g. ChainOfThought(...)), got "
                                 f"{type(module).__name__}.")
    if not isinstance(N, int) or N < 1:
        raise ConfigurationError(f"N must be a positive integer, got {N!r}.")
    if fail_count is not None and (not isinstance(fail_count, int) or fail_count < 0):
        raise ConfigurationError(f"fail_count must be a non-negative integer or None, got {fail_count!r}.")
    return N if fail_count is None else fail_count


class BestOfN(Module):
    """Run ``module`` up to ``N`` times; return the first prediction whose reward reaches ``threshold``,
    else the one with the highest reward.

    Args:
        module: the module to sample from.
        N: the most attempts.
        reward_fn: ``reward_fn(inputs: dict, prediction) -> float``.
        threshold: stop as soon as an attempt scores at least this (``None``: always run ``N`` attempts).
        fail_count: how many failed attempts are tolerated before the error is raised (default ``N``).
    """

    def __init__(self, module: Module, N: int, reward_fn: RewardFn, threshold: float | None,  # noqa: N803
                 fail_count: int | None = None) -> None:
        super().__init__()
        self.fail_count = check_common(module, N, fail_count)
        if not callable(reward_fn):
            raise ConfigurationError("reward_fn must be callable as reward_fn(inputs_dict, prediction) -> float.")
        self.module = module
        self.reward_fn = lambda *args: reward_fn(*args)  # keeps a Module reward from registering as a child
        self.threshold = threshold
        self.N = N

    # hooks for subclasses (Refine): change an attempt before it runs, learn from it after. ``state`` is
    # per call (never on the instance), so one module can serve many threads at once.
    def _prepare_attempt(self, candidate: Module, state: dict[str, Any]) -> None:
        return None

    def _after_attempt(self, candidate: Module, graph: Graph, kwargs: dict[str, Any], prediction: Any,
                       reward: float, state: dict[str, Any]) -> None:
        return None

    def forward(self, **kwargs: Any) -> Any:
        name = type(self).__name__
        start = start_rollout_id(self.module)
        best_pred: Any = None
        best_graph: Graph | None = None
        best_attempt: Module | None = None
        best_reward = -float("inf")
        failures = 0
        last_error: Exception | None = None
        state: dict[str, Any] = {}
        for idx in range(self.N):
            rollout_id = start + idx
            candidate = attempt_copy(self.module, rollout_id)
            self._prepare_attempt(candidate, state)
            try:
                prediction, graph = run_attempt(candidate, kwargs)
                reward = score(self.reward_fn, kwargs, prediction)
            except Exception as exc:
                failures += 1
                last_error = exc
                logger.warning("%s: attempt %d (rollout_id=%d) failed: %s: %s", name, idx + 1, rollout_id,
                               type(exc).__name__, exc)
                if failures > self.fail_count:
                    raise
                continue
            if best_pred is None or reward > best_reward:
                best_pred, best_graph, best_attempt, best_reward = prediction, graph, candidate, reward
            if self.threshold is not None and reward >= self.threshold:
                break
            if idx < self.N - 1:
                self._after_attempt(candidate, graph, kwargs, prediction, reward, state)
        if best_pred is None:
            if last_error is not None:
                raise last_error
            raise ConfigurationError(f"{name} made no attempt; N must be at least 1.")
        merge_into_current(best_graph, self.module, best_attempt)
        return best_pred
