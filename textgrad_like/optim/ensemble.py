"""``Ensemble``: one program that runs several programs and reduces their outputs."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from typing import Any

from ..errors import OptimizerError
from ..nn.module import Module
from .teleprompter import Teleprompter


def _input_seed(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    blob = json.dumps({"args": list(args), "kwargs": kwargs}, sort_keys=True, default=str)
    return int(hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16], 16)


class EnsembledProgram(Module):
    """Runs ``programs`` (or ``size`` of them, sampled per call) and applies ``reduce_fn`` to the outputs;
    without ``reduce_fn`` it returns the list of outputs. With ``deterministic=True`` the sample
    depends only on the call's inputs, so the same inputs always use the same programs."""

    def __init__(self, programs: list[Any], reduce_fn: Callable[[list[Any]], Any] | None = None,
                 size: int | None = None, deterministic: bool = False) -> None:
        super().__init__()
        self.programs = list(programs)
        self._reduce_fn = reduce_fn
        self._size = size
        self._deterministic = deterministic

    def _chosen(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        if not self._size or self._size >= len(self.programs):
            return list(self.programs)
        rng = random.Random(_input_seed(args, kwargs)) if self._deterministic else random
        return rng.sample(self.programs, self._size)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        outputs = [program(*args, **kwargs) for program in self._chosen(args, kwargs)]
        return self._reduce_fn(outputs) if self._reduce_fn else outputs


class Ensemble(Teleprompter):
    """``Ensemble(reduce_fn=None, size=None, deterministic=False).compile(programs)``."""

    def __init__(self, *, reduce_fn: Callable[[list[Any]], Any] | None = None, size: int | None = None,
                 deterministic: bool = False) -> None:
        super().__init__()
        if size is not None and size < 1:
            raise OptimizerError(f"Ensemble(size=...) must be >= 1 or None, got {size}.")
        self.reduce_fn = reduce_fn
        self.size = size
        self.deterministic = deterministic

    def compile(self, programs: list[Any], **kwargs: Any) -> EnsembledProgram:  # type: ignore[override]
        if kwargs:
            raise OptimizerError(f"Ensemble.compile takes only the list of programs; got {sorted(kwargs)}.")
        programs = list(programs)
        if not programs:
            raise OptimizerError("Ensemble.compile needs at least one program.")
        self.search_state = {"num_programs": len(programs), "size": self.size, "deterministic": self.deterministic}
        return EnsembledProgram(programs, self.reduce_fn, self.size, self.deterministic)
