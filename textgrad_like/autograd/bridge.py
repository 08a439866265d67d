"""Python steps inside the graph: ``@autograd.function`` and ``autograd.Function``.

A value made by plain Python code (an f-string, a retriever call, a parser) has no provenance, so
feedback cannot flow through it to the predictor that produced its inputs. Bridge such a step::

    @autograd.function
    def search(query: str) -> list[str]:
        return retriever(query).passages          # outputs derive from the traced `query`

    context = search(self.generate_query(question=q).query)
    answer = self.answer(context=context, question=q)   # feedback on `context` reaches generate_query

For a custom textual backward, subclass :class:`Function` (as ``torch.autograd.Function``)::

    class Shorten(autograd.Function):
        @staticmethod
        def forward(ctx, text):
            ctx.save_for_backward(text)
            return text[:200]

        @staticmethod
        def backward(ctx, feedback):
            return {"text": f"Only the first 200 characters were used. {feedback}"}

    short = Shorten.apply(pred.answer)

``backward(ctx, feedback)`` gets the feedback on the output (one text) and returns a ``str`` (for
every traced input), a ``dict`` {input name: feedback}, a tuple aligned with the positional
inputs, or ``None`` (nothing flows back). Under ``no_grad()`` or with no traced input nothing is
recorded and the plain result is returned.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

from ..nn.graph import FunctionNode, current_graph, is_grad_enabled
from ..nn.parameter import Parameter, Variable
from ..nn.traced import sources_of, trace
from ..primitives import Example

logger = logging.getLogger(__name__)

__all__ = ["function", "Function", "FunctionCtx"]


def _named_inputs(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return {**{f"arg{i}": a for i, a in enumerate(args)}, **kwargs}
    named: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind == inspect.Parameter.VAR_POSITIONAL:
            named.update({f"{name}[{i}]": v for i, v in enumerate(value)})
        elif kind == inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        else:
            named[name] = value
    return named


def _is_traced(value: Any) -> bool:
    return bool(sources_of(value)) or (isinstance(value, Variable) and value.requires_grad)


def _trace_output(result: Any, node: FunctionNode) -> Any:
    if isinstance(result, Parameter):
        return result  # a parameter stays a leaf; return a new Variable to trace it
    if isinstance(result, Example):
        for key, value in list(result.items()):
            result[key] = trace(value, node)
        return result
    if isinstance(result, tuple):
        return tuple(trace(v, node) for v in result)
    traced = trace(result, node)
    if not sources_of(traced):
        logger.debug("%s returned a %s, which cannot carry provenance; it stays a leaf.", node.name,
                     type(result).__name__)
    return traced


def _record(name: str, inputs: dict[str, Any], result: Any, backward_fn: Any = None, ctx: Any = None) -> Any:
    if not is_grad_enabled() or not any(_is_traced(v) for v in inputs.values()):
        return result
    node = FunctionNode(name=name, module=None, inputs=inputs, outputs={}, backward_fn=backward_fn, ctx=ctx)
    out = _trace_output(result, node)
    node.outputs = dict(out.items()) if isinstance(out, Example) else {"output": out}
    graph = current_graph()
    if graph is not None:
        graph.add(node)
    return out


def function(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Decorate a Python step so its outputs derive from its traced inputs (strings, lists, dicts,
    Predictions, Variables); in the backward pass the feedback on its outputs passes through to
    those inputs unchanged. Works on any callable, modules and retrievers included:
    ``search = autograd.function(dspy.Retrieve(k=3))``."""
    if fn is None:
        return functools.partial(function, name=name)
    label = name or getattr(fn, "__qualname__", None) or type(fn).__name__

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        return _record(label, _named_inputs(fn, args, kwargs), result)

    return wrapper


class FunctionCtx:
    """What ``Function.forward`` and ``Function.backward`` share: the inputs, the output, saved values."""

    def __init__(self, inputs: dict[str, Any]) -> None:
        self.inputs = inputs
        self.output: Any = None
        self.saved_values: tuple[Any, ...] = ()

    def save_for_backward(self, *values: Any) -> None:
        self.saved_values = values


class Function:
    """A Python step with its own textual backward, as ``torch.autograd.Function``: subclass it, write
    ``forward(ctx, *inputs)`` and ``backward(ctx, feedback)`` as staticmethods, call ``apply``."""

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("Subclasses of autograd.Function define forward(ctx, ...).")

    @staticmethod
    def backward(ctx: FunctionCtx, feedback: str) -> Any:
        """Feedback for the inputs (see the module docstring); by default passed through unchanged."""
        return feedback

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        inputs = _named_inputs(lambda *a, **k: None, args, kwargs)
        try:
            params = list(inspect.signature(cls.forward).parameters.values())[1:]
            bound = inspect.Signature(params).bind(*args, **kwargs)
            inputs = dict(bound.arguments)
        except (TypeError, ValueError):
            pass
        names = list(inputs)
        ctx = FunctionCtx(inputs)
        result = cls.forward(ctx, *args, **kwargs)
        ctx.output = result

        def backward_fn(context: FunctionCtx, feedback: str) -> Any:
            out = cls.backward(context, feedback)
            if isinstance(out, (tuple, list)):
                return {n: f for n, f in zip(names, out, strict=False) if f}
            return out

        return _record(cls.__name__, inputs, result, backward_fn, ctx)
