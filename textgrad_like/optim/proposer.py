"""``GroundedProposer``: instruction candidates written from evidence about the task.

For each predictor of a program it asks a prompt model for new instructions, grounded in

- a summary of the training data (notes taken over a few batches of examples, then condensed),
- a description of the program (its source code) and of the predictor's role in it,
- a few demos from a candidate demo set (inputs with good outputs),
- a prompting tip drawn at random (be concise, give a persona, ...),
- the predictor's current instruction.

Every LM call goes through the active settings, so budgets, caching and checkpoint journals apply.
Failed calls are counted and logged by :class:`ParallelExecutor` and left out of the candidates.
Every proposal is screened (:class:`~textgrad_like.optim.screening.InstructionScreen`): a label name,
a copy of an input or of the current instruction, empty or too-short text is counted in
``proposer.screen`` and left out, so it is never evaluated.

The meta-prompts are class-based signatures in :mod:`textgrad_like.prompts` (``ObserveData``,
``SummarizeData``, ``DescribeProgram``, ``DescribeModule``, ``ProposeGroundedInstruction``), held as
class attributes; a subclass (or ``GroundedProposer(propose_signature=...)``) changes them.
"""

from __future__ import annotations

import inspect
import logging
import math
import random
from typing import Any

from .. import prompts
from ..settings import settings
from ._calls import attempt, run_tasks
from .screening import InstructionScreen

logger = logging.getLogger(__name__)

__all__ = ["GroundedProposer", "TIPS"]

TIPS: dict[str, str] = {
    "none": "",
    "creative": "Feel free to take an unusual angle if it makes the task clearer.",
    "simple": "Keep the instruction short, plain and direct.",
    "description": "Spell out what a good output looks like, including its format.",
    "high_stakes": "Point out that mistakes are costly, so every answer must be checked carefully.",
    "persona": "Open by giving the model a fitting expert role for this task.",
    "edge_cases": "Mention the tricky or ambiguous inputs and how to handle them.",
}

