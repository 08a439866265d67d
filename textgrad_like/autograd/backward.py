"""``loss.backward()``: textual gradients through the recorded graph.

For every example, the graph of its forward pass is walked in reverse topological order. A node
whose outputs received feedback asks the backward LM, once, for (a) a critique of the node's
trainable text (its instruction, and any :class:`Variable` it took as input) and (b) feedback on
each input that an earlier node produced; (b) becomes the output feedback of those earlier nodes,
so feedback chains upstream as gradients do in reverse-mode autodiff. Nodes the loss never reached
get nothing, frozen parameters get nothing. ``Demos`` parameters receive the scored trace of the
node as their gradient (no LM call), which demo-selecting optimizers use.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import AdapterParseError, BackwardError
from ..nn.graph import Graph, Node, no_grad
from ..nn.parameter import Demos, Gradient, Variable
from ..parallel import ParallelExecutor
from ..settings import settings

logger = logging.getLogger(__name__)

_BACKWARD_INSTRUCTIONS = (
    "You are the backward pass of a program made of LM calls. One step of the program ran with the inputs "
    "and produced the outputs shown. Later steps or the final evaluation gave feedback on those outputs. "
    "Explain how this step's instruction should change so that its outputs earn better feedback: be "
    "specific and actionable, do not rewrite the instruction yourself. If some inputs came from earlier "
    "steps, say for each such input what was wrong with it (an empty string if nothing was wrong)."
)


def _backward_predictor() -> Any:
    from ..predict import Predict
    from ..signatures import InputField, OutputField, make_signature

    sig = make_signature({
        "instruction": (str, InputField(desc="the instruction this step was given")),
        "step_inputs": (str, InputField(desc="the inputs this step received")),
        "step_outputs": (str, InputField(desc="the outputs this step produced")),
        "feedback": (str, InputField(desc="feedback on these outputs from later steps or the evaluation")),
        "upstream_inputs": (list[str], InputField(desc="names of inputs that earlier steps produced")),
        "instruction_feedback": (str, OutputField(desc="how the instruction should change")),
        "input_feedback": (dict[str, str], OutputField(desc="for each upstream input name, what was wrong with it")),
    }, _BACKWARD_INSTRUCTIONS, signature_name="TextualBackward")
    return Predict(sig)


def _render(values: dict[str, Any]) -> str:
    from ..adapters.values import format_value

    return "\n".join(f"{k}: {format_value(v)}" for k, v in values.items())


def terminal_nodes(graph: Graph, prediction: Any = None) -> list[Node]:
    """Where the loss enters the graph: the nodes that produced the final prediction's values.

    Without a prediction (or when none of its values can be traced) these are the nodes whose
    outputs no other node consumed.
    """
    if prediction is not None:
        direct = [n for n in graph.nodes if n.prediction is prediction]
        if direct:
            return direct
        values = dict(prediction.items()) if hasattr(prediction, "items") else {"value": prediction}
        sources: list[Node] = []
        for value in values.values():
            for node in graph.sources_of(value):
                if node not in sources:
                    sources.append(node)
        if sources:
            return sources
    consumed = {id(p) for n in graph.nodes for p in n.parents}
    return [n for n in graph.nodes if id(n) not in consumed]


def _node_backward(node: Node, backward_lm: Any, score: float, predictor: Any) -> None:
    feedback = "\n".join(f"- {f}" for f in node.output_feedback)
    trainable_text = [p for p in node.params if isinstance(p, Variable) and p.requires_grad
                      and not _is_input_variable(node, p)]
    input_variables = {name: v for name, v in node.inputs.items() if isinstance(v, Variable) and v.requires_grad}
    upstream = [name for name in node.inputs if name in node.input_sources or name in input_variables]
    context = {"node": node.name, "inputs": _render(node.inputs), "outputs": _render(node.outputs),
               "downstream_feedback": list(node.output_feedback)}
    for param in node.params:
        if isinstance(param, Demos) and param.requires_grad:
            param.accumulate(Gradient(feedback=feedback, context={**context, "trace": (node.inputs, node.outputs)},
                                      score=score))
    if not trainable_text and not upstream:
        return
    instruction = next((p.value for p in node.params if p.kind == "instruction"), "")
    if getattr(node.module, "backward_passthrough", False) is True:
        # an evaluation node (text_loss): its evaluation already is the feedback on its inputs; no LM call
        instruction_feedback = "\n".join(node.output_feedback)
        input_feedback = dict.fromkeys(upstream, instruction_feedback)
    else:
        try:
            with no_grad():
                out = predictor(instruction=instruction, step_inputs=_render(node.inputs),
                                step_outputs=_render(node.outputs), feedback=feedback, upstream_inputs=upstream,
                                lm=backward_lm)
            instruction_feedback = str(out.instruction_feedback).strip()
            input_feedback = dict(out.input_feedback or {})
        except AdapterParseError as exc:
            logger.warning("Backward LM reply for %s could not be parsed (%s); passing the feedback through.",
                           node.name, exc.field)
            instruction_feedback = f"Outputs of this step received this feedback: {feedback}"
            input_feedback = dict.fromkeys(upstream, feedback)
    for param in trainable_text:
        param.accumulate(Gradient(feedback=instruction_feedback, context=context, score=score))
    for name in upstream:
        text = str(input_feedback.get(name, "")).strip()
        if not text:
            continue
        if name in input_variables:
            input_variables[name].accumulate(Gradient(feedback=text, context=context, score=score))
        for parent in node.input_sources.get(name, []):
            parent.output_feedback.append(f"(about `{name}` as used by {node.name}) {text}")


def _is_input_variable(node: Node, param: Any) -> bool:
    return any(v is param for v in node.inputs.values())


def backward_graph(graph: Graph, feedback: str, score: float, backward_lm: Any, prediction: Any = None) -> list[Node]:
    """Run the backward pass of one graph; returns the nodes visited, in the order they were visited."""
    graph.name_nodes()
    for node in graph.nodes:
        node.output_feedback = []
    for node in terminal_nodes(graph, prediction):
        node.output_feedback.append(feedback)
    predictor = _backward_predictor()
    visited = []
    for node in reversed(graph.topological_order()):
        if not node.output_feedback:
            continue
        _node_backward(node, backward_lm, score, predictor)
        visited.append(node)
    return visited


def backward(loss: Any, backward_lm: Any = None, num_threads: int | None = None) -> list[list[Node]]:
    lm = backward_lm or settings.get("backward_lm") or settings.get("lm")
    if lm is None:
        raise BackwardError("loss.backward() needs an LM to write textual gradients: pass backward_lm=... or "
                            "configure(backward_lm=LM(...)).")
    jobs = [(item, item.graph) for item in loss.items]
    if not any(graph is not None and len(graph) for _, graph in jobs):
        raise BackwardError("No graph was recorded for these predictions. Run the program in training mode "
                            "(module.train(), outside no_grad()) before computing the loss.")
    executor = ParallelExecutor(num_threads=num_threads or settings.get("num_threads"), max_errors=0,
                                disable_progress_bar=True, description="Backward")

    def run(job: tuple[Any, Graph | None]) -> list[Node]:
        item, graph = job
        if graph is None or not len(graph):
            return []
        return backward_graph(graph, item.feedback, item.score, lm, item.prediction)

    return executor.run(run, jobs)
