"""The recorded computation graph, as torch's autograd graph and micrograd's ``Value`` keep one.

Every call of a predictor (or functional LM call) in training mode creates a :class:`Node`: its
inputs, outputs, the parameters it used, and its parents. Parents are **recorded, never guessed**:
the values a node returns carry the node that made them (their ``grad_fn``, see
:mod:`textgrad_like.nn.traced`), and a new node's parents are exactly the ``grad_fn`` of its inputs.
Text that merely looks like an earlier output makes no edge.

Each node owns its backward, as each torch ``grad_fn`` does:

- :class:`LMNode` — a predictor or ``llm_call``: asks the backward LM for feedback on its
  trainable text and on each traced input (``engine.textual_backward``);
- :class:`FunctionNode` — a Python step (``@autograd.function``, derived strings): passes the
  feedback through to its inputs, or runs a custom ``Function.backward``;
- :class:`LossNode` — an evaluation (``TextLoss``): its evaluation already is the feedback on its
  inputs; no LM call.

A :class:`Graph` is the record of one forward pass (for DSPy traces and naming); it lives in a
:class:`contextvars.ContextVar`, so threads and asyncio tasks never share one. The backward walk
follows ``parents`` from where the loss enters (see :mod:`textgrad_like.autograd.backward`); its
scratch lives in that one call, never on the nodes.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .parameter import Parameter

logger = logging.getLogger(__name__)

_current_graph: contextvars.ContextVar[Graph | None] = contextvars.ContextVar("textgrad_like_graph", default=None)
_grad_enabled: contextvars.ContextVar[bool] = contextvars.ContextVar("textgrad_like_grad_enabled", default=True)
_ids = itertools.count()

# the text-match diagnostic: the (upstream, downstream, input) triples already warned about
_warned: set[tuple[int, int, str]] = set()
_warned_lock = threading.Lock()
_DIAGNOSTIC_MIN_CHARS = 12


@dataclass
class NodeGradient:
    """What one node's backward returns: feedback per trainable parameter and per input name.

    ``params`` holds ``(parameter, feedback, extra context)``; ``inputs`` maps an input name to the
    feedback on the value that came in under that name (sent to the node that made it)."""

    params: list[tuple[Parameter, str, dict[str, Any]]] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)


def _drop_provenance() -> None:
    return None


@dataclass(eq=False)
class Node:
    """One recorded call: ``name`` (the predictor's path), its inputs and outputs, the parameters used.

    ``parents`` and ``input_sources`` (input name → producing nodes) are filled from the inputs'
    recorded provenance when the node is created."""

    kind: ClassVar[str] = "node"

    name: str
    module: Any
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    params: list[Parameter] = field(default_factory=list)
    parents: list[Node] = field(default_factory=list)
    input_sources: dict[str, list[Node]] = field(default_factory=dict)
    prompt: str = ""
    id: int = field(default_factory=lambda: next(_ids))
    prediction: Any = None
    freed: bool = False  # set by a backward() without retain_graph=True

    def __post_init__(self) -> None:
        if not self.parents and not self.input_sources:
            self.link()

    def link(self) -> None:
        """Set ``input_sources`` and ``parents`` from the recorded provenance of the inputs."""
        from .traced import sources_of

        self.input_sources = {}
        parents: list[Node] = []
        for name, value in self.inputs.items():
            found = [n for n in sources_of(value) if n is not self]
            if found:
                self.input_sources[name] = found
                parents.extend(n for n in found if n not in parents)
        self.parents = parents

    @property
    def trainable_params(self) -> list[Parameter]:
        return [p for p in self.params if p.requires_grad]

    def traced_inputs(self) -> list[str]:
        """Input names that feedback can flow to: values made by a node, or trainable Variables."""
        from .parameter import Variable

        return [name for name, value in self.inputs.items()
                if name in self.input_sources or (isinstance(value, Variable) and value.requires_grad)]

    def backward(self, feedback: list[str], engine: Any) -> NodeGradient:
        """Feedback for this node's parameters and inputs, given the feedback on its outputs."""
        raise NotImplementedError(f"{type(self).__name__} does not define backward().")

    # nodes are records of what happened: copies share them, pickles drop them (as torch drops grad_fn)
    def __deepcopy__(self, memo: dict[int, Any]) -> Node:
        return self

    def __reduce__(self) -> Any:
        return (_drop_provenance, ())

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, inputs={list(self.inputs)}, outputs={list(self.outputs)}, "
                f"parents={[p.name for p in self.parents]})")


