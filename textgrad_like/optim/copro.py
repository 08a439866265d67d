"""``COPRO``: coordinate ascent over each predictor's instruction (and output prefix).

For every predictor, a prompt model writes ``breadth - 1`` variations of the current instruction;
all are scored on the trainset. For ``depth`` rounds, each predictor in turn is set to its best
candidate so far, and the prompt model is shown the best attempts with their scores to write
``breadth`` new ones. The best scored program is returned.

Besides the instruction (or the attempts), the prompt model sees the predictor's fields (names,
types, descriptions) and, unless ``num_examples=0``, a few trainset examples with the outputs they
should get (a different seeded sample for each proposal, covering distinct outputs first), so a
proposal can carry what the data shows (the label vocabulary, the answer format) even when the
current instruction says nothing of it. ``num_examples=0`` shows the prompt model instructions
only, as the original COPRO does.

A weak prompt model is expected, and costs little:

- every proposal is screened first (:class:`~textgrad_like.optim.screening.InstructionScreen`): a label
  name, a field name, a copy of an input or of the current instruction, empty or too-short text is
  rejected and counted, and never evaluated;
- the start program is scored on the trainset first; each accepted candidate is then scored on a
  seeded minibatch (``minibatch_size``) and goes on to the rest of the trainset only if it is not
  worse there than the start program was on the same examples (``search_state["full_evaluations_saved"]``);
- when no candidate beats the start program, a WARNING says so (with the screening counts) and the
  start program is returned (``search_state["instruction_improved"] = False``).

``prompt_model`` writes the proposals and nothing else; candidates run with the configured LM.
The meta-prompts are :class:`~textgrad_like.prompts.ProposeInstruction` and
:class:`~textgrad_like.prompts.ProposeFromAttempts`; pass subclasses as ``proposal_signature=`` /
``attempts_signature=`` (or set the class attributes) to change their wording.
"""

from __future__ import annotations

import logging
import random
import statistics
from typing import Any

from .. import prompts
from ..errors import BudgetExceeded, OptimizerError
from ..settings import settings
from ._calls import attach_best, count_calls, evaluate_program, log_projection, progress, run_tasks
from .proposer import format_examples
from .screening import InstructionScreen
from .teleprompter import ModuleT, Teleprompter

logger = logging.getLogger(__name__)


def task_fields(signature: Any) -> str:
    """The predictor's inputs and outputs, one line each: ``name (type hint): description``."""
    from ..adapters.values import type_hint

    lines = []
    for kind, fields in (("input", signature.input_fields), ("output", signature.output_fields)):
        for name, info in fields.items():
            hint = type_hint(info.annotation) or "text"
            desc = f": {info.desc}" if info.desc and info.desc != f"${{{name}}}" else ""
            lines.append(f"{kind} `{name}` ({hint}){desc}")
    return "\n".join(lines)


def diverse_sample(examples: list[Any], k: int, rng: random.Random) -> list[Any]:
    """``k`` examples in a random order that first covers as many distinct outputs as it can
    (one example per label before a second of any), so the prompt model sees the range of answers."""
    order = rng.sample(examples, len(examples))
    seen: set[str] = set()
    first, rest = [], []
    for ex in order:
        outputs = repr(sorted((name, str(value)) for name, value in ex.labels().items()))
        (rest if outputs in seen else first).append(ex)
        seen.add(outputs)
    return (first + rest)[:k]


def minibatch_indices(n: int, size: int | float, seed: Any) -> list[int]:
    """A seeded sample of ``size`` indices out of ``n`` (a float in (0, 1) is a fraction of ``n``); an
    empty list when the minibatch would be the whole set (there is then nothing to save)."""
    k = max(1, round(size * n)) if isinstance(size, float) else int(size)
    if k >= n:
        return []
    return sorted(random.Random(f"{seed}-minibatch").sample(range(n), k))


def _percent(scores: list[float]) -> float:
    return round(100.0 * sum(scores) / len(scores), 2) if scores else 0.0


