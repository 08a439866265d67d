"""``MIPROv2``: Bayesian search over instructions and demo sets, one choice of each per predictor.

1. **Demo sets.** Bootstrapped candidate demo sets per predictor (zero-shot, labeled only,
   unshuffled and shuffled bootstraps), as BootstrapRS builds them.
2. **Instructions.** A :class:`GroundedProposer` writes instruction candidates per predictor from
   a data summary, the program's structure, demos and a random prompting tip; candidate 0 is
   the current instruction.
3. **Search.** Optuna's seeded ``TPESampler`` picks (instruction, demo set) per predictor for each
   trial; a trial is scored on a minibatch of the valset (or the whole valset), and every
   ``minibatch_full_eval_steps`` trials the combination with the best mean minibatch score is
   scored on the full valset. The best fully evaluated program is returned.

Each step's results are saved in the search state (``state_dict()``); with ``checkpoint_dir`` they
are written after every trial and every LM reply is journaled, so a killed run resumes without
paying twice for any call.
"""

from __future__ import annotations

import logging
import math
import os
import random
import warnings
from collections.abc import Callable
from typing import Any, Literal

from .. import prompts
from ..errors import BudgetExceeded, ConfigurationError, EvaluationError, OptimizerError
from ..primitives import Example
from ..settings import settings
from ._calls import attach_best, count_calls, demo_to_dict, evaluate_program, log_projection, progress
from .checkpoint import maybe_checkpoint
from .proposer import GroundedProposer
from .random_search import build_candidate
from .teleprompter import ModuleT, Teleprompter

logger = logging.getLogger(__name__)

STATE_FORMAT = "textgrad_like.mipro/1"
BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT = 3
LABELED_FEWSHOT_EXAMPLES_IN_CONTEXT = 0
MIN_MINIBATCH_SIZE = 50
AUTO_RUN_SETTINGS: dict[str, dict[str, int]] = {
    "light": {"n": 6, "val_size": 100},
    "medium": {"n": 12, "val_size": 300},
    "heavy": {"n": 18, "val_size": 1000},
}


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - optuna is installed with the package
        raise ConfigurationError("MIPROv2 needs optuna: pip install optuna") from exc
    return optuna


def _check_saved(saved: dict[str, Any]) -> None:
    """Raise ``TypeError``/``ValueError`` unless a saved search state has the shapes ``compile`` reads."""
    demos = saved.get("demo_candidates")
    if demos is not None and not (isinstance(demos, dict) and all(
            isinstance(sets, list) and all(isinstance(s, list) and all(isinstance(d, dict) for d in s) for s in sets)
            for sets in demos.values())):
        raise TypeError("demo_candidates must map predictor indexes to lists of demo lists")
    texts = saved.get("instruction_candidates")
    if texts is not None and not (isinstance(texts, dict) and all(
            isinstance(t, list) and all(isinstance(x, str) for x in t) for t in texts.values())):
        raise TypeError("instruction_candidates must map predictor indexes to lists of strings")
    for event in saved.get("events") or []:
        if not (isinstance(event, dict) and isinstance(event.get("kind"), str) and isinstance(event.get("params"), dict)
                and isinstance(event.get("score"), (int, float))):
            raise TypeError(f"a search event is malformed: {str(event)[:100]}")
    if not isinstance(saved.get("history") or [], list):
        raise TypeError("history must be a list")
    for mapping in (demos, texts):
        for key in mapping or {}:
            int(key)  # predictor indexes


def _key(params: dict[str, int]) -> str:
    return ",".join(f"{k}={params[k]}" for k in sorted(params))


