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

**Best of several rewrites** (opt-in, ``num_candidates=k``): ``step(closure)`` samples ``k`` rewrites
of each parameter (the first at the LM's own temperature, the others at ``candidate_temperature``),
scores the current value and every distinct rewrite with ``closure()`` — which re-runs the program on
the batch and returns its loss, as torch's closures do — and keeps the value with the best batch
score, the current one on ties. A weak rewriter can then no longer make a step worse on the batch.
The candidates and their scores are in ``opt.state[param]["last_candidates"]``.
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
        num_candidates: rewrites sampled per parameter and step; above 1, ``step(closure)`` keeps the one with
            the best batch score (the current value included), so ``closure`` is required.
        candidate_temperature: sampling temperature of the extra rewrites (``> 0``).
        step_signature: a subclass of :class:`~textgrad_like.prompts.TextualStep` to change the step prompt.
        summarize_signature: a subclass of :class:`~textgrad_like.prompts.SummarizeFeedback`.
        verbose: log every new value.
    """

    skip_kinds = ("lora",)

    def __init__(self, params: Iterable[Any], lm: Any = None, constraints: str | list[str] | None = None,
                 momentum: int = 0, reduce: str = "all", max_feedback_items: int | None = None,
                 num_candidates: int = 1, candidate_temperature: float = 0.9,
                 step_signature: Any = None, summarize_signature: Any = None, verbose: bool = False) -> None:
        if isinstance(lm, str):
            raise ValueError(f"lm must be an LM object, not the string {lm!r}; use LM({lm!r}).")
        super().__init__(params, {"constraints": constraints, "momentum": momentum, "reduce": reduce,
                                  "max_feedback_items": max_feedback_items, "num_candidates": num_candidates,
                                  "candidate_temperature": candidate_temperature})
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
        n = group.get("num_candidates", 1)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"num_candidates must be an integer >= 1, got {n!r}.")
        t = group.get("candidate_temperature", 0.9)
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0:
            raise ValueError(f"candidate_temperature must be a number > 0, got {t!r}.")

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Rewrite every text parameter that has a gradient. ``closure()`` (re-runs the program on the batch
        and returns its loss) is called once first, as in torch, and — with ``num_candidates > 1`` — once per
        candidate value to pick the best."""
        best_of = any(group["num_candidates"] > 1 for group in self.param_groups)
        if best_of and closure is None:
            raise ValueError("num_candidates > 1 picks the rewrite with the best batch score, so step() needs a "
                             "closure: opt.step(lambda: loss_fn([program(**ex.inputs()) for ex in batch], batch)).")
        loss = None
        if closure is not None:
            with no_grad():
                loss = closure()
        lm = self.lm or settings.get("backward_lm") or settings.get("lm")
        for group in self.param_groups:
            for param in group["params"]:
                if not isinstance(param, Variable) or not param.requires_grad or not param.grad:
                    continue
                if group["num_candidates"] > 1:
                    loss = self._update_best_of(param, group, lm, closure, loss)  # type: ignore[arg-type]
                else:
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

    def _step_inputs(self, param: Variable, group: dict[str, Any], lm: Any) -> dict[str, Any]:
        """Record the current value in the history and build the step prompt's inputs (feedback reduced once)."""
        grads = param.grad or []
        scores = [g.score for g in grads if g.score is not None]
        mean_score = sum(scores) / len(scores) if scores else None
        history = self.state[param].setdefault("history", [])
        history.append({"value": param.value, "score": mean_score})
        window = history[-(group["momentum"] + 1):-1] if group["momentum"] > 0 else []
        return {"role": param.role_description, "current_value": param.value,
                "feedback": self.reduce_feedback(param, group, lm),
                "constraints": "\n".join(f"- {c}" for c in group["constraints"]) or "(none)",
                "past_values": "\n".join(f"- score {h['score']}: {h['value']}" for h in window) or "(none)"}

    def _propose(self, param: Variable, inputs: dict[str, Any], lm: Any, config: dict[str, Any] | None = None) -> str | None:
        """One rewrite of ``param``, or None (the reason is logged and kept in ``state[param]["last_error"]``)."""
        state = self.state[param]
        try:
            with no_grad():
                out = self._predictor(**inputs, lm=lm, config=config or {})
            proposal = str(out.improved_value).strip()
        except (AdapterParseError, LMError) as exc:
            logger.warning("TGD: no usable proposal for %s (%s); value unchanged.", param.name, exc)
            state["last_error"] = str(exc)[:500]
            return None
        if not proposal:
            logger.warning("TGD: the proposal for %s was empty; value unchanged.", param.name)
            state["last_error"] = "empty proposal"
            return None
        if proposal.strip("{}[]<>#`\"' ") in self.step_signature.output_fields:
            # a small model echoed the reply template ("{{improved_value}}") instead of writing a value
            logger.warning("TGD: the proposal for %s only echoes the field name %r; value unchanged.", param.name,
                           proposal)
            state["last_error"] = "the proposal echoed the template"
            return None
        return proposal

    def _accept(self, param: Variable, value: str) -> None:
        if self.verbose:
            logger.info("TGD: %s -> %r", param.name, value[:200])
        param.value = value
        state = self.state[param]
        state["last_error"] = None
        state["steps"] = state.get("steps", 0) + 1

    def _update(self, param: Variable, group: dict[str, Any], lm: Any) -> None:
        proposal = self._propose(param, self._step_inputs(param, group, lm), lm)
        if proposal is not None:
            self._accept(param, proposal)

    def _update_best_of(self, param: Variable, group: dict[str, Any], lm: Any, closure: Callable[[], Any],
                        current_loss: Any) -> Any:
        """Sample ``num_candidates`` rewrites, score each with ``closure()``, keep the best (current value on ties)."""
        inputs = self._step_inputs(param, group, lm)
        current = param.value
        candidates: list[str] = []
        for i in range(group["num_candidates"]):
            config = {} if i == 0 else {"temperature": float(group["candidate_temperature"]), "rollout_id": i}
            proposal = self._propose(param, inputs, lm, config)
            if proposal is not None and proposal != current and proposal not in candidates:
                candidates.append(proposal)
        scored: list[dict[str, Any]] = [{"value": current, "score": float(current_loss.score), "loss": current_loss}]
        for value in candidates:
            param.value = value
            with no_grad():
                loss = closure()
            scored.append({"value": value, "score": float(loss.score), "loss": loss})
        param.value = current
        best = max(scored, key=lambda c: c["score"])  # first maximum: the current value wins ties
        self.state[param]["last_candidates"] = [{"value": c["value"], "score": c["score"]} for c in scored]
        logger.info("TGD: %s: batch score %.3f now; %d distinct rewrites scored %s; kept %s.", param.name,
                    scored[0]["score"], len(candidates), [round(c["score"], 3) for c in scored[1:]],
                    "the current value" if best is scored[0] else f"a rewrite ({best['score']:.3f})")
        if best is not scored[0]:
            self._accept(param, best["value"])
        return best["loss"]


TGD = TextualGradientDescent