class COPRO(Teleprompter):
    """``COPRO(prompt_model=None, metric=None, breadth=10, depth=3, init_temperature=1.4, track_stats=False,
    num_examples=3, seed=0, minibatch_size=8, proposal_signature=None, attempts_signature=None)``.

    ``compile(student, *, trainset, eval_kwargs=None)`` (``eval_kwargs``: ``num_threads``,
    ``max_errors``, ``provide_traceback``). :attr:`history` gets one row per scored candidate;
    :meth:`state_dict` holds every candidate with its score and depth. If an LM budget runs out,
    :class:`BudgetExceeded` propagates with ``exc.best_program`` (best scored so far, or None).
    """

    #: the meta-prompt of the first proposals (from the current instruction)
    proposal_signature: Any = prompts.ProposeInstruction
    #: the meta-prompt of later proposals (from the scored attempts)
    attempts_signature: Any = prompts.ProposeFromAttempts

    def __init__(self, prompt_model: Any = None, metric: Any = None, breadth: int = 10, depth: int = 3,
                 init_temperature: float = 1.4, track_stats: bool = False, num_examples: int = 3, seed: int = 0,
                 minibatch_size: int | float = 8, proposal_signature: Any = None, attempts_signature: Any = None,
                 **_kwargs: Any) -> None:
        super().__init__()
        if isinstance(minibatch_size, bool) or not (
                (isinstance(minibatch_size, int) and minibatch_size >= 1)
                or (isinstance(minibatch_size, float) and 0.0 < minibatch_size < 1.0)):
            raise OptimizerError(f"COPRO needs minibatch_size >= 1 (examples) or a fraction in (0, 1); got "
                                 f"{minibatch_size!r}.")
        self.minibatch_size = minibatch_size
        self.proposal_signature = prompts.check_override(proposal_signature, type(self).proposal_signature,
                                                         "proposal_signature")
        self.attempts_signature = prompts.check_override(attempts_signature, type(self).attempts_signature,
                                                         "attempts_signature")
        if breadth <= 1:
            raise OptimizerError("COPRO needs breadth > 1.")
        if depth < 1:
            raise OptimizerError("COPRO needs depth >= 1.")
        if num_examples < 0:
            raise OptimizerError("COPRO needs num_examples >= 0 (0 shows the prompt model no examples).")
        self.num_examples = num_examples
        self.seed = seed
        self.metric = metric
        self.breadth = breadth
        self.depth = depth
        self.init_temperature = init_temperature
        self.prompt_model = prompt_model
        self.track_stats = track_stats

    # --- helpers --------------------------------------------------------------------------------------
    @staticmethod
    def _last_output(predictor: Any) -> str:
        return list(predictor.signature.output_fields)[-1]

    def _apply(self, predictor: Any, instruction: str, prefix: str) -> None:
        sig = predictor.signature.with_instructions(instruction)
        last = self._last_output(predictor)
        # an empty prefix means "none": it must not inherit the prefix of the candidate scored before
        sig = sig.with_updated_fields(last, prefix=prefix or None)
        predictor.signature = sig

    def _signatures(self) -> tuple[Any, Any]:
        """The two meta-prompts for this compile. The task's own fields reach them as the ``task_fields``
        text, so the classes stay fixed; the one part that depends on the run, dropping the ``examples``
        field when ``num_examples=0``, is derived here once per compile, not per call."""
        if self.num_examples:
            return self.proposal_signature, self.attempts_signature
        return self.proposal_signature.delete("examples"), self.attempts_signature.delete("examples")

    def _propose(self, signature: Any, inputs: dict[str, Any], n: int, tag: str,
                 current: str | None = None) -> list[tuple[str, str]]:
        from ..predict import Predict

        lm = self.prompt_model or settings.get("lm")

        def one(k: int) -> tuple[str, str]:
            extra = {}
            if self.num_examples:
                rng = random.Random(f"{self.seed}-{tag}-{k}")
                extra["examples"] = format_examples(diverse_sample(self._trainset, self.num_examples, rng))
            with settings.context(lm=lm):
                out = Predict(signature)(config={"temperature": self.init_temperature, "rollout_id": f"{tag}-{k}"},
                                         **inputs, **extra)
            return (str(out.proposed_instruction).strip().strip('"').strip(),
                    str(out.proposed_prefix_for_output_field).strip().strip('"').strip())

        results, errors = run_tasks(one, list(range(n)), num_threads=self._threads, max_errors=self._max_errors,
                                    desc="COPRO proposals")
        self.search_state["proposal_failures"] += len(errors)
        # a rejected proposal is counted and never evaluated
        return [r for r in results if r is not None and self._screen(r[0], current) is None]

    # --- compile ----------------------------------------------------------------------------------------
    def compile(self, student: ModuleT, *, trainset: list[Any], eval_kwargs: dict[str, Any] | None = None,
                **kwargs: Any) -> ModuleT:
        if kwargs:
            raise OptimizerError(f"COPRO.compile got unknown arguments {sorted(kwargs)}.")
        if self.metric is None:
            raise OptimizerError("COPRO needs a metric: COPRO(metric=...).")
        if not trainset:
            raise OptimizerError("COPRO needs a non-empty trainset.")
        eval_kwargs = dict(eval_kwargs or {})
        self._threads = eval_kwargs.get("num_threads")
        self._max_errors = eval_kwargs.get("max_errors")
        trainset = list(trainset)
        self._trainset = trainset
        module = student.deepcopy()
        predictors = module.predictors()
        n_pred = len(predictors)
        evals = self.breadth * n_pred + (self.depth - 1) * self.breadth * n_pred * (n_pred if n_pred > 1 else 1)
        log_projection("COPRO", {"proposals": ((self.breadth - 1) + (self.depth - 1) * self.breadth) * n_pred,
                                 "start program": len(trainset), "evaluation": evals * len(trainset) * n_pred},
                       note="a candidate worse than the start on the minibatch stops there")
        basic_sig, attempts_sig = self._signatures()
        self._screen = InstructionScreen([p.signature for p in predictors], trainset)
        mb_idx = minibatch_indices(len(trainset), self.minibatch_size, self.seed)
        rest_idx = [j for j in range(len(trainset)) if j not in set(mb_idx)]
        self.search_state = {"candidates": [], "proposal_failures": 0, "best": None, "start_score": None,
                             "minibatch_size": len(mb_idx), "full_evaluations_saved": 0,
                             "proposals": self._screen.stats(), "instruction_improved": False}
        results_best: dict[int, dict[str, list[float]]] = {i: {"depth": [], "max": [], "average": [], "min": [],
                                                               "std": []} for i in range(n_pred)}
        evaluated: list[dict[tuple[str, str], dict[str, Any]]] = [{} for _ in range(n_pred)]
        full_scores: dict[tuple[tuple[str, str], ...], float] = {}  # whole-program state -> trainset score
        stopped: set[tuple[tuple[str, str], ...]] = set()  # states that failed the minibatch
        best_program: Any = None
        best_score: float | None = None
        step = 0

        def state_of(program: Any) -> tuple[tuple[str, str], ...]:
            return tuple((p.signature.instructions, p.signature.output_fields[self._last_output(p)].prefix or "")
                         for p in program.predictors())

        def scores_on(program: Any, indices: list[int], desc: str) -> list[float]:
            return evaluate_program(program, [trainset[j] for j in indices], self.metric, num_threads=self._threads,
                                    max_errors=self._max_errors,
                                    provide_traceback=eval_kwargs.get("provide_traceback"), desc=desc).scores

        with count_calls() as counter:
            try:
                # the start program first: the reference every candidate must beat, and the fallback
                start_scores = scores_on(module, list(range(len(trainset))), "COPRO eval (start)")
                start_score = _percent(start_scores)
                start_mb = _percent([start_scores[j] for j in mb_idx])
                full_scores[state_of(module)] = start_score
                best_score, best_program = start_score, module.deepcopy()
                self.search_state["start_score"] = start_score
                self.history.record(start_score, step=step, depth=0, predictor=-1, **counter.row())
                step += 1
                all_cands: list[list[tuple[str, str]]] = []
                fields = [task_fields(p.signature) for p in predictors]
                for i, predictor in enumerate(predictors):
                    instr = predictor.signature.instructions
                    info = predictor.signature.output_fields[self._last_output(predictor)]
                    base = (instr, info.prefix or "")
                    proposals = self._propose(basic_sig, {"task_fields": fields[i], "basic_instruction": instr},
                                              self.breadth - 1, f"copro-{i}-0", current=instr)
                    all_cands.append([*proposals, base])
                latest = [list(c) for c in all_cands]
                clone = module.deepcopy()
                bar = progress(self.depth, "COPRO depth")
                for d in range(self.depth):
                    for i in range(n_pred):
                        cands = latest[i] if n_pred == 1 else all_cands[i]
                        target = clone.predictors()[i]
                        for instruction, prefix in cands:
                            if n_pred == 1 and (instruction, prefix) in evaluated[i]:
                                continue
                            self._apply(target, instruction, prefix)
                            key = state_of(clone)
                            if key in stopped:
                                continue
                            score = full_scores.get(key)
                            if score is None:
                                if mb_idx:
                                    mb = scores_on(clone, mb_idx, "COPRO minibatch")
                                    if _percent(mb) < start_mb:  # worse than the start on the same examples
                                        stopped.add(key)
                                        self.search_state["full_evaluations_saved"] += 1
                                        self.search_state["candidates"].append(
                                            {"predictor": i, "depth": d, "score": None,
                                             "minibatch_score": _percent(mb), "instruction": instruction,
                                             "prefix": prefix})
                                        continue
                                    rest = dict(zip(rest_idx, scores_on(clone, rest_idx, "COPRO eval"), strict=True))
                                    rest.update(zip(mb_idx, mb, strict=True))
                                    score = _percent([rest[j] for j in range(len(trainset))])
                                else:
                                    score = _percent(scores_on(clone, list(range(len(trainset))), "COPRO eval"))
                                full_scores[key] = score
                                self.history.record(score, step=step, depth=d, predictor=i, **counter.row())
                                step += 1
                            old = evaluated[i].get((instruction, prefix))
                            if old is None or score > old["score"]:
                                evaluated[i][(instruction, prefix)] = {"score": score, "depth": d,
                                                                       "instruction": instruction, "prefix": prefix}
                            self.search_state["candidates"].append({"predictor": i, "depth": d, "score": score,
                                                                    "instruction": instruction, "prefix": prefix})
                            if score > best_score:
                                best_score, best_program = score, clone.deepcopy()
                                self.search_state["best"] = {"score": score, "predictor": i, "depth": d,
                                                             "instruction": instruction}
                        if evaluated[i]:
                            top = max(evaluated[i].values(), key=lambda c: c["score"])
                            self._apply(target, top["instruction"], top["prefix"])
                    bar.update(1)
                    for i in range(n_pred):
                        ranked = sorted(evaluated[i].values(), key=lambda c: c["score"], reverse=True)
                        scores = [c["score"] for c in ranked][:10]
                        if self.track_stats and scores:
                            stats = results_best[i]
                            stats["depth"].append(d)
                            stats["max"].append(max(scores))
                            stats["average"].append(sum(scores) / len(scores))
                            stats["min"].append(min(scores))
                            stats["std"].append(statistics.pstdev(scores))
                    if d == self.depth - 1:
                        break
                    for i in range(n_pred):
                        ranked = sorted(evaluated[i].values(), key=lambda c: c["score"], reverse=True)[: self.breadth]
                        lines = []
                        for rank, c in enumerate(reversed(ranked), start=1):
                            lines += [f"Instruction #{rank}: {c['instruction']}", f"Prefix #{rank}: {c['prefix']}",
                                      f"Score #{rank}: {c['score']}"]
                        current = clone.predictors()[i].signature.instructions
                        new = self._propose(attempts_sig, {"task_fields": fields[i],
                                                           "attempted_instructions": "\n".join(lines)}, self.breadth,
                                            f"copro-{i}-{d + 1}", current=current)
                        latest[i] = new
                        all_cands[i].extend(new)
                bar.close()
            except BudgetExceeded as exc:
                self.search_state["proposals"] = self._screen.stats()
                attach_best(exc, best_program, best_score, self.state_dict())
                raise
        if best_program is None:
            raise OptimizerError("COPRO scored no candidate; check the metric and the prompt model's replies.")
        self.search_state["proposals"] = self._screen.stats()
        improved = best_score > start_score
        self.search_state["instruction_improved"] = improved
        logger.info("%s", self._screen.summary("COPRO"))
        if not improved:
            logger.warning("COPRO: the prompt model proposed no instruction that beats the start instruction on the "
                           "trainset (start %.2f); returning the start program. %s. A stronger prompt_model= usually "
                           "helps.", start_score, self._screen.summary("COPRO"))
            best_program = module.deepcopy()
        best_program.candidate_programs = sorted(
            ({"score": c["score"], "instruction": c["instruction"], "prefix": c["prefix"], "depth": c["depth"],
              "predictor": i} for i, ev in enumerate(evaluated) for c in ev.values()),
            key=lambda c: c["score"], reverse=True)
        best_program.total_calls = counter.calls
        if self.track_stats:
            best_program.results_best = results_best
        logger.info("COPRO: best score %.2f (start %.2f) after %d evaluations, %d full evaluations saved by the "
                    "minibatch.", best_score, start_score, step, self.search_state["full_evaluations_saved"])
        return best_program
