"""Benchmark BootstrapFinetune on CPU (or GPU): metric before/after LoRA fine-tuning, and wall time.

Run: ``python benchmarks/finetune.py [--train 8] [--eval 8] [--eval-split train|dev] [--epochs 5] [--lr 5e-3]``.
The default scores the examples it trains on (in-sample); ``--eval-split dev`` scores held-out ones.
The LM cache is off, so every call is really made.

Task: the bundled ``classification`` task (banking intents), signature ``text -> label`` with the
label typed as a ``Literal`` of the five intents, JSONAdapter (so the local model's constrained
decoding always yields a valid label). The student is the embedded SmolLM2-135M, zero-shot. The
teacher answers every training example correctly (a scripted DummyLM standing in for a strong
model), so the run measures distillation of the teacher's labels into a LoRA adapter of the student.
Prints the metric before and after, the training losses and the wall time of each phase.
"""

from __future__ import annotations

import argparse
import time
from typing import Literal


def build(labels: list[str]) -> type:
    import textgrad_like as dspy
    from textgrad_like.signatures import InputField, OutputField, make_signature

    label_type = Literal[tuple(labels)]  # type: ignore[valid-type]
    intent = make_signature({"text": (str, InputField()), "label": (label_type, OutputField())},
                            "Classify the intent of a banking customer's message.", signature_name="Intent")

    class Classifier(dspy.Module):
        def __init__(self) -> None:
            self.predict = dspy.Predict(intent)

        def forward(self, text: str) -> dspy.Prediction:
            return self.predict(text=text)

    return Classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="local/embedded")
    parser.add_argument("--device", default=None)
    parser.add_argument("--train", type=int, default=8)
    parser.add_argument("--eval", type=int, default=8)
    parser.add_argument("--eval-split", choices=["train", "dev"], default="train")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    import textgrad_like as dspy
    from textgrad_like.adapters import JSONAdapter
    from textgrad_like.datasets.bundled import label_match, load_bundled
    from textgrad_like.lm import LM
    from textgrad_like.optim._calls import evaluate_program
    from textgrad_like.optim.finetune import BootstrapFinetune
    from textgrad_like.utils import DummyLM

    task = load_bundled("classification")
    trainset = task.train[: args.train]
    evalset = trainset[: args.eval] if args.eval_split == "train" else task.dev[: args.eval]
    classifier = build(list(task.labels or []))

    started = time.perf_counter()
    lm = LM(args.model, temperature=0.0, max_tokens=24, device=args.device, cache=False).load()
    load_s = time.perf_counter() - started
    dspy.configure(lm=lm, adapter=JSONAdapter(use_response_format=True), num_threads=args.threads)
    student = classifier()
    student.predict.lm = lm

    started = time.perf_counter()
    before = evaluate_program(student, evalset, label_match, num_threads=args.threads)
    eval_s = time.perf_counter() - started

    teacher = classifier()
    teacher.predict.lm = DummyLM({ex.text: {"label": ex.label} for ex in trainset})
    optimizer = BootstrapFinetune(metric=label_match, train_kwargs={
        "epochs": args.epochs, "learning_rate": args.lr, "batch_size": args.batch_size,
        "micro_batch_size": args.batch_size, "r": args.r, "alpha": 2 * args.r})
    started = time.perf_counter()
    tuned = optimizer.compile(student, trainset=trainset, teacher=teacher)
    tune_s = time.perf_counter() - started

    after = evaluate_program(tuned, evalset, label_match, num_threads=args.threads)
    losses = [round(x, 4) for xs in optimizer.losses.values() for x in xs]
    print(f"model: {args.model}  load {load_s:.1f} s")
    print(f"trainset {len(trainset)}, eval on {args.eval_split} ({len(evalset)}), epochs {args.epochs}, "
          f"lr {args.lr}, batch {args.batch_size}, r {args.r}")
    print(f"metric before: {before.score:.1f}%   after: {after.score:.1f}%")
    print(f"training losses per step: {losses}")
    print(f"wall time: eval {eval_s:.1f} s, bootstrap+finetune {tune_s:.1f} s")


if __name__ == "__main__":
    main()
