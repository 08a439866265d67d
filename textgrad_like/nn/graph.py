"""The computation graph of a forward pass, as micrograd's engine keeps one for scalars.

Each call of a predictor (or functional LM call) in training mode adds a :class:`Node`: its
inputs, outputs, the parameters it used and edges to the nodes whose outputs fed its inputs.
A graph belongs to one forward pass: it lives in a :class:`contextvars.ContextVar`, so threads
and asyncio tasks never share one, and it is attached to the :class:`Prediction` it produced.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .parameter import Parameter

_current_graph: contextvars.ContextVar[Graph | None] = contextvars.ContextVar("textgrad_like_graph", default=None)
_grad_enabled: contextvars.ContextVar[bool] = contextvars.ContextVar("textgrad_like_grad_enabled", default=True)
_ids = itertools.count()


@dataclass(eq=False)
class Node:
    """One recorded call: ``name`` (the predictor's path), its inputs and outputs, the parameters used."""

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
    # filled by backward()
    output_feedback: list[str] = field(default_factory=list)

    @property
    def trainable_params(self) -> list[Parameter]:
        return [p for p in self.params if p.requires_grad]

    def __repr__(self) -> str:
        return f"Node({self.name!r}, inputs={list(self.inputs)}, outputs={list(self.outputs)}, parents={[p.name for p in self.parents]})"


class Graph:
    """Nodes of one forward pass, in the order they ran, with producer lookup for values."""

    def __init__(self, root: Any = None) -> None:
        self.root = root
        self.nodes: list[Node] = []
        self._producers: dict[int, tuple[Any, Node]] = {}
        self._text_producers: list[tuple[str, Node]] = []
        self._lock = threading.Lock()

    def add(self, node: Node) -> Node:
        with self._lock:
            for name, value in node.inputs.items():
                sources = self._sources_locked(value)
                if sources:
                    node.input_sources[name] = sources
                    for src in sources:
                        if src not in node.parents:
                            node.parents.append(src)
            self.nodes.append(node)
            for value in node.outputs.values():
                self._register_locked(value, node)
        return node

    def _register_locked(self, value: Any, node: Node) -> None:
        self._producers[id(value)] = (value, node)
        if isinstance(value, str):
            if value.strip():
                self._text_producers.append((value, node))
        elif isinstance(value, (list, tuple)):
            for item in value:
                self._register_locked(item, node)
        elif isinstance(value, dict):
            for key, item in value.items():
                self._register_locked(key, node)
                self._register_locked(item, node)

    def _sources_locked(self, value: Any) -> list[Node]:
        found: list[Node] = []

        def visit(v: Any) -> None:
            hit = self._producers.get(id(v))
            if hit is not None and hit[0] is v and not isinstance(v, (bool, int, float, type(None))):
                if hit[1] not in found:
                    found.append(hit[1])
                return
            if isinstance(v, Parameter):
                return
            if isinstance(v, str):
                stripped = v.strip()
                if not stripped:
                    return
                for text, node in self._text_producers:
                    if node in found:
                        continue
                    if text == v or (len(text.strip()) >= 3 and text.strip() in v):
                        found.append(node)
                return
            if isinstance(v, (list, tuple)):
                for item in v:
                    visit(item)
            elif isinstance(v, dict):
                for key, item in v.items():
                    visit(key)
                    visit(item)

        visit(value)
        return found

    def sources_of(self, value: Any) -> list[Node]:
        with self._lock:
            return self._sources_locked(value)

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
        """Nodes so that every node comes after the nodes that fed it."""
        order: list[Node] = []
        seen: set[int] = set()

        def visit(node: Node) -> None:
            if node.id in seen:
                return
            seen.add(node.id)
            for parent in node.parents:
                visit(parent)
            order.append(node)

        for node in self.nodes:
            visit(node)
        return order

    def parameters(self) -> list[Parameter]:
        seen: dict[int, Parameter] = {}
        for node in self.nodes:
            for p in node.params:
                seen.setdefault(id(p), p)
        return list(seen.values())

    def trace(self) -> list[tuple[Any, dict[str, Any], Any]]:
        """DSPy-style trace: ``[(predictor, inputs, prediction), ...]``."""
        return [(n.module, n.inputs, n.prediction) for n in self.nodes]

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        return f"Graph({len(self.nodes)} nodes: {[n.name for n in self.nodes]})"


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
