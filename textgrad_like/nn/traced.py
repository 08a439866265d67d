"""Provenance of values: which recorded node made a value, as a torch tensor carries its ``grad_fn``.

In training mode a predictor returns its outputs as *traced* values that hold the node that made
them (``value.grad_fn``). They behave exactly as the plain values they wrap:

=====================  =============================================================================
output type            how the node is carried
=====================  =============================================================================
``str``                :class:`TracedStr` (a ``str`` subclass); ``strip()``, ``lower()``, slicing,
                       ``+``, ``split()`` ... keep the provenance
``int`` / ``float``    :class:`TracedInt` / :class:`TracedFloat`
``list`` / ``dict``    :class:`TracedList` / :class:`TracedDict`; their items are traced too
pydantic models        a side table keyed by the object (held by a weak reference, checked by
                       identity), so equality and ``model_dump`` are unchanged
``Variable``           its ``grad_fn`` attribute (``llm_call`` outputs)
``bool``, ``None``,    **not traced**: Python cannot subclass ``bool`` and these are shared
enum members           singletons, so a value cannot say where it came from. Pass the
                       predictor's Prediction on, or compute downstream inputs inside an
                       ``@autograd.function``.
=====================  =============================================================================

Copies keep the value and drop nothing for immutable types (``copy.deepcopy`` returns the same
object); traced lists and dicts deep-copy to plain ones, and pickling always gives plain values.
Pydantic validation turns traced strings back into plain ones.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import Any

from .graph import FunctionNode, Node, is_grad_enabled

__all__ = ["TracedStr", "TracedInt", "TracedFloat", "TracedList", "TracedDict", "trace", "grad_fn", "sources_of",
           "detach", "derive"]

_side: dict[int, tuple[weakref.ref[Any], Node]] = {}
_side_lock = threading.Lock()


class _Traced:
    grad_fn: Node | None = None

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None


def _plain(value: Any) -> Any:
    for base in (str, int, float, list, dict):
        if isinstance(value, base) and isinstance(value, _Traced):
            return base(value)
    return value


class TracedStr(_Traced, str):
    """A ``str`` that remembers the node that made it (``grad_fn``)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> TracedStr:
        return self

    def __reduce__(self) -> Any:
        return (str, (str(self),))

    def __add__(self, other: Any) -> Any:
        return derive(str.__add__(self, other), self, other)

    def __radd__(self, other: Any) -> Any:
        if not isinstance(other, str):
            return NotImplemented
        return derive(str.__add__(other, self), other, self)

    def __getitem__(self, key: Any) -> Any:
        return derive(str.__getitem__(self, key), self)

    def __mod__(self, other: Any) -> Any:
        return derive(str.__mod__(self, other), self, *(other if isinstance(other, tuple) else (other,)))

    def format(self, *args: Any, **kwargs: Any) -> Any:
        return derive(str.format(self, *args, **kwargs), self, *args, *kwargs.values())

    def split(self, *args: Any, **kwargs: Any) -> Any:
        return [derive(part, self) for part in str.split(self, *args, **kwargs)]

    def rsplit(self, *args: Any, **kwargs: Any) -> Any:
        return [derive(part, self) for part in str.rsplit(self, *args, **kwargs)]

    def splitlines(self, *args: Any, **kwargs: Any) -> Any:
        return [derive(part, self) for part in str.splitlines(self, *args, **kwargs)]

    def partition(self, sep: str) -> Any:
        return tuple(derive(part, self) for part in str.partition(self, sep))

    def join(self, iterable: Iterable[Any]) -> Any:
        items = list(iterable)
        return derive(str.join(self, items), self, *items)


def _keep(name: str) -> None:
    method = getattr(str, name)

    def wrapper(self: TracedStr, *args: Any, **kwargs: Any) -> Any:
        return derive(method(self, *args, **kwargs), self)

    wrapper.__name__ = name
    wrapper.__doc__ = method.__doc__
    setattr(TracedStr, name, wrapper)


for _name in ("strip", "lstrip", "rstrip", "lower", "upper", "capitalize", "casefold", "title", "swapcase",
              "replace", "removeprefix", "removesuffix", "center", "ljust", "rjust", "zfill", "expandtabs"):
    _keep(_name)


class TracedInt(_Traced, int):
    """An ``int`` that remembers the node that made it."""

    def __deepcopy__(self, memo: dict[int, Any]) -> TracedInt:
        return self

    def __reduce__(self) -> Any:
        return (int, (int(self),))


class TracedFloat(_Traced, float):
    """A ``float`` that remembers the node that made it."""

    def __deepcopy__(self, memo: dict[int, Any]) -> TracedFloat:
        return self

    def __reduce__(self) -> Any:
        return (float, (float(self),))


