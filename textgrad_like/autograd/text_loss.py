"""Losses over free text :class:`Variable` s, for instance optimization (refining one answer, one
piece of code, one prompt at test time).

- :class:`TextLoss` — an LM evaluates the text following your instruction; its critique is the feedback.
- :class:`FunctionLoss` — a Python function scores the text (e.g. runs unit tests); its message or
  exception is the feedback.
- :class:`MultiFieldLoss` — an LM evaluates several texts together (question + answer + reference).

Each returns a :class:`~textgrad_like.autograd.loss.Loss` whose item graph is the evaluated
Variable's recorded graph (only the calls it came from) plus one evaluation node, so
``loss.backward()`` gives ``variable.grad`` even for a leaf Variable that no LM call produced. The
evaluation node passes its critique to its inputs as is (no extra LM call): the critique already is
feedback on them. Then ``TextualGradientDescent([variable]).step()`` rewrites the value.

Scores: ``FunctionLoss`` takes the function's score. The LM losses read a score from the critique
when it states one ("score: 7/10", "Score: 0.8"); otherwise the score is 0.0 and
``item.extra["score_parsed"]`` is False. Pass ``score_fn=`` to compute one yourself.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import InputError
from ..nn.functional import fill_template, graph_of, lm_text, resolve_lm
from ..nn.graph import Graph, LossNode, Node, topological_order
from ..nn.parameter import Instruction, Parameter, Variable
from ..nn.traced import sources_of
from ..primitives import Example
from ..primitives.metric import read_metric
from .loss import Loss, LossItem

logger = logging.getLogger(__name__)

__all__ = ["TextLoss", "FunctionLoss", "MultiFieldLoss", "parse_score", "loss_graph"]

_SCORE = re.compile(r"score\W{0,4}(-?\d+(?:\.\d+)?)(?:\s*(?:/|out of)\s*(\d+(?:\.\d+)?))?", re.I)


def parse_score(text: str) -> float | None:
    """A 0–1 score stated in an evaluation ("Score: 0.8", "score 7/10", "SCORE: 85 out of 100")."""
    match = _SCORE.search(text or "")
    if match is None:
        return None
    value = float(match.group(1))
    if match.group(2):
        denom = float(match.group(2))
        value = value / denom if denom else 0.0
    elif value > 1.0:
        value = value / 10.0 if value <= 10.0 else value / 100.0
    return max(0.0, min(1.0, value))


def _ancestors(value: Any) -> list[Node]:
    """The recorded nodes ``value`` came from (its ``grad_fn`` and everything upstream), oldest first."""
    return topological_order(sources_of(value))


def loss_graph(inputs: dict[str, Any], eval_node: Node | None) -> Graph:
    """A fresh graph: the nodes the inputs were made from (followed through their recorded
    provenance), then ``eval_node`` consuming the inputs. Nodes are shared with the inputs' graphs."""
    graph = Graph()
    seen: set[int] = set()
    nodes: list[Node] = []
    for value in inputs.values():
        for node in _ancestors(value):
            if id(node) not in seen:
                seen.add(id(node))
                nodes.append(node)
    for node in nodes:
        graph.add(node)
    if eval_node is not None:
        graph.add(eval_node)
    return graph


