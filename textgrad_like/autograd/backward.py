"""``loss.backward()``: textual gradients through the recorded graph (micrograd's engine, for text).

1. **Entry.** Each loss item enters the graph at the node(s) that made its prediction: the predictor
   node whose Prediction it is, else the recorded ``grad_fn`` of the prediction's values, else (no
   provenance at all) the final nodes of its forward pass, with a warning.
2. **Order.** All entry nodes and their ancestors (followed through ``parents``) are put in one
   topological order (``build_topo``); the walk goes in reverse, so a node runs after every node
   that consumed its outputs. A node reached by several losses or examples runs **once**, with all
   the feedback on its outputs (as torch sums the gradients flowing into a tensor).
3. **Each node owns its backward.** ``node.backward(feedback, engine)`` returns feedback for its
   parameters and its inputs: predictor/LM nodes ask the backward LM once (through
   :meth:`BackwardEngine.textual_backward`), function nodes pass feedback through, loss nodes
   start it. Input feedback goes to the nodes that made those inputs.
4. **Scratch is local.** The feedback waiting at each node lives in this call's
   :class:`BackwardEngine`, never on the shared nodes, so two losses, threads or a batch never mix.
5. **Deterministic.** Nodes whose consumers are all done run together on the thread pool; their
   results are applied in walk order, and the gradient items are added to the parameters in order
   of example index, then node order — the same with 1 thread or 8.
6. **Freed.** Without ``retain_graph=True`` the walked nodes are marked freed; a second backward
   through them raises :class:`~textgrad_like.errors.GraphFreedError` (as torch does).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..errors import AdapterParseError, BackwardError, GraphFreedError
from ..nn.graph import Graph, Node, NodeGradient, no_grad, topological_order
from ..nn.parameter import Gradient, Parameter
from ..nn.traced import sources_of
from ..parallel import ParallelExecutor
from ..prompts import TextualBackward, check_override
from ..settings import settings

logger = logging.getLogger(__name__)


def _render(values: dict[str, Any]) -> str:
    from ..adapters.values import format_value

    return "\n".join(f"{k}: {format_value(v)}" for k, v in values.items())


def terminal_nodes(graph: Graph | None, prediction: Any = None) -> list[Node]:
    """Where a loss on ``prediction`` enters the graph: the node whose Prediction it is, else the nodes
    recorded as the makers of its values; without any provenance, the final nodes of ``graph``."""
    if graph is not None and prediction is not None:
        direct = [n for n in graph.nodes if n.prediction is prediction]
        if direct:
            return direct
    if prediction is not None:
        found = sources_of(prediction)
        if found:
            return found
    if graph is None:
        return []
    sinks = graph.sinks()
    if sinks and prediction is not None:
        logger.warning("The loss's prediction carries no recorded provenance (its values were rebuilt by Python code "
                       "the graph cannot see); feedback enters at the last steps of its forward pass: %s. Return the "
                       "predictor's values, or decorate the Python step with @textgrad_like.autograd.function.",
                       [n.name for n in sinks])
    return sinks


class BackwardEngine:
    """The state of one ``backward()`` call: feedback waiting at each node, and the LM that writes feedback."""

    def __init__(self, backward_lm: Any, signature: Any = None) -> None:
        from ..predict import Predict

        self.lm = backward_lm
        self.signature = check_override(signature, TextualBackward, "backward_signature")
        self.predictor = Predict(self.signature)
        self.feedback: dict[int, list[str]] = {}

    def textual_backward(self, node: Node, feedback: list[str], upstream: list[str]) -> tuple[str, dict[str, str]]:
        """Ask the backward LM how ``node``'s instruction should change and what was wrong with each of
        its ``upstream`` inputs, given the feedback on its outputs."""
        joined = "\n".join(f"- {f}" for f in feedback)
        instruction = next((p.value for p in node.params if p.kind == "instruction"), "")
        try:
            with no_grad():
                out = self.predictor(instruction=instruction, step_inputs=_render(node.inputs),
                                     step_outputs=_render(node.outputs), feedback=joined, upstream_inputs=upstream,
                                     lm=self.lm)
            return str(out.instruction_feedback).strip(), dict(out.input_feedback or {})
        except AdapterParseError as exc:
            logger.warning("Backward LM reply for %s could not be parsed (%s); passing the feedback through.",
                           node.name, exc.field)
            return f"Outputs of this step received this feedback: {joined}", dict.fromkeys(upstream, joined)


def _entries(items: Sequence[Any]) -> list[list[Node]]:
    out = []
    for item in items:
        graph = item.graph if isinstance(item.graph, Graph) else None
        if graph is not None:
            graph.name_nodes()
        out.append(terminal_nodes(graph, item.prediction))
    return out


def backward(loss: Any, backward_lm: Any = None, num_threads: int | None = None, retain_graph: bool = False,
             backward_signature: Any = None) -> list[list[Node]]:
    """Run the textual backward pass of ``loss`` (see the module docstring). Returns, per loss item, the
    nodes whose backward ran for it, in walk order."""
    lm = backward_lm or settings.get("backward_lm") or settings.get("lm")
    items = list(loss.items)
    entries = _entries(items)
    if not any(entries):
        raise BackwardError("No graph was recorded for these predictions. Run the program in training mode "
                            "(module.train(), outside no_grad()) before computing the loss.")
    if lm is None:
        raise BackwardError("loss.backward() needs an LM to write textual gradients: pass backward_lm=... or "
                            "configure(backward_lm=LM(...)).")
    roots = [n for nodes in entries for n in nodes]
    order = topological_order(roots)
    freed = [n.name for n in order if n.freed]
    if freed:
        raise GraphFreedError(f"Trying to backward through nodes {sorted(set(freed))} a second time: an earlier "
                              "backward() freed them. Pass retain_graph=True to the earlier backward() to call it "
                              "again, or run the forward pass again for a new graph (values reused from an "
                              "earlier forward pass keep their provenance: nn.detach() them).")
    walk = list(reversed(order))
    position = {id(n): i for i, n in enumerate(walk)}

    # which loss items reach each node (for its score and the order of gradient items)
    reached: dict[int, list[int]] = {}
    for index, nodes in enumerate(entries):
        for node in topological_order(nodes):
            reached.setdefault(id(node), []).append(index)

    engine = BackwardEngine(lm, backward_signature)
    for index, nodes in enumerate(entries):
        for node in nodes:
            engine.feedback.setdefault(id(node), []).append(items[index].feedback)

    consumers: dict[int, int] = {id(n): 0 for n in order}
    for node in order:
        for parent in node.parents:
            if id(parent) in consumers:
                consumers[id(parent)] += 1
    executor = ParallelExecutor(num_threads=num_threads or settings.get("num_threads"), max_errors=0,
                                disable_progress_bar=True, description="Backward")
    results: dict[int, NodeGradient] = {}
    remaining = list(walk)
    while remaining:
        wave = [n for n in remaining if consumers[id(n)] == 0]
        remaining = [n for n in remaining if consumers[id(n)] != 0]
        active = [n for n in wave if engine.feedback.get(id(n))]
        grads = executor.run(lambda n: _run_node(n, engine), active) if active else []
        for node, grad in zip(active, grads, strict=True):
            if isinstance(grad, BaseException):
                logger.error("The backward of %s failed: %s: %s", node.name, type(grad).__name__, grad)
                raise grad
        for node, grad in zip(active, grads, strict=True):
            results[id(node)] = grad
            for name, text in grad.inputs.items():
                for parent in node.input_sources.get(name, []):
                    engine.feedback.setdefault(id(parent), []).append(f"(about `{name}` as used by {node.name}) {text}")
        for node in wave:
            for parent in node.parents:
                consumers[id(parent)] -= 1

    _accumulate(walk, results, reached, position, items, engine)
    if not retain_graph:
        for node in order:
            node.freed = True
    return [[n for n in walk if id(n) in results and index in reached.get(id(n), [])] for index in range(len(items))]


def _run_node(node: Node, engine: BackwardEngine) -> NodeGradient | BaseException:
    try:
        return node.backward(list(engine.feedback[id(node)]), engine)
    except Exception as exc:  # re-raised by the walk, in node order, once the wave is done
        return exc


def _accumulate(walk: list[Node], results: dict[int, NodeGradient], reached: dict[int, list[int]],
                position: dict[int, int], items: list[Any], engine: BackwardEngine) -> None:
    """Add each node's gradient items to its parameters, ordered by example index, then node order."""
    pending: list[tuple[tuple[int, int, int], Parameter, Gradient]] = []
    for node in walk:
        grad = results.get(id(node))
        if grad is None:
            continue
        indices = reached.get(id(node), [])
        scores = [float(items[i].score) for i in indices]
        score = sum(scores) / len(scores) if scores else None
        feedback = engine.feedback.get(id(node), [])
        context = {"node": node.name, "inputs": _render(node.inputs), "outputs": _render(node.outputs),
                   "downstream_feedback": list(feedback), "examples": list(indices)}
        first = min(indices) if indices else len(items)
        rank = 0
        for param, text, extra in grad.params:
            pending.append(((first, position[id(node)], rank), param, Gradient(text, {**context, **extra}, score)))
            rank += 1
        for name, text in grad.inputs.items():
            variable = node.inputs.get(name)
            if isinstance(variable, Parameter) and variable.requires_grad:
                pending.append(((first, position[id(node)], rank), variable, Gradient(text, context, score)))
                rank += 1
    for _, param, gradient in sorted(pending, key=lambda entry: entry[0]):
        param.accumulate(gradient)