def _clip(text: Any, limit: int = 300) -> str:
    value = " ".join(str(text).split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def format_examples(examples: list[Any], limit: int = 300) -> str:
    blocks = []
    for i, ex in enumerate(examples):
        items = ex.items() if hasattr(ex, "items") else []
        lines = [f"{k}: {_clip(v, limit)}" for k, v in items if k != "augmented"]
        blocks.append(f"Example {i + 1}:\n" + "\n".join(lines))
    return "\n\n".join(blocks)


def program_source(program: Any) -> str:
    try:
        return inspect.getsource(type(program))
    except (OSError, TypeError):
        return repr(program)


class GroundedProposer:
    """Propose instructions for every predictor of ``program``.

    Args:
        prompt_model: the LM that writes proposals (default: the configured LM).
        program, trainset: what to describe.
        view_data_batch_size: examples shown per data-summary call.
        max_data_batches: data-summary calls before the condensing call.
        program_aware, use_dataset_summary, use_task_demos, use_tip: which evidence to include.
        num_demos_in_context: demos shown per proposal.
        set_tip_randomly: draw a tip per proposal (else no tip).
        rng: the random source for tips (seeded by the caller for reproducibility).
        init_temperature: sampling temperature of the proposal calls.
        propose_signature: a subclass of :class:`~textgrad_like.prompts.ProposeGroundedInstruction`.
        screen: the :class:`InstructionScreen` to count proposals in (default: one built from the
            program's signatures and the trainset when proposing).
    """

    observe_signature: Any = prompts.ObserveData
    summarize_signature: Any = prompts.SummarizeData
    describe_program_signature: Any = prompts.DescribeProgram
    describe_module_signature: Any = prompts.DescribeModule
    propose_signature: Any = prompts.ProposeGroundedInstruction

    def __init__(self, prompt_model: Any = None, program: Any = None, trainset: list[Any] | None = None,
                 view_data_batch_size: int = 10, max_data_batches: int = 3, program_aware: bool = True,
                 use_dataset_summary: bool = True, use_task_demos: bool = True, num_demos_in_context: int = 3,
                 use_tip: bool = True, set_tip_randomly: bool = True, verbose: bool = False,
                 rng: random.Random | None = None, init_temperature: float = 1.0, num_threads: int | None = None,
                 max_errors: int | None = None, propose_signature: Any = None,
                 screen: InstructionScreen | None = None) -> None:
        self.propose_signature = prompts.check_override(propose_signature, type(self).propose_signature,
                                                        "propose_signature")
        self.screen = screen
        self.prompt_model = prompt_model
        self.program = program
        self.trainset = list(trainset or [])
        self.view_data_batch_size = max(1, int(view_data_batch_size))
        self.max_data_batches = max(1, int(max_data_batches))
        self.program_aware = program_aware
        self.use_dataset_summary = use_dataset_summary
        self.use_task_demos = use_task_demos
        self.num_demos_in_context = num_demos_in_context
        self.use_tip = use_tip
        self.set_tip_randomly = set_tip_randomly
        self.verbose = verbose
        self.rng = rng or random.Random(0)
        self.init_temperature = init_temperature
        self.num_threads = num_threads
        self.max_errors = max_errors
        self.failures = 0
        self.data_summary = ""
        self.program_description = ""
        self.module_descriptions: dict[int, str] = {}

    # --- projections ----------------------------------------------------------------------------
    def data_batches(self) -> int:
        if not self.use_dataset_summary or not self.trainset:
            return 0
        return min(self.max_data_batches, math.ceil(len(self.trainset) / self.view_data_batch_size))

    def projected_calls(self, num_predictors: int, num_candidates: int) -> dict[str, int]:
        batches = self.data_batches()
        return {
            "data summary": batches + (1 if batches else 0),
            "program description": (num_predictors + 1) if self.program_aware else 0,
            "instruction proposals": max(0, num_candidates - 1) * num_predictors,
        }

    # --- LM helpers ---------------------------------------------------------------------------------
    def _call(self, signature: Any, config: dict[str, Any] | None = None, **inputs: Any) -> Any:
        from ..predict import Predict

        lm = self.prompt_model or settings.get("lm")
        with settings.context(lm=lm):
            return Predict(signature)(config=dict(config or {}), **inputs)

    def _safe(self, what: str, fn: Any) -> str:
        """``str(fn())``, or ``""`` when the call failed with any recoverable error (typed or not)."""
        value, error = attempt(f"Proposer: the {what} call", fn, logger)
        if error is not None:
            self.failures += 1
            return ""
        return str(value)

    # --- evidence -----------------------------------------------------------------------------------
    def summarize_data(self) -> str:
        batches = self.data_batches()
        if not batches:
            return ""
        observe = self.observe_signature
        notes: list[str] = []
        for b in range(batches):
            batch = self.trainset[b * self.view_data_batch_size:(b + 1) * self.view_data_batch_size]
            text = self._safe("data-notes", lambda batch=batch: self._call(
                observe, examples=format_examples(batch), prior_notes="\n".join(notes) or "(none)").notes)
            if text.strip():
                notes.append(text.strip())
        if not notes:
            return ""
        summarize = self.summarize_signature
        summary = self._safe("data-summary", lambda: self._call(summarize, notes="\n".join(notes)).summary)
        return summary.strip() or "\n".join(notes)

    def describe_program(self, program: Any) -> None:
        if not self.program_aware:
            return
        source = program_source(program)
        describe = self.describe_program_signature
        self.program_description = self._safe(
            "program-description", lambda: self._call(describe, program_code=source).program_description).strip()
        module_sig = self.describe_module_signature
        for i, (name, predictor) in enumerate(program.named_predictors()):
            module = f"{name}: {predictor.signature.signature}"
            self.module_descriptions[i] = self._safe("module-description", lambda module=module: self._call(
                module_sig, program_code=source, program_description=self.program_description or "(unknown)",
                module=module).module_description).strip()

    # --- proposals ------------------------------------------------------------------------------------
    def propose_instructions_for_program(self, trainset: list[Any] | None, program: Any,
                                         demo_candidates: dict[int, list[list[Any]]] | None, trial_logs: Any = None,
                                         N: int = 6, T: float | None = None) -> dict[int, list[str]]:  # noqa: N803
        """``{predictor index: [current instruction, proposal 1, ...]}`` with up to ``N`` entries each."""
        if trainset is not None:
            self.trainset = list(trainset)
        if self.use_dataset_summary and not self.data_summary:
            self.data_summary = self.summarize_data()
        if self.program_aware and not self.program_description:
            self.describe_program(program)
        propose = self.propose_signature
        predictors = program.predictors()
        if self.screen is None:
            self.screen = InstructionScreen([p.signature for p in predictors], self.trainset)
        temperature = self.init_temperature if T is None else T
        jobs: list[tuple[int, int, dict[str, Any]]] = []
        for i, predictor in enumerate(predictors):
            for k in range(1, max(1, N)):
                demos = ""
                if self.use_task_demos and demo_candidates and demo_candidates.get(i):
                    sets = demo_candidates[i]
                    chosen = list(sets[k % len(sets)])[: self.num_demos_in_context]
                    demos = format_examples(chosen)
                tip = ""
                if self.use_tip and self.set_tip_randomly:
                    tip = TIPS[self.rng.choice(sorted(TIPS))]
                inputs = {
                    "data_summary": self.data_summary or "(not available)",
                    "program_description": self.program_description or "(not available)",
                    "module_description": self.module_descriptions.get(i) or "(not available)",
                    "step_signature": predictor.signature.signature,
                    "task_demos": demos or "(none)",
                    "current_instruction": predictor.signature.instructions,
                    "tip": tip or "(none)",
                }
                jobs.append((i, k, inputs))

        def one(job: tuple[int, int, dict[str, Any]]) -> str:
            i, k, inputs = job
            out = self._call(propose, config={"temperature": temperature, "rollout_id": f"propose-{i}-{k}"},
                             **inputs)
            return str(out.proposed_instruction).strip().strip('"').strip()

        results, errors = run_tasks(one, jobs, num_threads=self.num_threads, max_errors=self.max_errors,
                                    desc="Propose instructions")
        self.failures += len(errors)
        candidates: dict[int, list[str]] = {i: [p.signature.instructions] for i, p in enumerate(predictors)}
        for (i, _, _), text in zip(jobs, results, strict=True):
            if text is None:  # a failed call, counted above
                continue
            # a rejected proposal (label name, copy of an input or of the current instruction, ...) is never scored
            if self.screen(text, current=candidates[i][0]) is None and text not in candidates[i]:
                candidates[i].append(text)
        if self.verbose:
            for i, texts in candidates.items():
                for j, text in enumerate(texts):
                    logger.info("Proposer: predictor %d, instruction %d: %s", i, j, _clip(text, 400))
        return candidates