def _input_variables(node: Node) -> list[Any]:
    return [v for v in node.inputs.values() if isinstance(v, Parameter)]


@dataclass(eq=False, repr=False)
class LMNode(Node):
    """A predictor call or functional LM call: its backward asks the backward LM (once) for a critique
    of its trainable text and for feedback on each traced input."""

    kind: ClassVar[str] = "lm"

    def backward(self, feedback: list[str], engine: Any) -> NodeGradient:
        from .parameter import Demos, Variable

        grad = NodeGradient()
        joined = "\n".join(f"- {f}" for f in feedback)
        for param in self.params:
            if isinstance(param, Demos) and param.requires_grad:
                grad.params.append((param, joined, {"trace": (self.inputs, self.outputs)}))
        inputs = _input_variables(self)
        text_params = [p for p in self.params if isinstance(p, Variable) and p.requires_grad
                       and all(p is not v for v in inputs)]
        upstream = self.traced_inputs()
        if not text_params and not upstream:
            return grad
        instruction_feedback, input_feedback = engine.textual_backward(self, feedback, upstream)
        grad.params.extend((p, instruction_feedback, {}) for p in text_params)
        grad.inputs = {name: text for name in upstream if (text := str(input_feedback.get(name, "")).strip())}
        return grad


@dataclass(eq=False, repr=False)
class FunctionNode(Node):
    """A Python step between recorded calls. Without ``backward_fn`` the feedback on its outputs passes
    through unchanged to every traced input (``@autograd.function``); with one (an
    ``autograd.Function``), ``backward_fn(ctx, feedback)`` returns the feedback per input."""

    kind: ClassVar[str] = "function"

    backward_fn: Any = None
    ctx: Any = None

    def backward(self, feedback: list[str], engine: Any) -> NodeGradient:
        upstream = self.traced_inputs()
        if self.backward_fn is None:
            text = "\n".join(feedback)
            return NodeGradient(inputs=dict.fromkeys(upstream, text))
        result = self.backward_fn(self.ctx, "\n".join(feedback))
        if result is None:
            return NodeGradient()
        if isinstance(result, str):
            return NodeGradient(inputs=dict.fromkeys(upstream, result))
        if not isinstance(result, dict):
            from ..errors import BackwardError

            raise BackwardError(f"{self.name}.backward returned {type(result).__name__}; return a str (feedback for "
                                "every input), a dict {input name: feedback} or None.")
        return NodeGradient(inputs={k: str(v) for k, v in result.items() if k in upstream and str(v or "").strip()})


@dataclass(eq=False, repr=False)
class LossNode(Node):
    """An evaluation step (``TextLoss``): the feedback it starts with is its own evaluation, passed to its
    inputs and to its trainable instruction unchanged (no LM call)."""

    kind: ClassVar[str] = "loss"

    def backward(self, feedback: list[str], engine: Any) -> NodeGradient:
        from .parameter import Variable

        text = "\n".join(feedback)
        inputs = _input_variables(self)
        grad = NodeGradient(inputs=dict.fromkeys(self.traced_inputs(), text))
        grad.params.extend((p, text, {}) for p in self.params
                           if isinstance(p, Variable) and p.requires_grad and all(p is not v for v in inputs))
        return grad


