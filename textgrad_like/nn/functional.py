"""LM calls on free text, recorded for textual autograd, as ``torch.nn.functional`` is for tensors.

``llm_call(x, system_prompt=...)`` sends the text of ``x`` (a :class:`Variable` or a string) to an LM
and returns the reply as a new :class:`Variable`. When an input requires grad (or a forward pass is
being recorded), the call adds a :class:`Node` to a graph and the output Variable carries that graph
in its ``graph`` attribute, so a loss over the output can send feedback back to the inputs::

    question = Variable("What is 17 * 3?", role_description="question", requires_grad=False)
    draft = Variable("51", role_description="draft answer")
    critique = llm_call(draft, system_prompt="Criticise this answer.")
    improved = formatted_llm_call("Question: {q}\\nAnswer: {a}\\nCritique: {c}\\nBetter answer:",
                                  {"q": question, "a": draft, "c": critique})
    loss = TextLoss("Is the answer correct and concise?")(improved)
    loss.backward()        # draft.grad now holds feedback that went through both calls

Graphs follow the Variables: a call whose inputs carry graphs extends that graph (several graphs are
merged into one); without any, a new graph starts. Inside a ``Module`` forward pass or ``record()``
the active graph is used. Under ``no_grad()`` nothing is recorded and outputs do not require grad.

Replies are taken as plain text (no output format is imposed), which suits small local models.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigurationError, InputError, LMError
from ..settings import settings
from .graph import Graph, LMNode, current_graph, is_grad_enabled
from .parameter import Instruction, Parameter, Variable
from .traced import sources_of, trace

__all__ = ["llm_call", "formatted_llm_call", "graph_of", "resolve_lm", "lm_text"]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_call_ids = itertools.count()


def graph_of(value: Any) -> Graph | None:
    """The graph recorded for a Variable (or Prediction), or ``None`` for a leaf value."""
    graph = getattr(value, "graph", None)
    return graph if isinstance(graph, Graph) else None


def resolve_lm(lm: Any, what: str = "llm_call") -> Any:
    """``lm`` or the configured LM; a clear error when there is none."""
    lm = lm or settings.get("lm")
    if lm is None:
        raise ConfigurationError(f"{what} needs an LM: pass lm=... or call textgrad_like.configure(lm=LM(...)) "
                                 "(LM('local/embedded') for the bundled local model).")
    if isinstance(lm, str):
        raise ConfigurationError(f"lm must be an LM object, not the string {lm!r}; use LM({lm!r}).")
    return lm


def lm_text(lm: Any, system: str, user: str, **lm_kwargs: Any) -> str:
    """One chat request (optional system message + user message); returns the first reply's text."""
    messages: list[dict[str, Any]] = []
    if system.strip():
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": user})
    outputs = lm(messages=messages, **lm_kwargs)
    if not outputs:
        raise LMError(f"{getattr(lm, 'model', type(lm).__name__)} returned no completion.")
    first = outputs[0]
    if isinstance(first, dict):
        first = first.get("text", first.get("content", ""))
    return str(first).strip()


def _text(value: Any) -> str:
    from ..adapters.values import format_value

    return format_value(value)


def _merge_into(target: Graph, other: Graph) -> None:
    """Add the nodes of ``other`` to ``target`` (in creation order); their edges were recorded when made."""
    for node in sorted(other.nodes, key=lambda n: n.id):
        target.add(node)


def _graph_for(values: list[Any], needs_grad: bool) -> Graph | None:
    """The graph a new call is recorded into (``None``: do not record)."""
    if not is_grad_enabled():
        return None
    active = current_graph()
    carried: list[Graph] = []
    for value in values:
        graph = graph_of(value)
        if graph is not None and all(graph is not g for g in carried):
            carried.append(graph)
    if active is not None:
        target = active
    elif carried:
        target = carried[0]
    elif needs_grad:
        target = Graph()
    else:
        return None
    for graph in carried:
        if graph is not target:
            _merge_into(target, graph)
    return target


def _system_params(system_prompt: str | Variable | None) -> tuple[str, list[Parameter]]:
    """The system prompt's text and the parameters that stand for it in a node.

    A frozen :class:`Instruction` copy lets the backward pass show the prompt as the step's
    instruction; a trainable system-prompt Variable is added too, so it receives that step's
    instruction feedback."""
    if system_prompt is None:
        return "", []
    text = _text(system_prompt)
    params: list[Parameter] = [Instruction(text, requires_grad=False, name="system_prompt")]
    if isinstance(system_prompt, Variable) and not isinstance(system_prompt, Instruction):
        params.append(system_prompt)
    elif isinstance(system_prompt, Instruction):
        params = [system_prompt]
    return text, params


