"""The native GEPA search loop: candidate pool, Pareto selection, reflective mutation, merge, exact budget.

The engine keeps its whole search state as one JSON dict (:class:`SearchState`): candidates (an
instruction per predictor), parents, per-validation-instance scores, counters, the RNG state and the
minibatch sampler. :class:`~textgrad_like.optim.GEPA` saves it after every iteration, so a run that
stops is resumed from the last finished iteration, and the LM calls of the interrupted iteration are
answered from the call journal of :func:`~textgrad_like.optim.checkpoint.maybe_checkpoint`.

Metric calls are counted as GEPA counts them: one per program rollout scored (an example run and
scored once). Per-predictor feedback calls (``pred_name`` set) are counted apart (``feedback_calls``).
An evaluation starts only when the whole of it fits in what is left of ``max_metric_calls``, so the
budget is never passed.

Every proposed instruction is screened (:class:`~textgrad_like.optim.screening.InstructionScreen`)
before the child is run: a label name, a copy of an input or of the parent's instruction, empty or
too-short text is counted in ``state.proposals`` and dropped, so it costs no minibatch rollouts
(event ``"screened"`` when nothing usable is left).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import prompts
from ..errors import OptimizerError
from ..nn.graph import no_grad
from ._calls import check_failures, is_recoverable
from .feedback import (
    Rollout,
    format_reflective_records,
    gradients_from_rollouts,
    reflective_dataset_from_gradients,
    run_rollouts,
)
from .screening import InstructionScreen

logger = logging.getLogger(__name__)

STATE_VERSION = 1

def _reflection_predictor(signature: Any = None) -> Any:
    """A ``Predict`` of the reflection prompt (:class:`~textgrad_like.prompts.ReflectOnInstruction`, or a
    subclass of it), built once per engine."""
    from ..predict import Predict

    return Predict(prompts.check_override(signature, prompts.ReflectOnInstruction, "reflection_signature"))


def clean_instruction(text: str) -> str:
    text = str(text).strip()
    if text.startswith("```") and text.endswith("```") and len(text) >= 6:
        text = text[3:-3].strip()
        first, _, rest = text.partition("\n")
        if rest and first.strip().isalpha() and len(first.strip()) < 12:  # a language tag line
            text = rest.strip()
    return text


@dataclass
class SearchState:
    """Everything a GEPA run needs to continue; JSON-serialisable."""

    fingerprint: str
    predictor_names: list[str]
    candidates: list[dict[str, str]] = field(default_factory=list)
    parents: list[list[int | None]] = field(default_factory=list)
    val_subscores: list[list[float]] = field(default_factory=list)
    discovery_eval_counts: list[int] = field(default_factory=list)
    component_cursor: list[int] = field(default_factory=list)
    total_metric_calls: int = 0
    feedback_calls: int = 0
    num_full_val_evals: int = 0
    iteration: int = 0
    merges_due: int = 0
    merge_invocations: int = 0
    merges_tried: list[str] = field(default_factory=list)
    rng_state: list[Any] | None = None
    train_order: list[int] = field(default_factory=list)
    train_pos: int = 0
    proposals: dict[str, Any] = field(default_factory=dict)  # InstructionScreen.stats()
    log: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    stop_reason: str = ""
    version: int = STATE_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchState:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    # views -------------------------------------------------------------------------------------------
    def mean_scores(self) -> list[float]:
        return [sum(s) / len(s) if s else 0.0 for s in self.val_subscores]

    def best_index(self) -> int:
        means = self.mean_scores()
        return max(range(len(means)), key=lambda i: (means[i], -i))


def fingerprint(names: Sequence[str], seed_candidate: dict[str, str], trainset: Sequence[Any],
                valset: Sequence[Any]) -> str:
    data = json.dumps([list(names), seed_candidate, [repr(e) for e in trainset], [repr(e) for e in valset]],
                      default=str, sort_keys=True)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:16]


# --- Pareto selection -----------------------------------------------------------------------------------
def instance_fronts(val_subscores: Sequence[Sequence[float]]) -> list[set[int]]:
    """For each validation instance, the candidates that reach the best score on it."""
    if not val_subscores:
        return []
    n = len(val_subscores[0])
    fronts = []
    for j in range(n):
        best = max(s[j] for s in val_subscores)
        fronts.append({i for i, s in enumerate(val_subscores) if s[j] == best})
    return fronts


def non_dominated(val_subscores: Sequence[Sequence[float]]) -> set[int]:
    """Candidates on the Pareto frontier: those not made redundant by others on every instance they win.

    A candidate is dropped when every instance front that holds it also holds another candidate that
    is still kept; candidates are examined from the lowest mean score up, so ties keep the stronger one."""
    fronts = instance_fronts(val_subscores)
    members = sorted({i for f in fronts for i in f},
                     key=lambda i: (sum(val_subscores[i]) / max(1, len(val_subscores[i])), i))
    kept = set(members)
    changed = True
    while changed:
        changed = False
        for cand in members:
            if cand not in kept:
                continue
            others = kept - {cand}
            holding = [f for f in fronts if cand in f]
            if holding and all(f & others for f in holding):
                kept.discard(cand)
                changed = True
    return kept


def pareto_frequencies(val_subscores: Sequence[Sequence[float]]) -> dict[int, int]:
    """How many instance fronts each non-dominated candidate is on (its sampling weight)."""
    kept = non_dominated(val_subscores)
    freq = dict.fromkeys(sorted(kept), 0)
    for front in instance_fronts(val_subscores):
        for i in front & kept:
            freq[i] += 1
    return freq


def select_pareto(val_subscores: Sequence[Sequence[float]], rng: random.Random) -> int:
    freq = pareto_frequencies(val_subscores)
    pool = [i for i, n in sorted(freq.items()) for _ in range(n)]
    return rng.choice(pool) if pool else 0


# --- merge -------------------------------------------------------------------------------------------------
def ancestors(parents: Sequence[Sequence[int | None]], idx: int) -> set[int]:
    seen: set[int] = set()
    stack = [p for p in parents[idx] if p is not None]
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        stack.extend(q for q in parents[p] if q is not None)
    return seen


def merge_candidates(names: Sequence[str], cand_i: dict[str, str], cand_j: dict[str, str], ancestor: dict[str, str],
                     score_i: float, score_j: float, rng: random.Random) -> dict[str, str]:
    """System-aware merge: per predictor, take the side that changed it from the common ancestor; where
    both changed it, take the instruction of the stronger candidate (random on a tie)."""
    merged: dict[str, str] = {}
    for name in names:
        a, i, j = ancestor[name], cand_i[name], cand_j[name]
        if i == a and j != a:
            merged[name] = j
        elif j == a and i != a:
            merged[name] = i
        elif i != a and j != a:
            if score_i == score_j:
                merged[name] = i if rng.random() < 0.5 else j
            else:
                merged[name] = i if score_i > score_j else j
        else:
            merged[name] = a
    return merged


class NativeGEPAEngine:
    """Runs the search. ``save`` is called with the state dict after each iteration."""

    def __init__(self, *, student: Any, trainset: Sequence[Any], valset: Sequence[Any], metric: Callable[..., Any],
                 max_metric_calls: int, reflection_lm: Any, instruction_proposer: Callable[..., Any] | None,
                 reflection_minibatch_size: int, candidate_selection_strategy: str, component_selector: str,
                 skip_perfect_score: bool, perfect_score: float, failure_score: float,
                 add_format_failure_as_feedback: bool, use_merge: bool, max_merge_invocations: int,
                 merge_subsample_size: int, num_threads: int | None, feedback_source: str, seed: int,
                 save: Callable[[dict[str, Any]], None] | None, history: Any = None,
                 reflection_signature: Any = None) -> None:
        self.student = student
        self.trainset = list(trainset)
        self.valset = list(valset)
        self.metric = metric
        self.max_metric_calls = int(max_metric_calls)
        self.reflection_lm = reflection_lm
        self.instruction_proposer = instruction_proposer
        self.minibatch_size = max(1, min(int(reflection_minibatch_size), len(self.trainset)))
        self.selection = candidate_selection_strategy
        self.component_selector = component_selector
        self.skip_perfect_score = skip_perfect_score
        self.perfect_score = perfect_score
        self.failure_score = failure_score
        self.add_format_failure_as_feedback = add_format_failure_as_feedback
        self.use_merge = use_merge
        self.max_merge_invocations = max_merge_invocations
        self.merge_subsample_size = max(1, merge_subsample_size)
        self.num_threads = num_threads
        self.feedback_source = feedback_source
        self.seed = seed
        self._save = save
        self.history = history
        self.names = [name for name, _ in student.named_predictors()]
        self.rng = random.Random(seed)
        self._reflector = _reflection_predictor(reflection_signature)
        self.screen = InstructionScreen([p.signature for _, p in student.named_predictors()], self.trainset)
        self.last_screened: dict[str, str] = {}  # predictor name -> why its last proposal was rejected

    # --- state -------------------------------------------------------------------------------------------
    def seed_candidate(self) -> dict[str, str]:
        return {name: p.instruction.value for name, p in self.student.named_predictors()}

    def new_state(self) -> SearchState:
        seed = self.seed_candidate()
        return SearchState(fingerprint=fingerprint(self.names, seed, self.trainset, self.valset),
                           predictor_names=list(self.names))

    def _checkpoint(self, state: SearchState) -> None:
        st = self.rng.getstate()
        state.rng_state = [st[0], list(st[1]), st[2]]
        if self._save is not None:
            self._save(state.to_dict())

    def _restore_rng(self, state: SearchState) -> None:
        if state.rng_state:
            v, internal, gauss = state.rng_state
            self.rng.setstate((v, tuple(internal), gauss))

    # --- programs and evaluation ---------------------------------------------------------------------------
    def program(self, candidate: dict[str, str]) -> Any:
        prog = self.student.deepcopy()
        originals = dict(self.student.named_predictors())
        for name, predictor in prog.named_predictors():
            predictor.lm = originals[name].lm  # share LM objects, never copies of them
            if name in candidate:
                predictor.instruction.value = candidate[name]
            predictor.instruction.zero_grad()
        return prog

    def _count(self, state: SearchState) -> Callable[[], None]:
        def bump() -> None:
            state.total_metric_calls += 1
        return bump

    def fits(self, state: SearchState, n: int) -> bool:
        return state.total_metric_calls + n <= self.max_metric_calls

    def rollouts(self, state: SearchState, program: Any, examples: Sequence[Any]) -> list[Rollout]:
        if not self.fits(state, len(examples)):
            raise OptimizerError("internal: evaluation started without budget")  # guarded by callers
        return run_rollouts(program, examples, self.metric, num_threads=self.num_threads,
                            failure_score=self.failure_score, on_metric_call=self._count(state),
                            description="GEPA rollouts")

    def add_candidate(self, state: SearchState, candidate: dict[str, str], parents: list[int | None],
                      scores: list[float], cursor: int) -> int:
        state.candidates.append(dict(candidate))
        state.parents.append(list(parents))
        state.val_subscores.append([float(s) for s in scores])
        state.discovery_eval_counts.append(state.total_metric_calls)
        state.component_cursor.append(cursor)
        state.num_full_val_evals += 1
        idx = len(state.candidates) - 1
        if self.history is not None:
            mean = sum(scores) / len(scores) if scores else 0.0
            self.history.record(mean, step=state.iteration, candidate=idx, parents=list(parents),
                                metric_calls=state.total_metric_calls)
        return idx

    # --- the loop --------------------------------------------------------------------------------------------
    def run(self, state: SearchState) -> SearchState:
        self._restore_rng(state)
        self.screen.restore(state.proposals)
        if not state.candidates:
            if not self.fits(state, len(self.valset)):
                raise OptimizerError(
                    f"max_metric_calls={self.max_metric_calls} is smaller than one evaluation of the validation set "
                    f"({len(self.valset)} examples): raise the budget or pass a smaller valset.")
            seed = self.seed_candidate()
            outs = self.rollouts(state, self.program(seed), self.valset)
            # every run of the seed program failed: the LM, program or metric is broken for every candidate
            check_failures("GEPA: the seed program's evaluation", [r.error for r in outs if r.failed], len(outs), None)
            self.add_candidate(state, seed, [None], [r.score for r in outs], 0)
            state.log.append({"iteration": 0, "event": "seed", "score": state.mean_scores()[0],
                              "metric_calls": state.total_metric_calls})
            self._checkpoint(state)
        while not state.done:
            state.iteration += 1
            event = self.step(state)
            event.setdefault("iteration", state.iteration)
            event["metric_calls"] = state.total_metric_calls
            state.log.append(event)
            logger.info("GEPA iteration %d: %s (metric calls %d/%d)", state.iteration, event.get("event"),
                        state.total_metric_calls, self.max_metric_calls)
            self._checkpoint(state)
        return state

    def step(self, state: SearchState) -> dict[str, Any]:
        if self.use_merge and state.merges_due > 0 and state.merge_invocations < self.max_merge_invocations:
            event = self.merge_step(state)
            if event is not None:
                return event
        return self.reflective_step(state)

    def _stop(self, state: SearchState, reason: str) -> dict[str, Any]:
        state.done = True
        state.stop_reason = reason
        return {"event": "stop", "reason": reason}

    def _select_parent(self, state: SearchState) -> int:
        if self.selection == "current_best":
            return state.best_index()
        return select_pareto(state.val_subscores, self.rng)

    def _minibatch(self, state: SearchState) -> list[int]:
        b = self.minibatch_size
        if not state.train_order or state.train_pos + b > len(state.train_order):
            order = list(range(len(self.trainset)))
            self.rng.shuffle(order)
            state.train_order, state.train_pos = order, 0
        out = state.train_order[state.train_pos: state.train_pos + b]
        state.train_pos += b
        return out

    def _components(self, state: SearchState, parent: int) -> list[str]:
        if self.component_selector == "all":
            return list(self.names)
        cursor = state.component_cursor[parent]
        state.component_cursor[parent] = cursor + 1
        return [self.names[cursor % len(self.names)]]

    def reflective_step(self, state: SearchState) -> dict[str, Any]:
        b = self.minibatch_size
        if not self.fits(state, 2 * b + len(self.valset)):
            return self._stop(state, "budget")
        parent = self._select_parent(state)
        batch_idx = self._minibatch(state)
        batch = [self.trainset[i] for i in batch_idx]
        parent_prog = self.program(state.candidates[parent])
        before = self.rollouts(state, parent_prog, batch)
        old_sum = sum(r.score for r in before)
        event: dict[str, Any] = {"event": "reflect", "parent": parent, "minibatch": batch_idx,
                                 "parent_minibatch_scores": [r.score for r in before]}
        if self.skip_perfect_score and all(r.score >= self.perfect_score for r in before):
            event["event"] = "skip_perfect"
            return event
        names = self._components(state, parent)
        event["components"] = names
        dataset = self._reflective_dataset(state, parent_prog, before, names)
        if not dataset:
            event["event"] = "no_feedback"
            return event
        try:
            updates = self.propose(state.candidates[parent], dataset, names)
        except Exception as exc:  # any error of the reflection LM, typed or not, skips this iteration
            if not is_recoverable(exc):
                raise
            logger.warning("GEPA: the reflection LM gave no usable instruction (%s: %s); iteration skipped.",
                           type(exc).__name__, exc)
            event["event"] = "proposal_failed"
            event["error"] = str(exc)[:300]
            return event
        state.proposals = self.screen.stats()
        if self.last_screened:
            event["screened"] = dict(self.last_screened)
            if not updates:  # every proposal rejected: no rollouts spent on it
                event["event"] = "screened"
                return event
        child = {**state.candidates[parent], **updates}
        if child == state.candidates[parent]:
            event["event"] = "no_change"
            return event
        after = self.rollouts(state, self.program(child), batch)
        new_sum = sum(r.score for r in after)
        event.update(child_minibatch_scores=[r.score for r in after], proposal=updates)
        if new_sum <= old_sum:
            event["event"] = "rejected"
            return event
        scores = [r.score for r in self.rollouts(state, self.program(child), self.valset)]
        idx = self.add_candidate(state, child, [parent], scores, state.component_cursor[parent])
        if self.use_merge:
            state.merges_due += 1
        event.update(event="accepted", candidate=idx, val_score=sum(scores) / len(scores))
        return event

    def _reflective_dataset(self, state: SearchState, program: Any, rollouts: list[Rollout],
                            names: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Feedback → textual gradients on ``program``'s instructions → GEPA's reflective dataset."""
        usable = list(rollouts)
        if self.feedback_source == "backward":
            from ..autograd.loss import Loss, LossItem
            from .feedback import _default_feedback

            items = [LossItem(r.prediction, r.example, r.score,
                              r.feedback or _default_feedback(r.example, r.prediction, r.score), r.extra.get("graph"))
                     for r in usable if not r.failed]
            if items:
                with_graph = [i for i in items if i.graph is not None and len(i.graph)]
                if with_graph:
                    Loss(with_graph).backward(backward_lm=self.reflection_lm, num_threads=self.num_threads)
        else:
            def bump() -> None:
                state.feedback_calls += 1

            gradients_from_rollouts(program, usable, self.metric, predictor_names=names,
                                    add_format_failure_as_feedback=self.add_format_failure_as_feedback,
                                    on_feedback_call=bump)
        return reflective_dataset_from_gradients(program, names)

    def propose(self, candidate: dict[str, str], dataset: dict[str, list[dict[str, Any]]],
                names: list[str]) -> dict[str, str]:
        """New instructions for the predictors ``names`` (those with feedback), screened: a rejected text is
        left out of the result, counted in :attr:`screen` and its reason kept in :attr:`last_screened`."""
        todo = [n for n in names if dataset.get(n)]
        if self.instruction_proposer is not None:
            out = self.instruction_proposer(candidate=dict(candidate), reflective_dataset=dataset,
                                            components_to_update=todo)
            return self._screened(candidate, {k: clean_instruction(v) for k, v in dict(out).items()})
        updates = {}
        for name in todo:
            with no_grad():
                pred = self._reflector(current_instruction=candidate[name],
                                       cases_with_feedback=format_reflective_records(dataset[name]),
                                       lm=self.reflection_lm)
            updates[name] = clean_instruction(pred.new_instruction)
        return self._screened(candidate, updates)

    def _screened(self, candidate: dict[str, str], updates: dict[str, str]) -> dict[str, str]:
        self.last_screened = {}
        usable = {}
        for name, text in updates.items():
            if name not in self.names:
                continue
            why = self.screen(text, current=candidate.get(name))
            if why is None:
                usable[name] = text
            else:
                self.last_screened[name] = why
        return usable

    # --- merge --------------------------------------------------------------------------------------------------
    def find_merge(self, state: SearchState) -> tuple[int, int, int, dict[str, str]] | None:
        front = sorted(non_dominated(state.val_subscores))
        if len(front) < 2:
            return None
        means = state.mean_scores()
        tried = set(state.merges_tried)
        existing = [json.dumps(c, sort_keys=True) for c in state.candidates]
        for _ in range(10):
            i, j = sorted(self.rng.sample(front, 2))
            anc_i, anc_j = ancestors(state.parents, i), ancestors(state.parents, j)
            if i in anc_j or j in anc_i:
                continue
            common = sorted(anc_i & anc_j)
            options = []
            for a in common:
                if f"{i},{j},{a}" in tried or means[a] > min(means[i], means[j]):
                    continue
                ci, cj, ca = state.candidates[i], state.candidates[j], state.candidates[a]
                if any((ci[n] == ca[n]) != (cj[n] == ca[n]) for n in self.names):
                    options.append(a)
            if not options:
                continue
            a = self.rng.choice(options)
            state.merges_tried.append(f"{i},{j},{a}")
            merged = merge_candidates(self.names, state.candidates[i], state.candidates[j], state.candidates[a],
                                      means[i], means[j], self.rng)
            if json.dumps(merged, sort_keys=True) in existing:
                continue
            return i, j, a, merged
        return None

    def _merge_subsample(self, state: SearchState, i: int, j: int) -> list[int]:
        si, sj = state.val_subscores[i], state.val_subscores[j]
        buckets = [[k for k in range(len(si)) if si[k] > sj[k]], [k for k in range(len(si)) if sj[k] > si[k]],
                   [k for k in range(len(si)) if si[k] == sj[k]]]
        size = min(self.merge_subsample_size, len(si))
        chosen: list[int] = []
        while len(chosen) < size:
            for bucket in buckets:
                rest = [k for k in bucket if k not in chosen]
                if rest and len(chosen) < size:
                    chosen.append(self.rng.choice(rest))
        return sorted(chosen)

    def merge_step(self, state: SearchState) -> dict[str, Any] | None:
        if not self.fits(state, len(self.valset)):
            return None
        found = self.find_merge(state)
        if found is None:
            state.merges_due = 0
            return None
        i, j, a, merged = found
        state.merges_due -= 1
        state.merge_invocations += 1
        sub = self._merge_subsample(state, i, j)
        program = self.program(merged)
        sub_scores = [r.score for r in self.rollouts(state, program, [self.valset[k] for k in sub])]
        sum_i = sum(state.val_subscores[i][k] for k in sub)
        sum_j = sum(state.val_subscores[j][k] for k in sub)
        event: dict[str, Any] = {"event": "merge", "parents": [i, j], "ancestor": a, "subsample": sub,
                                 "merged_subsample_scores": sub_scores}
        if sum(sub_scores) < max(sum_i, sum_j):
            event["event"] = "merge_rejected"
            return event
        rest = [k for k in range(len(self.valset)) if k not in sub]
        rest_scores = [r.score for r in self.rollouts(state, program, [self.valset[k] for k in rest])]
        scores = [0.0] * len(self.valset)
        for k, s in zip(sub, sub_scores, strict=True):
            scores[k] = s
        for k, s in zip(rest, rest_scores, strict=True):
            scores[k] = s
        idx = self.add_candidate(state, merged, [i, j], scores,
                                 max(state.component_cursor[i], state.component_cursor[j]))
        event.update(event="merge_accepted", candidate=idx, val_score=sum(scores) / len(scores))
        return event


def auto_budget(num_predictors: int, num_candidates: int, valset_size: int, minibatch_size: int) -> int:
    """Metric calls for ``auto=...``: about ``num_candidates`` accepted proposals per predictor count.

    Trials grow with the number of predictors and (logarithmically) with the candidates wanted; each
    trial costs two minibatch evaluations, and about one trial in three is assumed to be accepted and
    to cost a full validation evaluation."""
    trials = max(int(3 * num_predictors * math.log2(max(num_candidates, 2))), int(1.5 * num_candidates))
    return valset_size + trials * 2 * minibatch_size + math.ceil(trials / 3) * valset_size
