"""``SIMBA``: stochastic introspective mini-batch ascent (DSPy's interface).

Each step draws a minibatch of ``bsize`` training examples and runs ``num_candidates`` trajectories
per example, each from a program sampled from the pool (softmax over average scores,
``temperature_for_sampling``) with its own sampling temperature and ``rollout_id``. The examples
whose trajectories disagree most (largest best-minus-worst, then best-minus-mean score gap) are
the ones to learn from: for each, a source program is sampled (``temperature_for_candidates``) and
improved by one of two strategies —

- **append a demo**: the best trajectory's steps become demos of the predictors that made them
  (inputs cut to ``demo_input_field_maxlen``; at most ``max_demos``, dropping a random old one);
- **append a rule**: an LM compares the best and the worst trajectory (with the metric's feedback
  when it gives any) and writes a rule for each predictor, appended to its instruction.

The new programs are scored on the minibatch and join the pool; the best of each step is a winner.
At the end the winners and the best pool programs are scored on the trainset and the best is
returned, with ``candidate_programs`` (score-sorted) and ``trial_logs`` attached. All trajectories
are recorded with :func:`~textgrad_like.nn.record`; the rule prompt sees the same per-step inputs and
outputs that textual gradients carry.

Each rule is screened (:class:`~textgrad_like.optim.screening.InstructionScreen`) before it is appended:
a label name, a copy of an input, empty or too-short text is counted in ``search_state["proposals"]``
and dropped, and a candidate left with no change is not built (no minibatch run is spent on it). New
programs are scored on the step's minibatch; only the winners and the best of the pool are scored on
the whole trainset. When the returned program's instructions are still the start ones (its gain, if
any, came from demos), a WARNING says the rules did not help (``search_state["instruction_improved"]``).
``prompt_model`` writes the rules only. The rule prompt is
:class:`~textgrad_like.prompts.ContrastTrajectories`; pass a subclass as ``rule_signature=``.
"""

from __future__ import annotations

import copy
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import prompts
from ..errors import OptimizerError
from ..nn.graph import no_grad, record
from ..primitives import Example
from ..primitives.metric import call_metric, read_metric
from ..settings import settings
from ._calls import attempt, check_failures, is_recoverable, run_tasks
from .feedback import predictor_names_of
from .screening import InstructionScreen
from .teleprompter import ModuleT, Teleprompter

logger = logging.getLogger(__name__)

__all__ = ["SIMBA"]

# a rule is added to an instruction, not one on its own: two words ("Be brief.") can be a rule
_RULE_MIN_WORDS = 2


def _rule_predictor(signature: Any) -> Any:
    from ..predict import Predict

    return Predict(signature)


@dataclass
class _Trajectory:
    example_index: int
    program_index: int
    score: float
    prediction: Any
    steps: list[tuple[str, dict[str, Any], dict[str, Any]]]
    feedback: str | None = None
    error: str | None = None


@dataclass
class _Bucket:
    example_index: int
    trajectories: list[_Trajectory]
    stats: dict[str, float] = field(default_factory=dict)


def _linked_copy(program: Any, share_parameters: bool) -> Any:
    """A deep copy of ``program`` that shares its LM objects (and, if asked, its parameters)."""
    memo: dict[int, Any] = {}
    for _, predictor in program.named_predictors():
        if predictor.lm is not None:
            memo[id(predictor.lm)] = predictor.lm
    if share_parameters:
        for _, param in program.named_parameters():
            memo[id(param)] = param
    new = copy.deepcopy(program, memo)
    for _, param in new.named_parameters():
        if not share_parameters:
            param.zero_grad()
    return new


def _softmax_pick(indices: Sequence[int], scores: Sequence[float], temperature: float, rng: random.Random) -> int:
    t = max(float(temperature), 1e-6)
    top = max(scores)
    weights = [math.exp((s - top) / t) for s in scores]
    return rng.choices(list(indices), weights=weights, k=1)[0]


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _render_steps(steps: Sequence[tuple[str, dict[str, Any], dict[str, Any]]], maxlen: int = 1500) -> str:
    from ..adapters.values import format_value

    def cut(v: Any) -> str:
        text = format_value(v)
        return text if len(text) <= maxlen else text[:maxlen] + " [...]"

    parts = []
    for name, inputs, outputs in steps:
        ins = "\n".join(f"    {k}: {cut(v)}" for k, v in inputs.items())
        outs = "\n".join(f"    {k}: {cut(v)}" for k, v in outputs.items())
        parts.append(f"Step `{name}`\n  inputs:\n{ins}\n  outputs:\n{outs}")
    return "\n".join(parts) or "(the program failed before any step finished)"