class TracedList(_Traced, list):  # type: ignore[type-arg]
    """A ``list`` that remembers the node that made it (its items are traced too)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        import copy

        return [copy.deepcopy(_plain(v), memo) for v in self]

    def __reduce__(self) -> Any:
        return (list, (list(self),))


class TracedDict(_Traced, dict):  # type: ignore[type-arg]
    """A ``dict`` that remembers the node that made it (its values are traced too)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[Any, Any]:
        import copy

        return {k: copy.deepcopy(_plain(v), memo) for k, v in self.items()}

    def __reduce__(self) -> Any:
        return (dict, (dict(self),))


_WRAP: list[tuple[type, type]] = [(str, TracedStr), (int, TracedInt), (float, TracedFloat)]


def _make(cls: type, value: Any, node: Node) -> Any:
    out = cls(value)
    out.grad_fn = node
    return out


def trace(value: Any, node: Node) -> Any:
    """``value`` carrying ``node`` as its provenance (see the module docstring for what can carry it)."""
    from .parameter import Parameter, Variable

    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Variable):
        value.grad_fn = node  # type: ignore[attr-defined]
        return value
    if isinstance(value, Parameter):
        return value
    for base, cls in _WRAP:
        if isinstance(value, base) and (type(value) is base or isinstance(value, _Traced)):
            return _make(cls, value, node)
    if isinstance(value, list) and (type(value) is list or isinstance(value, TracedList)):
        return _make(TracedList, [trace(v, node) for v in value], node)
    if isinstance(value, dict) and (type(value) is dict or isinstance(value, TracedDict)):
        return _make(TracedDict, {k: trace(v, node) for k, v in value.items()}, node)
    if _is_model(value):
        _remember(value, node)
    return value


def _is_model(value: Any) -> bool:
    try:
        import pydantic
    except ImportError:  # pragma: no cover - pydantic is a dependency
        return False
    return isinstance(value, pydantic.BaseModel)


def _remember(value: Any, node: Node) -> None:
    key = id(value)

    def forget(_: Any, key: int = key) -> None:
        with _side_lock:
            entry = _side.get(key)
            if entry is not None and entry[0]() is None:
                _side.pop(key, None)

    try:
        ref = weakref.ref(value, forget)
    except TypeError:  # a model class with __slots__ and no __weakref__: cannot carry provenance
        return
    with _side_lock:
        _side[key] = (ref, node)


def grad_fn(value: Any) -> Node | None:
    """The node that made ``value`` (``None`` for a leaf: user data, or a value made under ``no_grad``)."""
    if isinstance(value, _Traced):
        return value.grad_fn
    node = getattr(value, "grad_fn", None) if hasattr(value, "role_description") else None
    if isinstance(node, Node):
        return node
    if _is_model(value):
        with _side_lock:
            entry = _side.get(id(value))
        if entry is not None and entry[0]() is value:
            return entry[1]
    return None


def sources_of(value: Any) -> list[Node]:
    """The nodes ``value`` was made from: its own ``grad_fn``, else those of the items of a list, tuple,
    dict or Example it is (in order, each once)."""
    found: list[Node] = []

    def visit(v: Any, depth: int) -> None:
        node = grad_fn(v)
        if node is not None:
            if node not in found:
                found.append(node)
            return
        if depth > 8 or isinstance(v, (str, bytes)):
            return
        if isinstance(v, (list, tuple, set, frozenset)):
            for item in v:
                visit(item, depth + 1)
        elif isinstance(v, dict):
            for item in v.values():
                visit(item, depth + 1)
        elif hasattr(v, "_store") and hasattr(v, "with_inputs"):  # an Example / Prediction
            for item in v._store.values():
                visit(item, depth + 1)

    visit(value, 0)
    return found


def detach(value: Any) -> Any:
    """A plain copy of ``value`` with no provenance (as ``tensor.detach()``); containers recursively."""
    if isinstance(value, TracedList) or type(value) is list:
        return [detach(v) for v in value]
    if isinstance(value, TracedDict) or type(value) is dict:
        return {k: detach(v) for k, v in value.items()}
    return _plain(value)


def derive(result: Any, *operands: Any) -> Any:
    """``result`` computed from ``operands``: traced by their node when they come from one node, by a
    pass-through :class:`FunctionNode` over them when they come from several, plain when from none
    (or under ``no_grad``)."""
    if not is_grad_enabled():
        return result
    nodes: list[Node] = []
    for operand in operands:
        for node in sources_of(operand):
            if node not in nodes:
                nodes.append(node)
    if not nodes:
        return result
    if len(nodes) == 1:
        return trace(result, nodes[0])
    inputs = {f"arg{i}": op for i, op in enumerate(operands) if sources_of(op)}
    node = FunctionNode(name="derived text", module=None, inputs=inputs, outputs={})
    out = trace(result, node)
    node.outputs = {"output": out}
    return out