def _record(name: str, module: Any, inputs: dict[str, Any], response: str, system_prompt: Any,
            params: list[Parameter], role_description: str, prompt: str) -> Variable:
    variables = [v for v in inputs.values() if isinstance(v, Variable)]
    trainable = [p for p in params if isinstance(p, Variable) and p.requires_grad]
    traced = any(sources_of(v) for v in inputs.values() if not isinstance(v, Variable))
    needs_grad = is_grad_enabled() and bool(trainable or traced or any(v.requires_grad for v in variables))
    extra = [system_prompt] if isinstance(system_prompt, Variable) else []
    graph = _graph_for([*variables, *extra], needs_grad)
    output = Variable(response, role_description=role_description, requires_grad=needs_grad)
    if graph is not None:
        used = [*params, *(v for v in variables if all(v is not p for p in params))]
        node = LMNode(name=name, module=module, inputs=dict(inputs), outputs={"response": output}, params=used,
                      prompt=prompt)
        trace(output, node)  # the output Variable's grad_fn
        graph.add(node)
        output.graph = graph  # type: ignore[attr-defined]
    return output


def llm_call(variable_or_text: Variable | str, system_prompt: str | Variable | None = None, lm: Any = None,
             role_description: str = "response from a language model", name: str | None = None,
             input_name: str = "input", **lm_kwargs: Any) -> Variable:
    """Send the text of ``variable_or_text`` to the LM (with an optional system prompt) and return
    the reply as a :class:`Variable` with ``role_description``.

    The call is recorded as a graph node (inputs ``{input_name: variable}``, output ``response``)
    when the input or a trainable system-prompt Variable requires grad, or a graph is active.
    Extra keyword arguments (``temperature``, ``max_tokens`` ...) go to the LM."""
    if not isinstance(variable_or_text, (Variable, str)):
        raise InputError(f"llm_call takes a Variable or a string, got {type(variable_or_text).__name__}.")
    lm = resolve_lm(lm)
    system_text, params = _system_params(system_prompt)
    user = _text(variable_or_text)
    response = lm_text(lm, system_text, user, **lm_kwargs)
    node_name = name or f"llm_call[{next(_call_ids)}]"
    return _record(node_name, None, {input_name: variable_or_text}, response, system_prompt, params,
                   role_description, prompt=user)


def fill_template(template: str, inputs: Mapping[str, Any]) -> str:
    """Replace each ``{name}`` of ``template`` with the text of ``inputs[name]``; other braces
    (code, JSON) are left as they are."""
    missing = [m for m in dict.fromkeys(_PLACEHOLDER.findall(template)) if m not in inputs]
    if missing:
        raise InputError(f"The template names {missing} but the inputs only have {list(inputs)}; "
                         "pass a value for each {placeholder}.")
    unused = [k for k in inputs if "{" + k + "}" not in template]
    if unused:
        raise InputError(f"Inputs {unused} do not appear in the template; add {{{unused[0]}}} to it or "
                         "drop them.")
    return _PLACEHOLDER.sub(lambda m: _text(inputs[m.group(1)]) if m.group(1) in inputs else m.group(0), template)


def formatted_llm_call(template: str, inputs: Mapping[str, Variable | str], system_prompt: str | Variable | None = None,
                       lm: Any = None, role_description: str = "response from a language model",
                       name: str | None = None, **lm_kwargs: Any) -> Variable:
    """Fill ``template``'s ``{name}`` placeholders with ``inputs`` (Variables or strings), send the
    text to the LM and return the reply as a :class:`Variable`.

    Each input is a separate edge of the recorded node, so the backward pass writes feedback per
    input name (``inputs={"question": q, "answer": a}`` → feedback for ``answer`` alone)."""
    if not isinstance(inputs, Mapping) or not inputs:
        raise InputError("formatted_llm_call needs inputs={name: Variable or str} matching the template.")
    for key, value in inputs.items():
        if not isinstance(value, (Variable, str)):
            raise InputError(f"Input {key!r} must be a Variable or a string, got {type(value).__name__}.")
    lm = resolve_lm(lm, "formatted_llm_call")
    user = fill_template(template, inputs)
    system_text, params = _system_params(system_prompt)
    response = lm_text(lm, system_text, user, **lm_kwargs)
    node_name = name or f"formatted_llm_call[{next(_call_ids)}]"
    return _record(node_name, None, dict(inputs), response, system_prompt, params, role_description, prompt=user)
