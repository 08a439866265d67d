"""``Teleprompter``: base of the search optimizers, with DSPy's ``compile`` interface."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, TypeVar

from ..primitives import RunHistory

if TYPE_CHECKING:
    from ..nn import Module

#: the program type ``compile`` takes and returns (an optimized copy of the student)
ModuleT = TypeVar("ModuleT", bound="Module")


class Teleprompter:
    """``optimized = optimizer.compile(student, trainset=..., valset=...)``.

    Subclasses keep their search state (candidates, scores, trials) in ``self.search_state`` — a
    JSON-able dict — which :meth:`state_dict` exposes, and record progress in ``self.history``.
    """

    def __init__(self) -> None:
        self.search_state: dict[str, Any] = {}
        self.history = RunHistory()

    def compile(self, student: ModuleT, *, trainset: list[Any], teacher: Any = None,
                valset: list[Any] | None = None, **kwargs: Any) -> ModuleT:
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_") and k not in ("search_state", "history")}

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.search_state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.search_state = copy.deepcopy(dict(state))
