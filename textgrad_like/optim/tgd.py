"""``TextualGradientDescent``: rewrite each text parameter from its textual gradient.

``step()`` asks an LM, once per text parameter with a gradient, for an improved value given the
current value, its role, the feedback items (with the context they came from), the user's
constraints and — with ``momentum=k`` — the last ``k`` values with the scores they earned. A
proposal that cannot be parsed or is empty leaves the value unchanged and is logged with the reason.

**Reduction** (how the N gradient items of a parameter reach the step prompt) is explicit:

- ``reduce="all"`` (default): every item, in the order ``backward()`` wrote them (example, then node);
- ``reduce="summarize"``: one LM call (:class:`~textgrad_like.prompts.SummarizeFeedback`) merges the
  N items into one, as TextGrad's aggregated gradient;
- ``reduce="lowest"``: the ``max_feedback_items`` items from the lowest-scoring runs (ties keep the
  earlier item), so the step looks at the failures.

The reduction is logged and recorded in ``opt.state[param]["last_reduction"]``. LoRA parameters in
the list are left to a torch optimizer (``torch.optim.AdamW(program.parameters(kind="lora"))``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import AdapterParseError, LMError
from ..nn.graph import no_grad
from ..nn.parameter import Gradient, Variable
from ..prompts import SummarizeFeedback, TextualStep, check_override
from ..settings import settings
from .optimizer import Optimizer

logger = logging.getLogger(__name__)

REDUCTIONS = ("all", "summarize", "lowest")


def _format_items(grads: list[Gradient], with_context: bool = True) -> str:
    parts = []
    for i, g in enumerate(grads):
        head = f"[{i + 1}]" + (f" (score {g.score:.2f})" if g.score is not None else "")
        text = f"{head} {g.feedback}"
        if with_context and g.context:
            text += (f"\n(context: step {g.context.get('node')}; outputs: "
                     f"{str(g.context.get('outputs', ''))[:300]})")
        parts.append(text)
    return "\n\n".join(parts)


class TextualGradientDescent(Optimizer):
    """``opt = TextualGradientDescent(program.parameters(), lm=lm, constraints=[...], momentum=2)``.

    Args:
        params: parameters or param groups (text parameters are stepped; LoRA ones are skipped).
        lm: the LM that writes new values (default: ``backward_lm``, then ``lm`` of the settings).
        constraints: one rule or a list of rules every new value must follow.
        momentum: how many earlier values (with their scores) the step prompt shows (``>= 0``).
        reduce: ``"all"``, ``"summarize"`` or ``"lowest"`` (see the module docstring).
        max_feedback_items: with ``reduce="lowest"``, how many items to keep (``>= 1``; default 8).
        step_signature: a subclass of :class:`~textgrad_like.prompts.TextualStep` to change the step prompt.
        summarize_signature: a subclass of :class:`~textgrad_like.prompts.SummarizeFeedback`.
        verbose: log every new value.
    """

    skip_kinds = ("lora",)

    def __init__(self, params: Iterable[Any], lm: Any = None, constraints: str | list[str] | None = None,
                 momentum: int = 0, reduce: str = "all", max_feedback_items: int | None = None,
                 step_signature: Any = None, summarize_signature: Any = None, verbose: bool = False) -> None:
        if isinstance(lm, str):
            raise ValueError(f"lm must be an LM object, not the string {lm!r}; use LM({lm!r}).")
        super().__init__(params, {"constraints": constraints, "momentum": momentum, "reduce": reduce,
                                  "max_feedback_items": max_feedback_items})
        self.lm = lm
        self.verbose = bool(verbose)
        self.step_signature = check_override(step_signature, TextualStep, "step_signature")
        self.summarize_signature = check_override(summarize_signature, SummarizeFeedback, "summarize_signature")
        from ..predict import Predict

        self._predictor = Predict(self.step_signature)
        self._summarizer = Predict(self.summarize_signature)

    def validate_group(self, group: dict[str, Any]) -> None:
        constraints = group.get("constraints")
        if constraints is None:
            constraints = []
        elif isinstance(constraints, str):
            constraints = [constraints]
        elif isinstance(constraints, (list, tuple)) and all(isinstance(c, str) for c in constraints):
            constraints = list(constraints)
        else:
            raise ValueError(f"constraints must be a string or a list of strings, got {constraints!r}.")
        group["constraints"] = [c for c in constraints if c.strip()]
        momentum = group.get("momentum")
        if isinstance(momentum, bool) or not isinstance(momentum, int) or momentum < 0:
            raise ValueError(f"momentum must be an integer >= 0 (the number of past values shown), got {momentum!r}.")
        reduce = group.get("reduce")
        if reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {list(REDUCTIONS)}, got {reduce!r}.")
        k = group.get("max_feedback_items")
        if k is not None:
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ValueError(f"max_feedback_items must be an integer >= 1, got {k!r}.")
            if reduce != "lowest":
                raise ValueError(f"max_feedback_items={k} only applies to reduce='lowest' (keep the K lowest-scoring "
                                 f"items); with reduce={reduce!r} every item is used. Pass reduce='lowest' to cut.")
        elif reduce == "lowest":
            group["max_feedback_items"] = 8

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = closure() if closure is not None else None
        lm = self.lm or settings.get("backward_lm") or settings.get("lm")
        for group in self.param_groups:
            for param in group["params"]:
                if not isinstance(param, Variable) or not param.requires_grad or not param.grad:
                    continue
                self._update(param, group, lm)
        return loss

    def reduce_feedback(self, param: Variable, group: dict[str, Any], lm: Any) -> str:
        """The feedback text the step prompt shows for ``param``, after the group's reduction."""
        grads = list(param.grad or [])
        reduce = group["reduce"]
        state = self.state[param]
        if reduce == "lowest" and len(grads) > group["max_feedback_items"]:
            ranked = sorted(range(len(grads)),
                            key=lambda i: (grads[i].score if grads[i].score is not None else float("inf"), i))
            kept = sorted(ranked[: group["max_feedback_items"]])
            state["last_reduction"] = {"reduce": reduce, "received": len(grads), "kept": kept}
            logger.info("TGD: %s received %d feedback items; reduce='lowest' keeps the %d lowest-scoring: %s",
                        param.name, len(grads), len(kept), kept)
            return _format_items([grads[i] for i in kept])
        if reduce == "summarize" and len(grads) > 1:
            try:
                with no_grad():
                    out = self._summarizer(role=param.role_description, feedback_items=_format_items(grads), lm=lm)
                summary = str(out.summary).strip()
            except (AdapterParseError, LMError) as exc:
                summary = ""
                logger.warning("TGD: summarizing the feedback of %s failed (%s); using all %d items.", param.name,
                               exc, len(grads))
            if summary:
                state["last_reduction"] = {"reduce": reduce, "received": len(grads), "kept": "summary"}
                logger.info("TGD: %s received %d feedback items; reduce='summarize' merged them in one LM call.",
                            param.name, len(grads))
                return summary
        state["last_reduction"] = {"reduce": "all", "received": len(grads), "kept": list(range(len(grads)))}
        return _format_items(grads)

    def _update(self, param: Variable, group: dict[str, Any], lm: Any) -> None:
        grads = param.grad or []
        scores = [g.score for g in grads if g.score is not None]
        mean_score = sum(scores) / len(scores) if scores else None
        state = self.state[param]
        history = state.setdefault("history", [])
        history.append({"value": param.value, "score": mean_score})
        window = history[-(group["momentum"] + 1):-1] if group["momentum"] > 0 else []
        feedback = self.reduce_feedback(param, group, lm)
        past = "\n".join(f"- score {h['score']}: {h['value']}" for h in window) or "(none)"
        constraints = "\n".join(f"- {c}" for c in group["constraints"]) or "(none)"
        try:
            with no_grad():
                out = self._predictor(role=param.role_description, current_value=param.value, feedback=feedback,
                                      constraints=constraints, past_values=past, lm=lm)
            proposal = str(out.improved_value).strip()
        except (AdapterParseError, LMError) as exc:
            logger.warning("TGD: no usable proposal for %s (%s); value unchanged.", param.name, exc)
            state["last_error"] = str(exc)[:500]
            return
        if not proposal:
            logger.warning("TGD: the proposal for %s was empty; value unchanged.", param.name)
            state["last_error"] = "empty proposal"
            return
        if proposal.strip("{}[]<>#`\"' ") in self.step_signature.output_fields:
            # a small model echoed the reply template ("{{improved_value}}") instead of writing a value
            logger.warning("TGD: the proposal for %s only echoes the field name %r; value unchanged.", param.name,
                           proposal)
            state["last_error"] = "the proposal echoed the template"
            return
        if self.verbose:
            logger.info("TGD: %s -> %r", param.name, proposal[:200])
        param.value = proposal
        state["last_error"] = None
        state["steps"] = state.get("steps", 0) + 1


TGD = TextualGradientDescent
