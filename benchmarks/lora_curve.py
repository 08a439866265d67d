"""Gold-label LoRA on the tabular tasks, epoch by epoch: how far the embedded model's weights get.

    python benchmarks/lora_curve.py [--tasks wine,breast_cancer] [--epochs 8] [--lr 5e-3] [--seed 0]

For each task it fine-tunes a LoRA adapter on the gold labels of the train split (40 examples)
for ``--epochs`` epochs without stopping early, scores the dev split after every epoch (the
curve), keeps the best dev epoch and scores that on the held-out test split. It also prints the
predicted-label distribution on test, since a score equal to one label's share means the adapter
collapsed rather than learned. Prints one line per epoch and a summary; the figures in the closing
notes of the learning issue come from here.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from learning import OUTPUT_FIELD, label_counts, make_program  # noqa: E402

import textgrad_like as dspy  # noqa: E402
from textgrad_like.datasets.bundled import load_bundled  # noqa: E402
from textgrad_like.optim._calls import evaluate_program  # noqa: E402
from textgrad_like.optim.finetune import BootstrapFinetune  # noqa: E402

BATCH_SIZE = 4


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="wine,breast_cancer")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dev-size", type=int, default=30)
    parser.add_argument("--test-size", type=int, default=90)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    dspy.configure(lm=dspy.LM("local/embedded", temperature=0.0, max_tokens=32), num_threads=args.threads,
                   max_errors=max(args.dev_size, args.test_size))  # an unparsable reply scores 0, never stops the run
    for name in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        task = load_bundled(name)
        dev, test = task.dev[: args.dev_size], task.test[: args.test_size]
        started = time.time()
        optimizer = BootstrapFinetune(metric=task.metric, targets="gold", early_stopping=args.epochs,
                                      train_kwargs={"epochs": args.epochs, "learning_rate": args.lr, "r": args.r,
                                                    "batch_size": BATCH_SIZE, "seed": args.seed},
                                      num_threads=args.threads)
        program = optimizer.compile(make_program(task), trainset=list(task.train), valset=dev, disable_progress=True)
        curve = [(row["step"], row["score"]) for row in optimizer.history.rows if row.get("split") == "val"]
        losses = next(iter(optimizer.losses.values()), [])  # one per optimizer step
        per_epoch = math.ceil(len(task.train) / BATCH_SIZE)
        for epoch, score in curve:
            steps = losses[(epoch - 1) * per_epoch:epoch * per_epoch]
            mean = sum(steps) / len(steps) if steps else float("nan")
            print(f"{name} lr {args.lr:g} epoch {epoch}: mean train loss {mean:.3f}  dev {score:5.1f}")
        outcome = evaluate_program(program, test, task.metric, num_threads=args.threads)
        counts = label_counts(outcome.predictions, OUTPUT_FIELD[name])
        best = max(curve, key=lambda item: item[1]) if curve else (None, None)
        print(f"{name}: kept epoch {best[0]} (dev {best[1]}), test {outcome.score:.1f}% on {len(test)} "
              f"(predicted labels {dict(counts)}), {time.time() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
