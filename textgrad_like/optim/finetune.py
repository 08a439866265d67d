"""``BootstrapFinetune``: distil a program's successful runs into LoRA weights of its local model.

``compile(student, trainset, teacher=None)``:

1. runs the teacher (the student itself by default; a list of teachers is allowed) on every training
   example inside :func:`~textgrad_like.nn.graph.record`, and keeps the runs the metric accepts;
2. turns every predictor call of those runs into a chat fine-tuning record in the format of the
   adapter the *student's* predictor uses (its own signature and demos, unless ``exclude_demos``);
3. trains one LoRA adapter per base model (``multitask=True``) or one per predictor, on the shared
   in-process model, with :func:`train_lora` (AdamW on the token cross-entropy of the replies);
4. attaches each adapter to its predictors (``predictor.lora``, LM swapped for the adapted view)
   and returns the student.

Training settings are ``train_kwargs`` (see :data:`DEFAULT_TRAIN_KWARGS`); a tqdm bar shows the loss.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import OptimizerError
from ..lm.adapted import AdaptedLocalLM, as_local_lm
from ..nn.graph import record
from ..nn.lora import LoRA
from ..parallel import ParallelExecutor
from ..primitives import Example
from ..primitives.metric import call_metric, read_metric
from ..settings import settings
from ._calls import progress
from .bootstrap import check_same_structure
from .teleprompter import ModuleT, Teleprompter

logger = logging.getLogger(__name__)

DEFAULT_TRAIN_KWARGS: dict[str, Any] = {
    "epochs": 3,
    "learning_rate": 1e-3,
    "batch_size": 4,
    "micro_batch_size": 4,
    "max_length": 1024,
    "seed": 0,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "warmup_ratio": 0.0,
    "r": 8,
    "alpha": 16,
    "dropout": 0.0,
    "target_modules": ("q_proj", "v_proj"),
}
_ALIASES = {"num_train_epochs": "epochs", "lr": "learning_rate", "per_device_train_batch_size": "batch_size",
            "max_seq_length": "max_length", "lora_r": "r", "lora_alpha": "alpha", "lora_dropout": "dropout"}


def resolve_train_kwargs(kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """``DEFAULT_TRAIN_KWARGS`` updated with ``kwargs`` (DSPy/HF names such as ``num_train_epochs`` accepted)."""
    out = dict(DEFAULT_TRAIN_KWARGS)
    for key, value in (kwargs or {}).items():
        key = _ALIASES.get(key, key)
        if key not in DEFAULT_TRAIN_KWARGS:
            raise OptimizerError(f"Unknown train_kwargs key {key!r}; use some of {sorted(DEFAULT_TRAIN_KWARGS)}.")
        out[key] = value
    for key in ("epochs", "batch_size", "micro_batch_size", "max_length", "r"):
        if int(out[key]) < 1:
            raise OptimizerError(f"train_kwargs[{key!r}] must be at least 1, got {out[key]!r}.")
    if float(out["learning_rate"]) <= 0:
        raise OptimizerError(f"train_kwargs['learning_rate'] must be positive, got {out['learning_rate']!r}.")
    return out


def train_lora(lora: LoRA, examples: Sequence[Any], *, epochs: int = 3, learning_rate: float = 1e-3,
               batch_size: int = 4, micro_batch_size: int = 4, seed: int = 0, weight_decay: float = 0.0,
               max_grad_norm: float | None = 1.0, warmup_ratio: float = 0.0, disable_progress: bool = False,
               desc: str = "Finetune", on_epoch_end: Callable[[int], bool] | None = None) -> list[float]:
    """Train ``lora`` on tokenized SFT ``examples`` with AdamW; returns the loss of every optimizer step.

    Each step takes ``batch_size`` records (shuffled per epoch with ``seed``), run ``micro_batch_size``
    at a time with gradients accumulated and weighted by reply tokens, so the step's loss is the
    token-mean cross-entropy of the batch. ``on_epoch_end(epoch)`` (1-based) runs after each epoch;
    returning True stops training (early stopping).
    """
    import torch

    from ..autograd.sft import sft_loss_tensor

    if not examples:
        raise OptimizerError("No fine-tuning records to train on.")
    if not lora.requires_grad:
        raise OptimizerError(f"LoRA {lora.adapter_name!r} has requires_grad=False; nothing to train.")
    rng = random.Random(seed)
    torch.manual_seed(int(seed))
    params = lora.tensors()
    optimizer = torch.optim.AdamW(params, lr=float(learning_rate), weight_decay=float(weight_decay))
    steps_per_epoch = math.ceil(len(examples) / int(batch_size))
    total_steps = steps_per_epoch * int(epochs)
    warmup = int(float(warmup_ratio) * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0)
    losses: list[float] = []
    bar = progress(total_steps, desc, disable_progress)
    try:
        for epoch in range(int(epochs)):
            order = list(range(len(examples)))
            rng.shuffle(order)
            for start in range(0, len(order), int(batch_size)):
                batch = [examples[i] for i in order[start:start + int(batch_size)]]
                batch_tokens = sum(len(ex.completion_ids) for ex in batch)
                optimizer.zero_grad(set_to_none=True)
                step_loss = 0.0
                for m in range(0, len(batch), int(micro_batch_size)):
                    micro = batch[m:m + int(micro_batch_size)]
                    loss, tokens = sft_loss_tensor(micro, train=True)
                    weight = tokens / max(1, batch_tokens)
                    with lora.switch.lock:
                        (loss * weight).backward()
                    step_loss += float(loss.detach().item()) * weight
                if max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(params, float(max_grad_norm))
                with lora.switch.lock:
                    optimizer.step()
                scheduler.step()
                losses.append(step_loss)
                bar.update(1)
                bar.set_postfix_str(f"epoch {epoch + 1}/{epochs} loss {step_loss:.4f}")
                logger.debug("%s step %d: loss %.4f", desc, len(losses), step_loss)
            if on_epoch_end is not None and on_epoch_end(epoch + 1):
                logger.info("%s: stopped after epoch %d of %d.", desc, epoch + 1, epochs)
                break
    finally:
        bar.close()
        optimizer.zero_grad(set_to_none=True)
    return losses


def _lm_keyed(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(hasattr(k, "model") and hasattr(k, "kwargs") for k in value)


def _per_lm(value: Any, lm: Any) -> Any:
    """DSPy lets ``train_kwargs``/``adapter`` be a dict keyed by LM: pick this LM's entry."""
    if _lm_keyed(value):
        for key, item in value.items():
            if key is lm or (isinstance(key, AdaptedLocalLM) and key.base_lm is lm):
                return item
        return None
    return value