class SIMBA(Teleprompter):
    """``SIMBA(metric=m, bsize=32, num_candidates=6, max_steps=8, max_demos=4).compile(program, trainset=...)``."""

    #: the meta-prompt that writes rules (a subclass of it may be passed as ``rule_signature=``)
    rule_signature: Any = prompts.ContrastTrajectories

    def __init__(self, metric: Callable[..., Any] | None = None, bsize: int = 32, num_candidates: int = 6,
                 max_steps: int = 8, max_demos: int = 4, prompt_model: Any = None,
                 teacher_settings: dict[str, Any] | None = None, demo_input_field_maxlen: int = 100_000,
                 num_threads: int | None = None, temperature_for_sampling: float = 0.2,
                 temperature_for_candidates: float = 0.2, *, trajectory_temperature: float = 1.0,
                 rule_signature: Any = None) -> None:
        super().__init__()
        self.rule_signature = prompts.check_override(rule_signature, type(self).rule_signature, "rule_signature")
        if metric is None or not callable(metric):
            raise OptimizerError("SIMBA needs a metric: SIMBA(metric=my_metric, ...).")
        for name, value in (("bsize", bsize), ("num_candidates", num_candidates), ("max_steps", max_steps)):
            if int(value) < 1:
                raise OptimizerError(f"SIMBA: {name} must be at least 1, got {value}.")
        if max_demos < 0:
            raise OptimizerError("SIMBA: max_demos must be 0 or more.")
        self.metric = metric
        self.bsize = int(bsize)
        self.num_candidates = int(num_candidates)
        self.max_steps = int(max_steps)
        self.max_demos = int(max_demos)
        self.prompt_model = prompt_model
        self.teacher_settings = teacher_settings
        self.demo_input_field_maxlen = int(demo_input_field_maxlen)
        self.num_threads = num_threads
        self.temperature_for_sampling = float(temperature_for_sampling)
        self.temperature_for_candidates = float(temperature_for_candidates)
        self.trajectory_temperature = float(trajectory_temperature)
        self.metric_calls = 0
        self._rule = _rule_predictor(self.rule_signature)
        self._screen = InstructionScreen(min_words=_RULE_MIN_WORDS)

    # --- helpers ---------------------------------------------------------------------------------------
    def _score(self, example: Any, prediction: Any, trace: Any) -> tuple[float, str | None]:
        value = call_metric(self.metric, example, prediction, trace, None, None)
        return read_metric(value)

    def _run(self, jobs: list[tuple[int, int, Any]], trainset: Sequence[Any]) -> list[_Trajectory]:
        """Run ``(example index, program index, program)`` jobs in parallel; failures score 0."""

        def one(job: tuple[int, int, Any]) -> _Trajectory:
            ex_idx, prog_idx, program = job
            example = trainset[ex_idx]
            names = predictor_names_of(program)
            graph = None
            try:
                with record() as graph:
                    prediction = program(**example.inputs())
            except Exception as exc:
                if not is_recoverable(exc):  # a budget stop ends the run
                    raise
                logger.warning("SIMBA: program failed on example %d: %s", ex_idx, exc, exc_info=True)
                steps = [(names.get(id(p), "?"), dict(i), dict(o.items()) if hasattr(o, "items") else {"output": o})
                         for p, i, o in (graph.trace() if graph is not None else [])]
                return _Trajectory(ex_idx, prog_idx, 0.0, None, steps, error=f"{type(exc).__name__}: {exc}")
            trace = graph.trace()
            score, feedback = self._score(example, prediction, trace)
            steps = [(names.get(id(p), "?"), dict(i), dict(o.items()) if hasattr(o, "items") else {"output": o})
                     for p, i, o in trace]
            return _Trajectory(ex_idx, prog_idx, score, prediction, steps, feedback)

        results, errors = run_tasks(one, jobs, num_threads=self.num_threads, max_errors=len(jobs) + 1, desc="SIMBA")
        failed = {e.index: e for e in errors}
        self.metric_calls += len(jobs)
        out = []
        for i, (job, res) in enumerate(zip(jobs, results, strict=True)):
            if res is None:  # the metric raised; keep the run as a failure
                err = failed.get(i)
                out.append(_Trajectory(job[0], job[1], 0.0, None, [], error=str(err) if err else "failed"))
            else:
                out.append(res)
        check_failures("SIMBA", [t.error for t in out if t.error is not None], len(jobs), None)
        return out

    def _sampling_copy(self, program: Any, rollout_id: int, temperature: float) -> Any:
        new = _linked_copy(program, share_parameters=True)
        for _, predictor in new.named_predictors():
            config = dict(getattr(predictor, "config", None) or {})
            config.update(rollout_id=rollout_id, temperature=temperature)
            predictor.config = config
        return new

    # --- strategies ----------------------------------------------------------------------------------------
    def _append_demo(self, bucket: _Bucket, program: Any, rng: random.Random, floor: float) -> bool:
        best = bucket.trajectories[0]
        if best.error is not None or best.score <= floor or not best.steps:
            return False
        named = dict(program.named_predictors())
        added = False
        for name, inputs, outputs in best.steps:
            predictor = named.get(name)
            if predictor is None:
                continue
            fields = {k: (v[: self.demo_input_field_maxlen] if isinstance(v, str) else v) for k, v in inputs.items()}
            demo = Example(augmented=True, **fields, **outputs)
            demos = list(predictor.demos)
            while self.max_demos and len(demos) >= self.max_demos:
                demos.pop(rng.randrange(len(demos)))
            demos.append(demo)
            predictor.demos = demos
            added = True
        return added

    def _append_rule(self, bucket: _Bucket, program: Any, trainset: Sequence[Any], floor: float) -> bool:
        better, worse = bucket.trajectories[0], bucket.trajectories[-1]
        if better.score <= worse.score or better.score < floor:
            return False
        named = dict(program.named_predictors())
        description = "\n".join(f"- `{n}`: {p.signature.signature}\n  instruction: {p.instruction.value}"
                                for n, p in named.items())
        example = trainset[bucket.example_index]
        task_input = "\n".join(f"{k}: {v}" for k, v in example.inputs().items())
        feedback = "\n".join(f"{label} run: {t.feedback or t.error}" for label, t in (("worse", worse), ("better", better))
                             if t.feedback or t.error) or "(none)"
        lm = self.prompt_model or settings.get("lm")
        def write_rules() -> Any:
            with no_grad():
                return self._rule(program_steps=description, task_input=task_input,
                                  worse_run=_render_steps(worse.steps), worse_reward=worse.score,
                                  better_run=_render_steps(better.steps), better_reward=better.score,
                                  evaluator_feedback=feedback, step_names=list(named), lm=lm)

        out, error = attempt("SIMBA: the rule LM (strategy skipped)", write_rules, logger)
        if error is not None:
            return False
        rules = dict(out.rules or {})
        changed = False
        for name, rule in rules.items():
            rule = str(rule).strip()
            predictor = named.get(str(name).strip("` "))
            if predictor is None or self._screen(rule, current=predictor.instruction.value) is not None:
                continue
            predictor.instruction.value = f"{predictor.instruction.value.rstrip()}\n\n{rule}"
            changed = True
        return changed

    # --- compile ----------------------------------------------------------------------------------------------
    def compile(self, student: ModuleT, *, trainset: list[Any], seed: int = 0, **kwargs: Any) -> ModuleT:
        if not trainset:
            raise OptimizerError("SIMBA.compile needs a non-empty trainset.")
        if len(trainset) < self.bsize:
            raise OptimizerError(f"SIMBA: the trainset has {len(trainset)} examples, fewer than bsize={self.bsize}; "
                                 "pass a smaller bsize or more examples.")
        if not student.named_predictors():
            raise OptimizerError("The student has no predictors to optimize (no Predict modules found).")
        rng = random.Random(seed)
        self._screen = InstructionScreen([p.signature for _, p in student.named_predictors()], trainset,
                                         min_words=_RULE_MIN_WORDS)
        programs: list[Any] = [_linked_copy(student, share_parameters=False)]
        scores: dict[int, list[float]] = {0: []}
        winners: list[int] = [0]
        trial_logs: dict[int, dict[str, Any]] = {}
        order = list(range(len(trainset)))
        rng.shuffle(order)
        pos = 0
        rollout = 0
        strategies = ["rule", "demo"] if self.max_demos > 0 else ["rule"]

        def avg(i: int) -> float:
            return sum(scores[i]) / len(scores[i]) if scores[i] else 0.0

        def pool(k: int) -> list[int]:
            ranked = sorted(scores, key=lambda i: (-avg(i), i))[:k]
            return ranked if 0 in ranked else [*ranked, 0]

        for step in range(self.max_steps):
            if pos + self.bsize > len(order):
                rng.shuffle(order)
                pos = 0
            batch = order[pos: pos + self.bsize]
            pos += self.bsize
            # 1. several trajectories per example, from sampled programs at sampling temperatures
            candidates_pool = pool(self.num_candidates)
            pool_scores = [avg(i) for i in candidates_pool]
            jobs = []
            for k in range(self.num_candidates):
                prog_idx = _softmax_pick(candidates_pool, pool_scores, self.temperature_for_sampling, rng)
                temperature = 0.0 if k == 0 else self.trajectory_temperature
                rollout += 1
                runner = self._sampling_copy(programs[prog_idx], rollout, temperature)
                jobs.extend((ex, prog_idx, runner) for ex in batch)
            trajectories = self._run(jobs, trainset)
            # 2. buckets of the same example, most informative first
            buckets = []
            for ex in batch:
                runs = sorted((t for t in trajectories if t.example_index == ex), key=lambda t: -t.score)
                values = [t.score for t in runs]
                mean = sum(values) / len(values)
                buckets.append(_Bucket(ex, runs, {"max": values[0], "min": values[-1], "mean": mean,
                                                  "max_to_min_gap": values[0] - values[-1],
                                                  "max_to_avg_gap": values[0] - mean}))
            buckets.sort(key=lambda b: (-b.stats["max_to_min_gap"], -b.stats["max"], -b.stats["max_to_avg_gap"]))
            floor = _percentile([t.score for t in trajectories], 0.1)
            # 3. new candidates from the most informative buckets
            new_programs: list[Any] = []
            made: list[dict[str, Any]] = []
            for bucket in buckets[: self.num_candidates]:
                if bucket.stats["max_to_min_gap"] <= 0 and bucket.stats["max"] <= floor:
                    continue
                src = _softmax_pick(candidates_pool, pool_scores, self.temperature_for_candidates, rng)
                strategy = rng.choice(strategies)
                candidate = _linked_copy(programs[src], share_parameters=False)
                ok = (self._append_rule(bucket, candidate, trainset, floor) if strategy == "rule"
                      else self._append_demo(bucket, candidate, rng, floor))
                if ok:
                    new_programs.append(candidate)
                    made.append({"source": src, "strategy": strategy, "example": bucket.example_index})
            # 4. score the new programs on the batch; they join the pool
            step_log: dict[str, Any] = {"batch": batch, "baseline_score": sum(t.score for t in trajectories)
                                        / len(trajectories), "candidates": []}
            if new_programs:
                evals = self._run([(ex, -1 - c, prog) for c, prog in enumerate(new_programs) for ex in batch],
                                  trainset)
                best_idx, best_score = None, -math.inf
                for c, prog in enumerate(new_programs):
                    vals = [t.score for t in evals if t.program_index == -1 - c]
                    idx = len(programs)
                    programs.append(prog)
                    scores[idx] = vals
                    mean = sum(vals) / len(vals)
                    step_log["candidates"].append({**made[c], "program": idx, "score": mean})
                    if mean > best_score:
                        best_idx, best_score = idx, mean
                if best_idx is not None:
                    winners.append(best_idx)
                    step_log["winner"] = best_idx
                    step_log["winner_score"] = best_score
            trial_logs[step] = step_log
            self.history.record(step_log.get("winner_score", step_log["baseline_score"]), step=step,
                                metric_calls=self.metric_calls)
            logger.info("SIMBA step %d: baseline %.3f, %d candidates, winner %s", step + 1, step_log["baseline_score"],
                        len(new_programs), step_log.get("winner"))
        # 5. final choice on the whole trainset
        finalists = list(dict.fromkeys([*winners, *sorted(scores, key=lambda i: (-avg(i), i))[: self.num_candidates]]))
        final = self._run([(ex, i, programs[i]) for i in finalists for ex in range(len(trainset))], trainset)
        results = []
        for i in finalists:
            vals = [t.score for t in final if t.program_index == i]
            results.append((sum(vals) / len(vals), i))
        results.sort(key=lambda r: (-r[0], r[1]))
        best_score, best = results[0]
        optimized = programs[best]
        optimized.candidate_programs = [{"score": s, "program": programs[i], "index": i} for s, i in results]
        optimized.trial_logs = trial_logs
        optimized.score = best_score
        optimized.metric_calls = self.metric_calls
        optimized._compiled = True
        start = [p.instruction.value for _, p in student.named_predictors()]
        improved = [p.instruction.value for _, p in optimized.named_predictors()] != start
        self.search_state = {"winners": winners, "final": [[s, i] for s, i in results], "metric_calls": self.metric_calls,
                             "trial_logs": trial_logs, "proposals": self._screen.stats(),
                             "instruction_improved": improved}
        logger.info("%s", self._screen.summary("SIMBA"))
        if not improved:
            logger.warning("SIMBA: no rule written by the prompt model made a better program than the start "
                           "instructions (%s); the returned program keeps the start instructions%s. A stronger "
                           "prompt_model= usually helps.", self._screen.summary("SIMBA"),
                           " with the demos that helped" if best != 0 else "")
        logger.info("SIMBA: best program %d, trainset score %.4f, %d metric calls.", best, best_score, self.metric_calls)
        return optimized