class _VariableLoss:
    """Shared machinery: build the evaluation node and the loss item for some inputs."""

    name = "loss"

    def __init__(self, instruction: str | Variable = "", reduction: str = "mean") -> None:
        if reduction not in ("mean", "sum"):
            raise InputError("reduction must be 'mean' or 'sum'.")
        self.instruction = instruction
        self.reduction = reduction

    def _instruction_params(self) -> list[Parameter]:
        if isinstance(self.instruction, Instruction):
            return [self.instruction]
        text = self.instruction.value if isinstance(self.instruction, Variable) else str(self.instruction)
        params: list[Parameter] = [Instruction(text, requires_grad=False, name=f"{self.name}.instruction")]
        if isinstance(self.instruction, Variable):
            params.append(self.instruction)
        return params

    def _item(self, inputs: dict[str, Any], score: float, feedback: str, prediction: Any,
              extra: dict[str, Any]) -> LossItem:
        if isinstance(prediction, Example):
            # a Prediction from a module: the feedback enters its recorded graph (None in eval mode,
            # which makes backward() say so)
            graph = graph_of(prediction)
        else:
            used = [*self._instruction_params(), *(v for v in inputs.values() if isinstance(v, Variable))]
            # a LossNode passes its evaluation to its inputs unchanged; prediction= makes it the entry point
            node = LossNode(name=self.name, module=self, inputs=dict(inputs), outputs={"evaluation": feedback},
                        params=used, prediction=prediction)
            graph = loss_graph(inputs, node)
        return LossItem(prediction, None, float(score), feedback, graph, extra)


def _text(value: Any) -> str:
    from ..adapters.values import format_value

    if isinstance(value, Example):
        return "\n".join(f"{k}: {format_value(v)}" for k, v in value.items())
    return format_value(value)


def _check_text(value: Any, what: str) -> None:
    if not isinstance(value, (Variable, str, Example)):
        raise InputError(f"{what} evaluates a Variable, a string or a Prediction; got {type(value).__name__}.")


def _as_batch(values: Any) -> list[Any]:
    return list(values) if isinstance(values, (list, tuple)) else [values]


class TextLoss(_VariableLoss):
    """``TextLoss("Evaluate the answer: is it correct and concise? Be critical.")(answer_variable)``.

    The LM gets ``eval_instruction`` as its system prompt and the Variable's text as the user
    message; its reply is the feedback. ``eval_instruction`` may be a Variable (it is optimized
    too if it requires grad). Call it with one Variable or a list (a batch, one item each)."""

    name = "TextLoss"

    def __init__(self, eval_instruction: str | Variable, lm: Any = None,
                 score_fn: Callable[[str], float | None] | None = None, reduction: str = "mean",
                 **lm_kwargs: Any) -> None:
        super().__init__(eval_instruction, reduction)
        self.lm = lm
        self.score_fn = score_fn or parse_score
        self.lm_kwargs = lm_kwargs

    def __call__(self, variable: Any) -> Loss:
        items = []
        for value in _as_batch(variable):
            _check_text(value, "TextLoss")
            lm = resolve_lm(self.lm, "TextLoss")
            system = _text(self.instruction)
            feedback = lm_text(lm, system, _text(value), **self.lm_kwargs)
            score = self.score_fn(feedback)
            items.append(self._item({"evaluated": value}, score or 0.0, feedback, value,
                                    {"score_parsed": score is not None}))
        return Loss(items, self.reduction)


class FunctionLoss(_VariableLoss):
    """A loss from a Python function of the text: ``FunctionLoss(run_tests)(code_variable)``.

    ``fn(value: str)`` returns a score (bool or number, higher is better), ``(score, feedback)``, a
    dict / Prediction with ``score`` and ``feedback``, or raises: an exception scores 0.0 and its
    type and message become the feedback (an ``AssertionError`` from a failing unit test, say).
    ``feedback_fn(value, score)`` can write feedback for functions that only return a score."""

    name = "FunctionLoss"

    def __init__(self, fn: Callable[[str], Any], description: str = "",
                 feedback_fn: Callable[[str, float], str] | None = None, reduction: str = "mean") -> None:
        if not callable(fn):
            raise InputError(f"FunctionLoss needs a callable, got {type(fn).__name__}.")
        doc = (fn.__doc__ or "").strip()
        desc = description or (doc.splitlines()[0] if doc else f"evaluation by {getattr(fn, '__name__', 'a function')}")
        super().__init__(desc, reduction)
        self.fn = fn
        self.feedback_fn = feedback_fn

    def __call__(self, variable: Any) -> Loss:
        items = []
        for value in _as_batch(variable):
            _check_text(value, "FunctionLoss")
            text = _text(value)
            extra: dict[str, Any] = {}
            try:
                result = self.fn(text)
            except Exception as exc:  # the function's failure is the feedback
                score, feedback = 0.0, f"{type(exc).__name__}: {exc}".strip()
                extra["exception"] = type(exc).__name__
            else:
                score, feedback = read_metric(result)
            if not feedback:
                feedback = (self.feedback_fn(text, score) if self.feedback_fn is not None
                            else f"The evaluation function scored this {score:.2f} (1.0 is best).")
            items.append(self._item({"evaluated": value}, score, feedback, value, extra))
        return Loss(items, self.reduction)


