"""Learnable state of a program, as PyTorch parameters.

- :class:`Variable` — a piece of text (an answer, some code, a prompt) that can receive textual
  gradients and be rewritten by an optimizer.
- :class:`Instruction` — the instruction text of a predictor (a kind of Variable).
- :class:`Demos` — the few-shot examples of a predictor (a list of Examples).
- ``LoRA`` (in :mod:`textgrad_like.nn.lora`) — real tensors of a peft adapter.

A parameter's ``grad`` is a list of :class:`Gradient` items: feedback with the context it came from.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import StateDictError
from ..primitives import Example
from .saving import serialize_object


@dataclass
class Gradient:
    """One piece of textual feedback for a parameter, and where it came from."""

    feedback: str
    context: dict[str, Any] = field(default_factory=dict)
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"feedback": self.feedback, "context": self.context, "score": self.score}


class Parameter:
    """Base class: a value with ``requires_grad``, a ``grad`` and a ``name`` given by its module."""

    kind = "parameter"

    def __init__(self, value: Any = None, requires_grad: bool = True, name: str | None = None,
                 role_description: str = "") -> None:
        self._value = value
        self.requires_grad = requires_grad
        self.name = name
        self.role_description = role_description
        self.grad: list[Gradient] | None = None
        self._grad_lock = threading.Lock()

    @property
    def value(self) -> Any:
        return self._value

    @value.setter
    def value(self, new: Any) -> None:
        self._value = self.validate(new)

    def set_value(self, new: Any) -> None:
        self.value = new

    def validate(self, value: Any) -> Any:
        return value

    def accumulate(self, gradient: Gradient) -> None:
        """Add a gradient item (thread-safe); frozen parameters ignore it."""
        if not self.requires_grad:
            return
        with self._grad_lock:
            if self.grad is None:
                self.grad = []
            self.grad.append(gradient)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the gradient (``set_to_none=True``, torch's default) or keep an empty list of items."""
        self.grad = None if set_to_none else []

    def requires_grad_(self, requires_grad: bool = True) -> Parameter:
        self.requires_grad = requires_grad
        return self

    def assign_from_attribute(self, value: Any) -> None:
        """Called for ``module.<this parameter's name> = value`` when ``value`` is not a Parameter.

        A parameter attribute is not silently rewritten by a plain value (as in torch, where
        ``module.weight = tensor`` raises): set ``param.value = ...`` to change what it holds, or
        assign a new Parameter to replace it. :class:`Demos` accepts a list (DSPy's ``predictor.demos = [...]``).
        """
        raise TypeError(f"Cannot assign a {type(value).__name__} to the {type(self).__name__} parameter "
                        f"{self.name or ''!s}; set its .value (e.g. module.instruction.value = ...) to change the "
                        f"text it holds, or assign a new {type(self).__name__}(...) to replace the parameter.")

    def state(self) -> Any:
        """A snapshot of the value (what ``state_dict`` stores); JSON-serialisable for text parameters."""
        return self._value

    def parse_state(self, state: Any) -> Any:
        """Check ``state`` and turn it into the value :meth:`apply_state` installs, changing nothing.

        Raises:
            StateDictError: ``state`` does not fit this parameter.
        """
        return self.validate(state)

    def apply_state(self, prepared: Any) -> None:
        """Install a value returned by :meth:`parse_state` (does not fail)."""
        self._value = prepared

    def load_state(self, state: Any) -> None:
        self.apply_state(self.parse_state(state))

    def write_saved_state(self, state: Any, folder: str, stem: str, name: str) -> Any:
        """What ``Module.save`` writes for this parameter's ``state`` (a LoRA writes its weights file
        into ``folder`` and returns a reference to it)."""
        return state

    def read_saved_state(self, saved: Any, folder: str) -> Any:
        """The inverse of :meth:`write_saved_state` (a LoRA reads its weights file from ``folder``)."""
        return saved

    def __getstate__(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data.pop("_grad_lock", None)
        return data

    def __setstate__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(data)
        self._grad_lock = threading.Lock()

    def __repr__(self) -> str:
        text = repr(self._value)
        if len(text) > 80:
            text = text[:77] + "..."
        flag = "" if self.requires_grad else ", requires_grad=False"
        return f"{type(self).__name__}({text}{flag})"


class Variable(Parameter):
    """Free text that can be optimized, as a tensor is in torch: ``Variable("draft answer",
    role_description="answer to the question")``. Pass it to any module or LM call as input."""

    kind = "variable"

    def __init__(self, value: str = "", role_description: str = "", requires_grad: bool = True,
                 name: str | None = None) -> None:
        super().__init__(self.validate(value), requires_grad=requires_grad, name=name,
                         role_description=role_description or "a piece of text")

    def validate(self, value: Any) -> str:
        if not isinstance(value, str):
            raise StateDictError(f"{type(self).__name__} holds text; got {type(value).__name__}.")
        return value

    def __str__(self) -> str:
        return self._value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Variable):
            return self is other
        return False

    __hash__ = object.__hash__


