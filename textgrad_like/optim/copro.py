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
"""

from __future__ import annotations

import logging
import random
import statistics
from typing import Any

from ..errors import BudgetExceeded, OptimizerError
from ..settings import settings
from ._calls import attach_best, count_calls, evaluate_program, log_projection, progress, run_tasks
from .proposer import format_examples
from .teleprompter import Teleprompter

logger = logging.getLogger(__name__)

_BASIC = ("You improve instructions for a language model. Given the instruction a task uses now, write a better "
          "one that makes the task clear, and a short prefix that the model's answer should start with.")
_ATTEMPTS = ("You improve instructions for a language model. Below are instructions already tried, each with the "
             "score it reached on validation data, from lowest to highest. Write a new instruction (and an answer "
             "prefix) likely to score higher than all of them; novel ideas are welcome.")


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


def _signatures(with_examples: bool) -> tuple[Any, Any]:
    from ..signatures import InputField, OutputField, make_signature

    task = {"task_fields": (str, InputField(desc="what the task reads and what it must produce"))}
    if with_examples:
        task["examples"] = (str, InputField(desc="a few inputs from the task's data with the outputs they should get"))
    outputs = {
        "proposed_instruction": (str, OutputField(desc="the improved instruction")),
        "proposed_prefix_for_output_field": (str, OutputField(desc="the text the answer should start with")),
    }
    basic = make_signature({**task, "basic_instruction": (str, InputField(desc="the current instruction")), **outputs},
                           _BASIC, signature_name="ProposeFromInstruction")
    attempts = make_signature({**task,
                               "attempted_instructions": (str, InputField(desc="instructions tried, with scores")),
                               **outputs}, _ATTEMPTS, signature_name="ProposeFromAttempts")
    return basic, attempts


class COPRO(Teleprompter):
    """``COPRO(prompt_model=None, metric=None, breadth=10, depth=3, init_temperature=1.4, track_stats=False,
    num_examples=3, seed=0)``.

    ``compile(student, *, trainset, eval_kwargs=None)`` (``eval_kwargs``: ``num_threads``,
    ``max_errors``, ``provide_traceback``). :attr:`history` gets one row per scored candidate;
    :meth:`state_dict` holds every candidate with its score and depth. If an LM budget runs out,
    :class:`BudgetExceeded` propagates with ``exc.best_program`` (best scored so far, or None).
    """

    def __init__(self, prompt_model: Any = None, metric: Any = None, breadth: int = 10, depth: int = 3,
                 init_temperature: float = 1.4, track_stats: bool = False, num_examples: int = 3, seed: int = 0,
                 **_kwargs: Any) -> None:
        super().__init__()
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

    def _propose(self, signature: Any, inputs: dict[str, Any], n: int, tag: str) -> list[tuple[str, str]]:
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
        return [r for r in results if r is not None and r[0]]

    # --- compile ----------------------------------------------------------------------------------------
    def compile(self, student: Any, *, trainset: list[Any], eval_kwargs: dict[str, Any] | None = None,
                **kwargs: Any) -> Any:
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
                                 "evaluation": evals * len(trainset) * n_pred})
        basic_sig, attempts_sig = _signatures(self.num_examples > 0)
        self.search_state = {"candidates": [], "proposal_failures": 0, "best": None}
        results_best: dict[int, dict[str, list[float]]] = {i: {"depth": [], "max": [], "average": [], "min": [],
                                                               "std": []} for i in range(n_pred)}
        evaluated: list[dict[tuple[str, str], dict[str, Any]]] = [{} for _ in range(n_pred)]
        best_program: Any = None
        best_score: float | None = None
        step = 0
        with count_calls() as counter:
            try:
                all_cands: list[list[tuple[str, str]]] = []
                fields = [task_fields(p.signature) for p in predictors]
                for i, predictor in enumerate(predictors):
                    instr = predictor.signature.instructions
                    info = predictor.signature.output_fields[self._last_output(predictor)]
                    base = (instr, info.prefix or "")
                    proposals = self._propose(basic_sig, {"task_fields": fields[i], "basic_instruction": instr},
                                              self.breadth - 1, f"copro-{i}-0")
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
                            score = evaluate_program(clone, trainset, self.metric, num_threads=self._threads,
                                                     max_errors=self._max_errors,
                                                     provide_traceback=eval_kwargs.get("provide_traceback"),
                                                     desc="COPRO eval").score
                            old = evaluated[i].get((instruction, prefix))
                            if old is None or score > old["score"]:
                                evaluated[i][(instruction, prefix)] = {"score": score, "depth": d,
                                                                       "instruction": instruction, "prefix": prefix}
                            self.search_state["candidates"].append({"predictor": i, "depth": d, "score": score,
                                                                    "instruction": instruction, "prefix": prefix})
                            if best_score is None or score > best_score:
                                best_score, best_program = score, clone.deepcopy()
                                self.search_state["best"] = {"score": score, "predictor": i, "depth": d,
                                                             "instruction": instruction}
                            self.history.record(score, step=step, depth=d, predictor=i, **counter.row())
                            step += 1
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
                        new = self._propose(attempts_sig, {"task_fields": fields[i],
                                                           "attempted_instructions": "\n".join(lines)}, self.breadth,
                                            f"copro-{i}-{d + 1}")
                        latest[i] = new
                        all_cands[i].extend(new)
                bar.close()
            except BudgetExceeded as exc:
                attach_best(exc, best_program, best_score, self.state_dict())
                raise
        if best_program is None:
            raise OptimizerError("COPRO scored no candidate; check the metric and the prompt model's replies.")
        best_program.candidate_programs = sorted(
            ({"score": c["score"], "instruction": c["instruction"], "prefix": c["prefix"], "depth": c["depth"],
              "predictor": i} for i, ev in enumerate(evaluated) for c in ev.values()),
            key=lambda c: c["score"], reverse=True)
        best_program.total_calls = counter.calls
        if self.track_stats:
            best_program.results_best = results_best
        logger.info("COPRO: best score %.2f after %d evaluations.", best_score, step)
        return best_program