def _slug(text: str, index: int) -> str:
    words = re.findall(r"[A-Za-z0-9]+", text.lower())[:4]
    return "_".join(words) or f"field_{index}"


class MultiFieldLoss(_VariableLoss):
    """An LM evaluation of several texts together::

        loss_fn = MultiFieldLoss("Compare the answer with the reference; list its mistakes.",
                                 role_descriptions=["question", "answer", "reference answer"])
        loss = loss_fn([question, answer, reference])   # Variables or strings

    Each field is shown under its role description. Trainable Variables among them receive the
    critique as gradient; ``field_names`` names the edges (default: from the role descriptions).
    An ``instruction`` with ``{placeholders}`` named after the fields is filled instead."""

    name = "MultiFieldLoss"

    def __init__(self, instruction: str | Variable, role_descriptions: Sequence[str], lm: Any = None,
                 field_names: Sequence[str] | None = None, score_fn: Callable[[str], float | None] | None = None,
                 reduction: str = "mean", **lm_kwargs: Any) -> None:
        super().__init__(instruction, reduction)
        self.role_descriptions = [str(r) for r in role_descriptions]
        if not self.role_descriptions:
            raise InputError("MultiFieldLoss needs role_descriptions=[...], one per evaluated field.")
        names = list(field_names) if field_names else [_slug(r, i) for i, r in enumerate(self.role_descriptions)]
        if len(names) != len(self.role_descriptions):
            raise InputError("field_names must have one name per role description.")
        deduped: list[str] = []
        for i, n in enumerate(names):
            deduped.append(n if n not in deduped else f"{n}_{i}")
        self.field_names = deduped
        self.lm = lm
        self.score_fn = score_fn or parse_score
        self.lm_kwargs = lm_kwargs

    def __call__(self, inputs: Sequence[Any]) -> Loss:
        if isinstance(inputs, (Variable, str)) or len(inputs) != len(self.role_descriptions):
            raise InputError(f"MultiFieldLoss takes a list of {len(self.role_descriptions)} values "
                             f"({', '.join(self.role_descriptions)}).")
        for value in inputs:
            _check_text(value, "MultiFieldLoss")
        fields = dict(zip(self.field_names, inputs, strict=True))
        lm = resolve_lm(self.lm, "MultiFieldLoss")
        instruction = _text(self.instruction)
        if any("{" + n + "}" in instruction for n in self.field_names):
            system, user = "", fill_template(instruction, {n: v for n, v in fields.items()
                                                          if "{" + n + "}" in instruction})
        else:
            system = instruction
            user = "\n\n".join(f"### {role}\n{_text(value)}"
                               for role, value in zip(self.role_descriptions, inputs, strict=True))
        feedback = lm_text(lm, system, user, **self.lm_kwargs)
        score = self.score_fn(feedback)
        trainable = [v for v in inputs if isinstance(v, Variable) and v.requires_grad]
        prediction = trainable[0] if len(trainable) == 1 else list(inputs)
        item = self._item(fields, score or 0.0, feedback, prediction, {"score_parsed": score is not None})
        return Loss([item], self.reduction)