class Instruction(Variable):
    """The instruction text of a predictor."""

    kind = "instruction"

    def __init__(self, value: str = "", requires_grad: bool = True, name: str | None = None,
                 role_description: str = "instructions that tell the LM how to do its task") -> None:
        super().__init__(value, role_description=role_description, requires_grad=requires_grad, name=name)


class Demos(Parameter):
    """The few-shot examples of a predictor; behaves like a list of :class:`Example`."""

    kind = "demos"

    def __init__(self, value: list[Any] | None = None, requires_grad: bool = True, name: str | None = None) -> None:
        super().__init__(self.validate(value or []), requires_grad=requires_grad, name=name,
                         role_description="few-shot demonstrations")

    def validate(self, value: Any) -> list[Example]:
        if isinstance(value, Demos):
            value = value.value
        if not isinstance(value, (list, tuple)):
            raise StateDictError(f"Demos must be a list of Examples or dicts, got {type(value).__name__}.")
        out = []
        for item in value:
            if isinstance(item, Example):
                out.append(item)
            elif isinstance(item, dict):
                out.append(Example(**item))
            else:
                raise StateDictError(f"Each demo must be an Example or a dict, got {type(item).__name__}.")
        return out

    def state(self) -> list[dict[str, Any]]:
        """The demos as JSON values (pydantic values as their JSON dump, as DSPy saves them)."""
        return [Example(**serialize_object(dict(demo.items(include_dspy=True)))).toDict() for demo in self._value]

    # list protocol -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._value)

    def __iter__(self) -> Iterator[Example]:
        return iter(self._value)

    def __getitem__(self, index: Any) -> Any:
        return self._value[index]

    def __bool__(self) -> bool:
        return bool(self._value)

    # A parameter is compared and hashed by identity, as a torch parameter is (so optimizers can key state
    # by it). Compared with a plain list it compares the examples, so DSPy's ``predictor.demos == []``
    # works; lists are unhashable, so this never breaks the hash contract. Compare the demos of two
    # programs with ``a.demos.value == b.demos.value``.
    def __eq__(self, other: object) -> bool:
        if isinstance(other, Demos):
            return self is other
        if isinstance(other, (list, tuple)):
            return self._value == list(other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = object.__hash__

    def assign_from_attribute(self, value: Any) -> None:
        """``predictor.demos = [...]`` (DSPy's idiom) copies the examples into this parameter."""
        if not isinstance(value, (list, tuple)):
            super().assign_from_attribute(value)
        self.value = value

    def append(self, demo: Any) -> None:
        self._value = [*self._value, *self.validate([demo])]

    def extend(self, demos: list[Any]) -> None:
        self._value = [*self._value, *self.validate(list(demos))]

    def copy(self) -> list[Example]:
        return list(self._value)