class Graph:
    """The nodes one forward pass recorded, in the order they ran (the DSPy trace of that pass)."""

    def __init__(self, root: Any = None) -> None:
        self.root = root
        self.nodes: list[Node] = []
        self._lock = threading.Lock()

    def add(self, node: Node) -> Node:
        """Record ``node`` (its parents were set from its inputs' provenance when it was made)."""
        with self._lock:
            if any(n is node for n in self.nodes):
                return node
            earlier = list(self.nodes)
            self.nodes.append(node)
        self._diagnose(node, earlier)
        return node

    def _diagnose(self, node: Node, earlier: list[Node]) -> None:
        """Warn once when an input holds an earlier output's text but no recorded provenance: a Python
        step the graph cannot see cut the chain. This makes no edge."""
        module = node.module
        if not earlier or not getattr(module, "training", False):
            return
        for name, value in node.inputs.items():
            texts = [] if name in node.input_sources else _texts(value)
            if not texts:
                continue
            for up in reversed(earlier[-200:]):
                for out in up.outputs.values():
                    text = out.strip() if isinstance(out, str) else ""
                    if len(text) < _DIAGNOSTIC_MIN_CHARS or not any(text in t for t in texts):
                        continue
                    key = (id(up.module), id(module), name)
                    with _warned_lock:
                        if key in _warned:
                            return
                        _warned.add(key)
                    down_label, up_label = self._label(node), self._label(up)
                    logger.warning(
                        "Input %r of %s contains the output of %s but carries no provenance, so no feedback will "
                        "reach %s. A Python step between them built a new value; decorate it with "
                        "@textgrad_like.autograd.function (or pass the predictor's value on as is).",
                        name, down_label, up_label, up_label)
                    return

    def _label(self, node: Node) -> str:
        """``node``'s path in the root module when known (``generate_query``), with its signature."""
        name = node.name
        if self.root is not None:
            for path, module in self.root.named_modules():
                if module is node.module:
                    name = path or "self"
                    break
        signature = getattr(getattr(node.module, "signature", None), "signature", None)
        return f"`{name}`" + (f" ({signature})" if isinstance(signature, str) else "")

    def name_nodes(self) -> None:
        """Give each node its predictor's dotted path in the root module (e.g. ``first.predict``)."""
        if self.root is None:
            return
        if all(node.module is self.root for node in self.nodes):
            for node in self.nodes:
                node.name = "self"
            return
        names = {id(m): (n or "self") for n, m in self.root.named_modules()}
        for node in self.nodes:
            if id(node.module) in names:
                node.name = names[id(node.module)]

    def topological_order(self) -> list[Node]:
        """This pass's nodes so that every node comes after the nodes that fed it."""
        return topological_order(self.nodes)

    def sinks(self) -> list[Node]:
        """Nodes whose outputs no other node of this pass consumed."""
        consumed = {id(p) for n in self.nodes for p in n.parents}
        return [n for n in self.nodes if id(n) not in consumed]

    def parameters(self) -> list[Parameter]:
        seen: dict[int, Parameter] = {}
        for node in self.nodes:
            for p in node.params:
                seen.setdefault(id(p), p)
        return list(seen.values())

    def trace(self) -> list[tuple[Any, dict[str, Any], Any]]:
        """DSPy-style trace: ``[(predictor, inputs, prediction), ...]`` (predictor calls only)."""
        return [(n.module, n.inputs, n.prediction) for n in self.nodes if n.prediction is not None
                and getattr(n.module, "_is_predictor", False)]

    def __deepcopy__(self, memo: dict[int, Any]) -> Graph:
        return self

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        return f"Graph({len(self.nodes)} nodes: {[n.name for n in self.nodes]})"


def _texts(value: Any, depth: int = 0) -> list[str]:
    """The strings in an input (in lists, tuples and dict values too), for the diagnostic."""
    if isinstance(value, str):
        return [value]
    if depth > 3:
        return []
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _texts(v, depth + 1)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v, depth + 1)]
    return []


def topological_order(roots: list[Node]) -> list[Node]:
    """``roots`` and all their ancestors, each after the nodes that fed it (micrograd's ``build_topo``)."""
    order: list[Node] = []
    seen: set[int] = set()
    for root in roots:
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in reversed(node.parents) if id(p) not in seen)
    return order


def current_graph() -> Graph | None:
    return _current_graph.get()


def is_grad_enabled() -> bool:
    return _grad_enabled.get()


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Record nothing inside the block (as ``torch.no_grad``)."""
    t1 = _grad_enabled.set(False)
    t2 = _current_graph.set(None)
    try:
        yield
    finally:
        _current_graph.reset(t2)
        _grad_enabled.reset(t1)


@contextlib.contextmanager
def enable_grad() -> Iterator[None]:
    token = _grad_enabled.set(True)
    try:
        yield
    finally:
        _grad_enabled.reset(token)


@contextlib.contextmanager
def record(graph: Graph | None = None) -> Iterator[Graph]:
    """Record every predictor call in the block into ``graph`` (a new one by default), whatever the
    modules' training mode. Optimizers use it to collect traces."""
    graph = graph if graph is not None else Graph()
    t1 = _current_graph.set(graph)
    t2 = _grad_enabled.set(True)
    try:
        yield graph
    finally:
        _grad_enabled.reset(t2)
        _current_graph.reset(t1)


@contextlib.contextmanager
def _forward_scope(graph: Graph) -> Iterator[Graph]:
    token = _current_graph.set(graph)
    try:
        yield graph
    finally:
        _current_graph.reset(token)
