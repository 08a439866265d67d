"""``TextualGradientDescent``: rewrite each text parameter from its textual gradient.

``step()`` asks an LM, once per text parameter with a gradient, for an improved value given the
current value, its role, the feedback items (with the context they came from), the user's
constraints and — with ``momentum=k`` — the last ``k`` values with the scores they earned. A
proposal that cannot be parsed or is empty leaves the value unchanged and is logged with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import AdapterParseError, LMError
from ..nn.graph import no_grad
from ..nn.parameter import Variable
from ..settings import settings
from .optimizer import Optimizer

logger = logging.getLogger(__name__)

_STEP_INSTRUCTIONS = (
    "Improve a piece of text that is a trainable part of a program. You get its role, its current value, "
    "feedback collected from the program's runs, constraints that the new value must respect, and earlier "
    "values with the scores they reached. Write a new value that addresses the feedback, keeps what works, "
    "and respects every constraint. Reply with the complete new value only."
)


def _step_predictor() -> Any:
    from ..predict import Predict
    from ..signatures import InputField, OutputField, make_signature

    sig = make_signature({
        "role": (str, InputField(desc="what this text is for")),
        "current_value": (str, InputField()),
        "feedback": (str, InputField(desc="feedback items from the backward pass")),
        "constraints": (str, InputField(desc="rules the new value must follow")),
        "past_values": (str, InputField(desc="earlier values and their scores, oldest first")),
        "improved_value": (str, OutputField(desc="the complete new text")),
    }, _STEP_INSTRUCTIONS, signature_name="TextualStep")
    return Predict(sig)


class TextualGradientDescent(Optimizer):
    """``opt = TextualGradientDescent(program.parameters(), lm=lm, constraints=[...], momentum=2)``."""

    def __init__(self, params: Iterable[Any], lm: Any = None, constraints: list[str] | None = None,
                 momentum: int = 0, max_feedback_items: int = 8, verbose: bool = False) -> None:
        super().__init__(params, {"constraints": list(constraints or []), "momentum": int(momentum),
                                  "max_feedback_items": int(max_feedback_items)})
        self.lm = lm
        self.verbose = verbose
        self._predictor = _step_predictor()

    def _past(self, param: Variable) -> list[dict[str, Any]]:
        return self.state.setdefault(id(param), {}).setdefault("history", [])

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = closure() if closure is not None else None
        lm = self.lm or settings.get("backward_lm") or settings.get("lm")
        for group in self.param_groups:
            for param in group["params"]:
                if not isinstance(param, Variable) or not param.requires_grad or not param.grad:
                    continue
                self._update(param, group, lm)
        return loss

    def _update(self, param: Variable, group: dict[str, Any], lm: Any) -> None:
        grads = param.grad or []
        scores = [g.score for g in grads if g.score is not None]
        mean_score = sum(scores) / len(scores) if scores else None
        history = self._past(param)
        history.append({"value": param.value, "score": mean_score})
        window = history[-(group["momentum"] + 1):-1] if group["momentum"] > 0 else []
        items = grads[: group["max_feedback_items"]]
        feedback = "\n\n".join(
            f"[{i + 1}] {g.feedback}" + (f"\n(context: step {g.context.get('node')}; outputs: "
                                        f"{str(g.context.get('outputs', ''))[:300]})" if g.context else "")
            for i, g in enumerate(items))
        past = "\n".join(f"- score {h['score']}: {h['value']}" for h in window) or "(none)"
        constraints = "\n".join(f"- {c}" for c in group["constraints"]) or "(none)"
        try:
            with no_grad():
                out = self._predictor(role=param.role_description, current_value=param.value, feedback=feedback,
                                      constraints=constraints, past_values=past, lm=lm)
            proposal = str(out.improved_value).strip()
        except (AdapterParseError, LMError) as exc:
            logger.warning("TGD: no usable proposal for %s (%s); value unchanged.", param.name, exc)
            self.state[id(param)]["last_error"] = str(exc)[:500]
            return
        if not proposal:
            logger.warning("TGD: the proposal for %s was empty; value unchanged.", param.name)
            self.state[id(param)]["last_error"] = "empty proposal"
            return
        if self.verbose:
            logger.info("TGD: %s -> %r", param.name, proposal[:200])
        param.value = proposal
        self.state[id(param)]["last_error"] = None
        self.state[id(param)]["steps"] = self.state[id(param)].get("steps", 0) + 1


TGD = TextualGradientDescent