class MIPROv2(Teleprompter):
    """Joint instruction and demo optimization (DSPy's arguments and defaults).

    ``auto="light" | "medium" | "heavy"`` sets the number of candidates, trials and the valset
    size; with ``auto=None`` pass ``num_candidates`` and ``compile(num_trials=...)``.
    :attr:`history` gets one row per full evaluation on the valset (score, LM calls so far);
    :meth:`state_dict` holds the demo candidates, instruction candidates and every trial.
    If an LM budget runs out, :class:`BudgetExceeded` propagates with ``exc.best_program`` (the best
    fully evaluated program so far, or None when the search had not started) and
    ``exc.search_state``.
    """

    def __init__(self, metric: Callable[..., Any], prompt_model: Any = None, task_model: Any = None,
                 teacher_settings: dict[str, Any] | None = None, max_bootstrapped_demos: int = 4,
                 max_labeled_demos: int = 4, auto: Literal["light", "medium", "heavy"] | None = "light",
                 num_candidates: int | None = None, num_threads: int | None = None, max_errors: int | None = None,
                 seed: int = 9, init_temperature: float = 1.0, verbose: bool = False, track_stats: bool = True,
                 log_dir: str | None = None, metric_threshold: float | None = None,
                 proposal_signature: Any = None) -> None:
        super().__init__()
        if auto not in (None, "light", "medium", "heavy"):
            raise OptimizerError(f"Invalid value for auto: {auto!r}. Use 'light', 'medium', 'heavy' or None.")
        if metric is None:
            raise OptimizerError("MIPROv2 needs a metric(example, prediction, trace=None).")
        self.auto = auto
        self.num_candidates = num_candidates
        self.num_fewshot_candidates = num_candidates
        self.num_instruct_candidates = num_candidates
        self.metric = metric
        self.init_temperature = init_temperature
        self.task_model = task_model if task_model is not None else settings.get("lm")
        self.prompt_model = prompt_model if prompt_model is not None else settings.get("lm")
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.verbose = verbose
        self.track_stats = track_stats
        self.log_dir = log_dir
        self.teacher_settings = dict(teacher_settings or {})
        self.num_threads = num_threads
        self.max_errors = max_errors
        self.metric_threshold = metric_threshold
        self.seed = seed
        # a subclass of prompts.ProposeGroundedInstruction (checked now, used by the GroundedProposer)
        self.proposal_signature = prompts.check_override(proposal_signature, GroundedProposer.propose_signature,
                                                         "proposal_signature")
        self.prompt_model_total_calls = 0
        self.total_calls = 0

    # --- settings ------------------------------------------------------------------------------------
    @staticmethod
    def _trials_for(num_predictors: int, zeroshot: bool, num_candidates: int) -> int:
        num_vars = num_predictors * (1 if zeroshot else 2)
        return int(max(2 * num_vars * math.log2(max(2, num_candidates)), 1.5 * num_candidates))

    def _split(self, trainset: list[Any], valset: list[Any] | None) -> tuple[list[Any], list[Any]]:
        if not trainset:
            raise OptimizerError("MIPROv2 needs a non-empty trainset.")
        if valset is None:
            if len(trainset) < 2:
                raise OptimizerError("With no valset, the trainset needs at least 2 examples (80% become the valset).")
            size = min(1000, max(1, int(len(trainset) * 0.80)))
            return list(trainset[: len(trainset) - size]), list(trainset[len(trainset) - size:])
        if not valset:
            raise OptimizerError("The valset must hold at least one example.")
        return list(trainset), list(valset)

    def _resolve(self, student: Any, num_trials: int | None, minibatch: bool, zeroshot: bool,
                 valset: list[Any], rng: random.Random) -> tuple[int, list[Any], bool, int, int]:
        if self.auto is None:
            if self.num_candidates is None:
                raise OptimizerError("With auto=None, pass num_candidates=... to MIPROv2 and num_trials=... to compile.")
            if num_trials is None:
                suggestion = self._trials_for(len(student.predictors()), zeroshot, self.num_candidates)
                raise OptimizerError(f"With auto=None, compile needs num_trials (about {suggestion} for "
                                     f"num_candidates={self.num_candidates}).")
            return num_trials, valset, minibatch, self.num_candidates, self.num_candidates
        if self.num_candidates is not None or num_trials is not None:
            raise OptimizerError("With auto set, num_candidates and num_trials come from the preset; pass auto=None "
                                 "to set them yourself.")
        preset = AUTO_RUN_SETTINGS[self.auto]
        if len(valset) > preset["val_size"]:
            valset = [valset[i] for i in sorted(rng.sample(range(len(valset)), preset["val_size"]))]
        minibatch = len(valset) > MIN_MINIBATCH_SIZE
        n = preset["n"]
        n_instr = n if zeroshot else int(n * 0.5)
        return self._trials_for(len(student.predictors()), zeroshot, n), valset, minibatch, n_instr, n

    # --- compile -------------------------------------------------------------------------------------
    def compile(self, student: ModuleT, *, trainset: list[Any], teacher: Any = None, valset: list[Any] | None = None,
                num_trials: int | None = None, max_bootstrapped_demos: int | None = None,
                max_labeled_demos: int | None = None, seed: int | None = None, minibatch: bool = True,
                minibatch_size: int = 35, minibatch_full_eval_steps: int = 5, program_aware_proposer: bool = True,
                data_aware_proposer: bool = True, view_data_batch_size: int = 10, tip_aware_proposer: bool = True,
                fewshot_aware_proposer: bool = True, requires_permission_to_run: bool | None = None,
                provide_traceback: bool | None = None, checkpoint_dir: str | None = None) -> ModuleT:
        if requires_permission_to_run is True:
            raise OptimizerError("MIPROv2 never asks for confirmation; drop requires_permission_to_run.")
        if requires_permission_to_run is False:
            logger.warning("requires_permission_to_run is deprecated and ignored.")
        task_model = self.task_model or settings.get("lm")
        prompt_model = self.prompt_model or settings.get("lm")
        if task_model is None or prompt_model is None:
            raise ConfigurationError("MIPROv2 needs an LM: textgrad_like.configure(lm=...) or pass task_model= and "
                                     "prompt_model=.")
        max_b = self.max_bootstrapped_demos if max_bootstrapped_demos is None else max_bootstrapped_demos
        max_l = self.max_labeled_demos if max_labeled_demos is None else max_labeled_demos
        zeroshot = max_b == 0 and max_l == 0
        seed = self.seed if seed is None else seed
        max_errors = self.max_errors if self.max_errors is not None else settings.get("max_errors")
        trainset, valset = self._split(list(trainset), None if valset is None else list(valset))
        num_trials, valset, minibatch, n_instr, n_fewshot = self._resolve(
            student, num_trials, minibatch, zeroshot, valset, random.Random(f"{seed}-valset"))
        if minibatch and minibatch_size > len(valset):
            raise OptimizerError(f"minibatch_size={minibatch_size} exceeds the valset size {len(valset)}; lower it "
                                 "or pass minibatch=False.")
        if minibatch_full_eval_steps < 1:
            raise OptimizerError("minibatch_full_eval_steps must be >= 1.")
        self.config = {"seed": seed, "num_trials": num_trials, "minibatch": minibatch,
                       "minibatch_size": minibatch_size, "minibatch_full_eval_steps": minibatch_full_eval_steps,
                       "num_instruct_candidates": n_instr, "num_fewshot_candidates": n_fewshot,
                       "valset_size": len(valset), "trainset_size": len(trainset), "zeroshot": zeroshot}
        if self.auto:
            logger.info("MIPROv2 %s preset: %d trials, minibatch=%s, %d demo-set and %d instruction candidates, "
                        "valset of %d.", self.auto, num_trials, minibatch, n_fewshot, n_instr, len(valset))
        proposer = GroundedProposer(
            prompt_model=prompt_model, program=student, trainset=trainset, view_data_batch_size=view_data_batch_size,
            program_aware=program_aware_proposer, use_dataset_summary=data_aware_proposer,
            use_task_demos=fewshot_aware_proposer, num_demos_in_context=BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT,
            use_tip=tip_aware_proposer, set_tip_randomly=tip_aware_proposer, verbose=self.verbose,
            rng=random.Random(f"{seed}-proposer"), init_temperature=self.init_temperature,
            num_threads=self.num_threads, max_errors=max_errors, propose_signature=self.proposal_signature)
        self._log_projection(student, proposer, trainset, valset, n_instr, n_fewshot, num_trials, minibatch,
                             minibatch_size, minibatch_full_eval_steps, max_b if not zeroshot else 3)
        self.search_state = {"format": STATE_FORMAT, "config": self.config, "demo_candidates": None,
                             "instruction_candidates": None, "default_score": None, "events": [],
                             "best": None, "history": [], "failed_evaluations": 0, "proposals": None,
                             "instruction_improved": False}
        self._best_program: Any = None
        self._program = student.deepcopy()
        with maybe_checkpoint(checkpoint_dir) as ckpt, count_calls() as counter:
            self._ckpt, self._counter = ckpt, counter
            saved = self._load(ckpt, checkpoint_dir)
            try:
                with settings.context(lm=task_model):
                    demo_candidates = self._demo_candidates(saved, trainset, teacher, seed, n_fewshot, max_b, max_l,
                                                            zeroshot, max_errors)
                instruction_candidates = self._instructions(saved, proposer, trainset, demo_candidates, n_instr)
                with settings.context(lm=task_model):
                    best = self._search(saved, instruction_candidates, None if zeroshot else demo_candidates,
                                        valset, num_trials, minibatch, minibatch_size, minibatch_full_eval_steps,
                                        seed, max_errors, provide_traceback)
            except BudgetExceeded as exc:
                attach_best(exc, self._best_program, (self.search_state.get("best") or {}).get("score"),
                            self.state_dict())
                raise
            finally:
                self.total_calls = self._paid()
        return best

    # --- projection ------------------------------------------------------------------------------------
    def _log_projection(self, student: Any, proposer: GroundedProposer, trainset: list[Any], valset: list[Any],
                        n_instr: int, n_fewshot: int, num_trials: int, minibatch: bool, minibatch_size: int,
                        steps: int, max_b: int) -> int:
        p = max(1, len(student.predictors()))
        parts = proposer.projected_calls(p, n_instr)
        boot_sets = max(0, n_fewshot - 2)
        parts["bootstrapping (if every run passes)"] = boot_sets * min(len(trainset), max_b) * p
        if minibatch:
            full = math.ceil(num_trials / steps)
            parts["evaluation"] = (len(valset) * (1 + full) + minibatch_size * num_trials) * p
        else:
            parts["evaluation"] = len(valset) * (1 + num_trials) * p
        return log_projection("MIPROv2", parts, note="Replies already in the cache or a checkpoint journal are free")

    # --- checkpoint ----------------------------------------------------------------------------------
    def _paid(self) -> int:
        counter = getattr(self, "_counter", None)
        return (counter.calls if counter is not None else 0) + getattr(self, "_paid_before", 0)

    def _row(self) -> dict[str, Any]:
        row = self._counter.row()
        row["lm_calls"] = self._paid()
        row["tokens"] += self._tokens_before
        return row

    def _load(self, ckpt: Any, checkpoint_dir: str | None) -> dict[str, Any]:
        self._paid_before = 0
        self._tokens_before = 0
        saved = ckpt.load() if ckpt is not None else None
        if not saved or saved.get("format") != STATE_FORMAT:
            return {}
        if saved.get("config") != self.config:
            raise OptimizerError(f"The checkpoint in {checkpoint_dir} was made with other settings "
                                 f"({saved.get('config')}); use a new checkpoint_dir or the same settings.")
        try:
            _check_saved(saved)
            self._paid_before = int(saved.get("lm_calls", 0))
            self._tokens_before = int(saved.get("tokens", 0))
            for row in saved.get("history", []):
                extra = {str(k): v for k, v in row.items() if k not in ("step", "score", "lm_calls", "tokens", "cost",
                                                                         "best_so_far")}
                self.history.record(float(row["score"]), step=int(row["step"]), lm_calls=int(row["lm_calls"]),
                                    tokens=int(row["tokens"]), cost=float(row["cost"] or 0.0), **extra)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise OptimizerError(f"The checkpoint state in {checkpoint_dir} is damaged or not from MIPROv2 "
                                 f"({type(exc).__name__}: {exc}); use a new checkpoint_dir.") from exc
        logger.info("MIPROv2: resuming from %s (%d search events done).", checkpoint_dir, len(saved.get("events", [])))
        return saved

    def _save(self) -> None:
        self.search_state["history"] = self.history.rows
        self.search_state["lm_calls"] = self._paid()
        self.search_state["tokens"] = self._counter.total_tokens + self._tokens_before
        if self._ckpt is not None:
            self._ckpt.save(self.state_dict())

    # --- step 1: demo candidates -------------------------------------------------------------------------
    def _demo_candidates(self, saved: dict[str, Any], trainset: list[Any], teacher: Any, seed: int, n_sets: int,
                         max_b: int, max_l: int, zeroshot: bool, max_errors: int | None) -> dict[int, list[list[Any]]]:
        if saved.get("demo_candidates") is not None:
            raw = saved["demo_candidates"]
            self.search_state["demo_candidates"] = raw
            return {int(i): [[Example(**d) for d in s] for s in sets] for i, sets in raw.items()}
        labeled = LABELED_FEWSHOT_EXAMPLES_IN_CONTEXT if zeroshot else max_l
        boot = BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT if zeroshot else max_b
        rng = random.Random(f"{seed}-demos")
        program = self._program
        candidates: dict[int, list[list[Any]]] = {i: [] for i in range(len(program.predictors()))}
        seeds = list(range(-3, n_sets - 3))
        if max_b > 0 or zeroshot:
            logger.info("MIPROv2 step 1: bootstrapping %d demo-set candidates.", len(seeds))
        bar = progress(len(seeds), "MIPROv2 demo sets")
        try:
            for s in seeds:
                kind = s if (s == -3 or s == -1 or (s == -2 and labeled > 0)) else 0
                candidate = build_candidate(
                    kind, program, trainset, teacher=teacher, metric=self.metric,
                    metric_threshold=self.metric_threshold, teacher_settings=self.teacher_settings,
                    max_bootstrapped_demos=boot, max_labeled_demos=labeled, max_rounds=1, max_errors=max_errors,
                    num_threads=self.num_threads, rng=rng if kind >= 0 else None)
                for i, predictor in enumerate(candidate.predictors()):
                    candidates[i].append(list(predictor.demos))
                bar.update(1)
        finally:
            bar.close()
        self.search_state["demo_candidates"] = {
            str(i): [[demo_to_dict(d) for d in s] for s in sets] for i, sets in candidates.items()}
        self._save()
        return candidates

    # --- step 2: instruction candidates ------------------------------------------------------------------
    def _instructions(self, saved: dict[str, Any], proposer: GroundedProposer, trainset: list[Any],
                      demo_candidates: dict[int, list[list[Any]]], n_instr: int) -> dict[int, list[str]]:
        if saved.get("instruction_candidates") is not None:
            raw = saved["instruction_candidates"]
            self.search_state["instruction_candidates"] = raw
            self.search_state["proposals"] = saved.get("proposals")
            return {int(i): list(texts) for i, texts in raw.items()}
        logger.info("MIPROv2 step 2: proposing %d instruction candidates per predictor.", n_instr)
        with count_calls() as prompt_calls:
            candidates = proposer.propose_instructions_for_program(trainset=trainset, program=self._program,
                                                                   demo_candidates=demo_candidates, N=n_instr)
        self.prompt_model_total_calls = prompt_calls.calls
        for i, predictor in enumerate(self._program.predictors()):
            candidates[i][0] = predictor.signature.instructions
        self.search_state["instruction_candidates"] = {str(i): texts for i, texts in candidates.items()}
        self.search_state["proposer_failures"] = proposer.failures
        if proposer.screen is not None:
            self.search_state["proposals"] = proposer.screen.stats()
            logger.info("%s", proposer.screen.summary("MIPROv2"))
        self._save()
        return candidates

    # --- step 3: search --------------------------------------------------------------------------------
    def _build(self, params: dict[str, int], instructions: dict[int, list[str]],
               demos: dict[int, list[list[Any]]] | None) -> Any:
        program = self._program.deepcopy()
        for i, predictor in enumerate(program.predictors()):
            text = instructions[i][params[f"{i}_predictor_instruction"]]
            predictor.signature = predictor.signature.with_instructions(text)
            if demos:
                predictor.demos = list(demos[i][params[f"{i}_predictor_demos"]])
        return program

    def _score(self, program: Any, devset: list[Any], max_errors: int | None, provide_traceback: bool | None,
               desc: str, baseline: bool = False) -> float:
        """The program's score; a candidate whose evaluation passes ``max_errors`` scores 0 (its
        instruction or demos may be what breaks it), but the default program's evaluation passing
        ``max_errors`` ends the run with :class:`EvaluationError`: the task model, program or metric is
        broken for every candidate, and a search over failures would return a program "best" at 0."""
        try:
            return evaluate_program(program, devset, self.metric, num_threads=self.num_threads, max_errors=max_errors,
                                    provide_traceback=provide_traceback, desc=desc).score
        except EvaluationError as exc:
            self.search_state["failed_evaluations"] += 1
            if baseline:
                raise EvaluationError(f"MIPROv2: the default program's evaluation failed on more than max_errors "
                                      f"examples, so no candidate can be scored. {exc}") from exc
            logger.error("MIPROv2: %s stopped after too many failures; scoring it 0. %s", desc, exc)
            return 0.0

    def _keep_start_instructions_unless_better(self, best_program: Any, best: dict[str, Any],
                                              instructions: dict[int, list[str]],
                                              demos: dict[int, list[list[Any]]] | None) -> tuple[Any, dict[str, Any]]:
        """Whether a proposed instruction beat the start instructions on the valset. The start instructions'
        best full score is that of the fully evaluated programs with instruction 0 for every predictor (the
        default program is one, so there is always one). If the best program's instructions are proposals
        and it scores higher, they are kept (``instruction_improved``); otherwise a WARNING says the
        proposer produced no better instruction and the best program with the start instructions is
        returned, with the demos the search chose for it (demo gains are kept)."""
        names = [k for k in best["params"] if k.endswith("_predictor_instruction")]

        def start_instructions(params: dict[str, int]) -> bool:
            return all(params[k] == 0 for k in names)

        starts = [e for e in self.search_state["events"] if e["kind"] != "minibatch" and start_instructions(e["params"])]
        best_start = max(starts, key=lambda e: e["score"]) if starts else None
        improved = not start_instructions(best["params"]) and (best_start is None or best["score"] > best_start["score"])
        self.search_state["instruction_improved"] = improved
        if improved:
            return best_program, best
        stats = self.search_state.get("proposals") or {}
        logger.warning(
            "MIPROv2: the proposer produced no instruction that beats the start instruction on the valset (%s of %s "
            "proposals passed screening, rejected: %s); returning the start instruction with the demos the search "
            "found. A stronger prompt_model= usually helps.", stats.get("accepted", "?"), stats.get("tried", "?"),
            stats.get("rejected") or "none")
        if best_start is None or start_instructions(best["params"]):
            return best_program, best
        chosen = {"score": best_start["score"], "params": best_start["params"], "step": best_start["step"]}
        self.search_state["best"] = chosen
        return self._build(best_start["params"], instructions, demos), chosen

    def _search(self, saved: dict[str, Any], instructions: dict[int, list[str]],
                demos: dict[int, list[list[Any]]] | None, valset: list[Any], num_trials: int, minibatch: bool,
                minibatch_size: int, steps: int, seed: int, max_errors: int | None,
                provide_traceback: bool | None) -> Any:
        optuna = _import_optuna()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        categorical = optuna.distributions.CategoricalDistribution
        n_pred = len(self._program.predictors())
        dists: dict[str, Any] = {}
        for i in range(n_pred):
            dists[f"{i}_predictor_instruction"] = categorical(list(range(len(instructions[i]))))
            if demos:
                dists[f"{i}_predictor_demos"] = categorical(list(range(len(demos[i]))))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        replay = list(saved.get("events", []))
        self.search_state["events"] = []
        cursor = {"i": 0}

        def replayed(kind: str, params: dict[str, int], batch: list[int] | None) -> float | None:
            i = cursor["i"]
            if i < len(replay):
                event = replay[i]
                if event["kind"] == kind and event["params"] == params and event.get("batch") == batch:
                    cursor["i"] += 1
                    return float(event["score"])
                logger.warning("MIPROv2: the resumed run diverged from the checkpoint at event %d; re-evaluating "
                               "(journaled LM replies are still reused).", i)
                replay.clear()
            return None

        def full_eval(params: dict[str, int], step: int, kind: str) -> float:
            program = self._build(params, instructions, demos)
            score = replayed(kind, params, None)
            fresh = score is None
            if fresh:
                score = self._score(program, valset, max_errors, provide_traceback, f"MIPROv2 full eval ({kind})",
                                    baseline=kind == "default")
            self.search_state["events"].append({"kind": kind, "params": params, "score": score, "batch": None,
                                                "step": step})
            best = self.search_state["best"]
            if best is None or score > best["score"]:
                self.search_state["best"] = {"score": score, "params": params, "step": step}
                self._best_program = program
                logger.info("MIPROv2: new best full score %.2f at step %d (%s).", score, step, _key(params))
            if fresh:
                self.history.record(score, step=step, kind=kind, params=_key(params), **self._row())
            full_scores[_key(params)] = score
            if self.log_dir:
                program.save(os.path.join(self.log_dir, "evaluated_programs", f"program_{step}.json"))
            self._save()
            return score

        full_scores: dict[str, float] = {}
        default = {name: 0 for name in dists}
        default_score = full_eval(default, 0, "default")
        self.search_state["default_score"] = default_score
        study.add_trial(optuna.trial.create_trial(params=default, distributions=dists, value=default_score))
        mean_scores: dict[str, list[float]] = {}
        params_of: dict[str, dict[str, int]] = {}
        bar = progress(num_trials, "MIPROv2 trials")
        try:
            for t in range(1, num_trials + 1):
                trial = study.ask(dists)
                params = {name: int(trial.params[name]) for name in dists}
                key = _key(params)
                params_of[key] = params
                if minibatch:
                    batch = sorted(random.Random(f"{seed}-batch-{t}").sample(range(len(valset)), minibatch_size))
                    score = replayed("minibatch", params, batch)
                    if score is None:
                        program = self._build(params, instructions, demos)
                        score = self._score(program, [valset[j] for j in batch], max_errors, provide_traceback,
                                            f"MIPROv2 trial {t} (minibatch)")
                    self.search_state["events"].append({"kind": "minibatch", "params": params, "score": score,
                                                        "batch": batch, "step": t})
                    study.tell(trial, score)
                    mean_scores.setdefault(key, []).append(score)
                    self._save()
                    if self.verbose:
                        logger.info("MIPROv2 trial %d/%d: minibatch score %.2f (%s).", t, num_trials, score, key)
                    if t % steps == 0 or t == num_trials:
                        ranked = sorted(((sum(v) / len(v), k) for k, v in mean_scores.items() if k not in full_scores),
                                        key=lambda x: -x[0])
                        if ranked:
                            chosen = params_of[ranked[0][1]]
                            score_full = full_eval(chosen, t, "full")
                            study.add_trial(optuna.trial.create_trial(params=chosen, distributions=dists,
                                                                      value=score_full))
                else:
                    score = full_eval(params, t, "trial")
                    study.tell(trial, score)
                    if self.verbose:
                        logger.info("MIPROv2 trial %d/%d: score %.2f (%s).", t, num_trials, score, key)
                bar.update(1)
                best = self.search_state["best"]
                bar.set_postfix_str(f"best {best['score']:.1f}" if best else "")
        finally:
            bar.close()
        best_program = self._best_program
        best = self.search_state["best"]
        logger.info("MIPROv2: best full score %.2f (default program %.2f) with %s.", best["score"], default_score,
                    _key(best["params"]))
        best_program, best = self._keep_start_instructions_unless_better(best_program, best, instructions, demos)
        if self.track_stats:
            events = self.search_state["events"]
            full = sorted((e for e in events if e["kind"] != "minibatch"), key=lambda e: -e["score"])
            mini = sorted((e for e in events if e["kind"] == "minibatch"), key=lambda e: -e["score"])
            best_program.trial_logs = list(events)
            best_program.score = best["score"]
            best_program.candidate_programs = [
                {"score": e["score"], "params": e["params"], "full_eval": True,
                 "program": self._build(e["params"], instructions, demos)} for e in full]
            best_program.mb_candidate_programs = [
                {"score": e["score"], "params": e["params"], "full_eval": False} for e in mini]
            best_program.total_calls = self._paid()
        return best_program