class BootstrapFinetune(Teleprompter):
    """Fine-tune LoRA adapters of the program's local model on its own successful traces (DSPy's interface).

    Args:
        metric: ``metric(example, prediction, trace)``; runs it rejects are not trained on. ``None`` keeps all.
        multitask: one adapter shared by every predictor on the same base model (``True``) or one per predictor.
        train_kwargs: training settings (see :data:`DEFAULT_TRAIN_KWARGS`), or a dict ``{lm: settings}``.
        adapter: the Adapter whose format the records use (default: the one each predictor uses), or ``{lm: adapter}``.
        exclude_demos: leave demos out of the training prompts and clear them from the tuned predictors.
        num_threads: threads for running the teacher (default: ``settings.num_threads``).
        targets: ``"teacher"`` (DSPy's way: train on the teacher's runs that pass the metric) or ``"gold"``:
            train every predictor whose input and output fields are all in the examples straight on the
            examples' gold labels, with no teacher run (``BootstrapFinetune(targets="gold")`` is the one-line
            way to fine-tune from a labelled trainset).
        early_stopping: with a ``valset`` and a metric, score the program on the valset after every epoch, keep
            the weights of the best epoch and stop after this many epochs without a gain (``None``: train all
            epochs, no validation).
    """

    def __init__(self, metric: Callable[..., Any] | None = None, multitask: bool = True,
                 train_kwargs: dict[str, Any] | None = None, adapter: Any = None, exclude_demos: bool = False,
                 num_threads: int | None = None, targets: str = "teacher", early_stopping: int | None = None) -> None:
        super().__init__()
        if targets not in ("teacher", "gold"):
            raise ValueError(f"targets must be 'teacher' or 'gold', got {targets!r}.")
        if early_stopping is not None and (not isinstance(early_stopping, int) or early_stopping < 1):
            raise ValueError(f"early_stopping must be None or a whole number of epochs >= 1, got {early_stopping!r}.")
        self.targets = targets
        self.early_stopping = early_stopping
        self.metric = metric
        self.multitask = multitask
        if train_kwargs is not None and not isinstance(train_kwargs, dict):
            raise OptimizerError("train_kwargs must be a dict of settings or a dict {lm: settings}.")
        self.train_kwargs: dict[Any, Any] = dict(train_kwargs or {})
        for settings_ in (self.train_kwargs.values() if _lm_keyed(self.train_kwargs) else [self.train_kwargs]):
            resolve_train_kwargs(settings_)  # fail early on unknown keys or bad values
        self.adapter = adapter
        self.exclude_demos = exclude_demos
        self.num_threads = num_threads
        self.losses: dict[str, list[float]] = {}
        self.disable_progress = False

    # --- compile ---------------------------------------------------------------------------------
    def compile(self, student: ModuleT, trainset: list[Any] | None = None, teacher: Any = None, *,
                valset: list[Any] | None = None, disable_progress: bool = False, **kwargs: Any) -> ModuleT:
        if kwargs:
            raise OptimizerError(f"BootstrapFinetune.compile got unknown arguments {sorted(kwargs)}.")
        if not trainset:
            raise OptimizerError("BootstrapFinetune needs a non-empty trainset of Examples.")
        if getattr(student, "_compiled", False):
            logger.info("BootstrapFinetune: the student is already compiled; its prompts are kept and new "
                        "adapters are trained on top of its base model.")
        self.disable_progress = disable_progress
        started = time.perf_counter()
        student = student.deepcopy()
        named = student.named_predictors()
        if not named:
            raise OptimizerError("The student has no predictors to fine-tune.")
        base_lms = {name: as_local_lm(p.lm or settings.get("lm"), "BootstrapFinetune") for name, p in named}
        if self.early_stopping is not None and (not valset or self.metric is None):
            raise OptimizerError("BootstrapFinetune(early_stopping=...) scores the program after every epoch: pass "
                                 "compile(..., valset=[...]) and a metric.")
        self._valset = list(valset) if valset else None
        self._validation: dict[str, Any] = {}
        self._student = student
        runs: list[dict[str, Any]] = []
        if self.targets == "gold":
            if teacher is not None:
                raise OptimizerError("BootstrapFinetune(targets='gold') trains on the examples' labels; it takes no "
                                     "teacher. Drop teacher=... or use targets='teacher'.")
            runs = self._gold_runs(named, list(trainset))
        else:
            teachers = teacher if isinstance(teacher, list) else [teacher]
            teachers = [self._prepare_teacher(student, t) for t in teachers]
            for t in teachers:
                runs.extend(self._bootstrap(t, list(trainset)))
        accepted = [r for r in runs if r["accepted"]]
        logger.info("BootstrapFinetune: %d of %d teacher runs accepted by the metric.", len(accepted), len(runs))
        self.history.record(100.0 * len(accepted) / max(1, len(runs)), step=0, accepted=len(accepted),
                            attempted=len(runs))
        if not accepted:
            raise OptimizerError(f"No teacher run of {len(runs)} passed the metric, so there is nothing to fine-tune "
                                 "on. Use a stronger teacher (teacher=...), a more lenient metric, or more examples.")

        predictors = dict(named)
        jobs: dict[str, dict[str, Any]] = {}
        for name, _ in named:
            lm = base_lms[name]
            key = f"lm{id(lm.backend)}" if self.multitask else name
            label = "finetune" if self.multitask else f"finetune_{name}"
            job = jobs.setdefault(key, {"lm": lm, "predictors": [], "steps": [], "name": label})
            job["predictors"].append(name)
        for run in accepted:
            for pname, inputs, outputs in run["trace"]:
                if pname not in predictors:
                    continue
                key = f"lm{id(base_lms[pname].backend)}" if self.multitask else pname
                jobs[key]["steps"].append((pname, inputs, outputs))

        self.losses = {}
        for key, job in jobs.items():
            if not job["steps"]:
                logger.warning("BootstrapFinetune: no accepted trace for %s; left untuned.", job["predictors"])
                continue
            lora = self._train_job(key, job, predictors)
            for pname in job["predictors"]:
                predictor = predictors[pname]
                lora.attach(predictor)
                if self.exclude_demos:
                    predictor.demos = []
        self.search_state = {"accepted": len(accepted), "attempted": len(runs), "losses": dict(self.losses),
                             "validation": dict(self._validation), "targets": self.targets,
                             "seconds": round(time.perf_counter() - started, 2)}
        student._compiled = True
        return student

    # --- steps -----------------------------------------------------------------------------------
    def _prepare_teacher(self, student: Any, teacher: Any) -> Any:
        if teacher is None:
            return student.deepcopy()
        check_same_structure(student, teacher)
        return teacher

    @staticmethod
    def _gold_runs(named: list[tuple[str, Any]], trainset: list[Example]) -> list[dict[str, Any]]:
        """One run per example whose steps are the gold labels of every predictor the example covers."""
        runs = []
        for example in trainset:
            try:
                inputs, labels = dict(example.inputs()), dict(example.labels())
            except Exception as exc:
                raise OptimizerError("BootstrapFinetune(targets='gold') needs Examples with inputs marked "
                                     "(example.with_inputs(...)).") from exc
            steps = []
            for name, predictor in named:
                sig = predictor.signature
                if set(sig.input_fields) <= set(inputs) and set(sig.output_fields) <= set(labels):
                    steps.append((name, {k: inputs[k] for k in sig.input_fields},
                                  {k: labels[k] for k in sig.output_fields}))
            runs.append({"example": example, "accepted": bool(steps), "trace": steps})
        if not any(r["accepted"] for r in runs):
            fields = sorted({k for name, p in named for k in (*p.signature.input_fields, *p.signature.output_fields)})
            raise OptimizerError("BootstrapFinetune(targets='gold'): no predictor has all its input and output fields "
                                 f"({fields}) in the examples' inputs and labels. Use targets='teacher' for programs "
                                 "whose intermediate steps have no gold labels.")
        return runs

    def _bootstrap(self, teacher: Any, trainset: list[Example]) -> list[dict[str, Any]]:
        names = {id(p): name for name, p in teacher.named_predictors()}
        metric = self.metric

        def one(example: Example) -> dict[str, Any]:
            with record() as graph:
                prediction = teacher(**example.inputs())
            trace = graph.trace()
            ok = True
            if metric is not None:
                ok = read_metric(call_metric(metric, example, prediction, trace)).score > 0
            steps = [(names.get(id(p)), dict(inputs), dict(out.items()) if hasattr(out, "items") else {})
                     for p, inputs, out in trace]
            return {"example": example, "accepted": ok, "trace": steps}

        threads = max(1, int(self.num_threads or settings.get("num_threads") or 1))
        executor = ParallelExecutor(num_threads=threads, disable_progress_bar=self.disable_progress,
                                    description="Bootstrap traces")
        results = executor.run(one, trainset)
        if executor.failed_indices:
            logger.warning("BootstrapFinetune: %d teacher runs failed and are skipped.", len(executor.failed_indices))
        return [r for r in results if r is not None]

    def _train_job(self, key: str, job: dict[str, Any], predictors: dict[str, Any]) -> LoRA:
        from ..autograd.sft import finetune_record, tokenize_record

        lm = job["lm"]
        cfg = resolve_train_kwargs(_per_lm(self.train_kwargs, lm))
        adapter = _per_lm(self.adapter, lm)
        lora = LoRA(lm, r=int(cfg["r"]), alpha=float(cfg["alpha"]), dropout=float(cfg["dropout"]),
                    target_modules=tuple(cfg["target_modules"]), name=job["name"], seed=int(cfg["seed"]))
        examples = []
        for pname, inputs, outputs in job["steps"]:
            predictor = predictors[pname]
            rec = finetune_record(predictor, inputs, outputs, adapter=adapter, exclude_demos=self.exclude_demos,
                                  lm=lm)
            ex = tokenize_record(rec, lora, int(cfg["max_length"]), pname)
            if ex is not None:
                examples.append(ex)
        if not examples:
            raise OptimizerError(f"Every fine-tuning record of {job['predictors']} is longer than max_length="
                                 f"{cfg['max_length']} tokens; raise train_kwargs['max_length'].")
        random.Random(int(cfg["seed"])).shuffle(examples)
        logger.info("BootstrapFinetune: training LoRA %r on %d records for %s (%d epochs, lr %g, batch %d).",
                    lora.adapter_name, len(examples), job["predictors"], cfg["epochs"], cfg["learning_rate"],
                    cfg["batch_size"])
        on_epoch_end = self._early_stopper(lora, job, predictors) if self.early_stopping is not None else None
        losses = train_lora(lora, examples, epochs=int(cfg["epochs"]), learning_rate=float(cfg["learning_rate"]),
                            batch_size=int(cfg["batch_size"]), micro_batch_size=int(cfg["micro_batch_size"]),
                            seed=int(cfg["seed"]), weight_decay=float(cfg["weight_decay"]),
                            max_grad_norm=cfg["max_grad_norm"], warmup_ratio=float(cfg["warmup_ratio"]),
                            disable_progress=self.disable_progress, desc=f"Finetune {lora.adapter_name}",
                            on_epoch_end=on_epoch_end)
        if on_epoch_end is not None:
            on_epoch_end.restore_best()  # type: ignore[attr-defined]
        self.losses[lora.adapter_name] = losses
        for i, loss in enumerate(losses, start=1):
            self.history.record(-loss, step=i, loss=loss, adapter=lora.adapter_name)
        return lora

    def _early_stopper(self, lora: LoRA, job: dict[str, Any], predictors: dict[str, Any]) -> Callable[[int], bool]:
        """Score the student with ``lora`` attached after each epoch; keep the best epoch's weights."""
        from ._calls import evaluate_program

        originals = {name: predictors[name].lm for name in job["predictors"]}
        best: dict[str, Any] = {"score": None, "epoch": 0, "tensors": None}
        patience = int(self.early_stopping or 1)
        scores: list[float] = []

        def on_epoch_end(epoch: int) -> bool:
            for name in job["predictors"]:
                lora.attach(predictors[name])
            score = evaluate_program(self._student, self._valset or [], self.metric,
                                     num_threads=self.num_threads, desc="Finetune validation").score
            scores.append(score)
            logger.info("BootstrapFinetune %s: epoch %d validation score %.2f", lora.adapter_name, epoch, score)
            self.history.record(score, step=epoch, split="val", adapter=lora.adapter_name)
            if best["score"] is None or score > best["score"]:
                best.update(score=score, epoch=epoch, tensors=lora.cpu_tensors())
            return epoch - best["epoch"] >= patience

        def restore_best() -> None:
            if best["tensors"] is not None:
                lora.copy_from(best["tensors"])
            for name, lm in originals.items():
                predictors[name].lm = lm
            self._validation[lora.adapter_name] = {
                "scores": scores, "best_epoch": best["epoch"], "best_score": best["score"]}
            logger.info("BootstrapFinetune %s: kept epoch %s (validation %.2f).", lora.adapter_name, best["epoch"],
                        best["score"] if best["score"] is not None else float("nan"))

        on_epoch_end.restore_best = restore_best  # type: ignore[attr-defined]
        return on_epoch_end
