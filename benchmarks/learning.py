"""What the optimizers learn, on data they never saw: every optimizer, several bundled tasks, several seeds.

    python benchmarks/learning.py                                   # default settings (55 min on 2 idle cores)
    python benchmarks/learning.py --optimizers all                  # every optimizer (several hours on 2 cores)
    python benchmarks/learning.py --tasks wine,breast_cancer --optimizers zero_shot,finetune,finetune_search
    python benchmarks/learning.py --quick                           # one seed, small splits: a smoke run

For each task and seed it builds the task's program, optimizes it with each optimizer on the train
split (selecting on the dev split only), and scores the result on the held-out test split. It prints,
per task and optimizer, the mean test score ± its standard error over the seeds, the LM calls the
optimization paid for and the wall time, whether the mean beats zero-shot by more than one standard
error, and the predicted-label distribution of collapsed programs (one label for nearly every
example: such a score only measures that label's share). A PNG plots test score against LM calls.

Seeds change the training examples drawn from the train split (stratified by label on the
classification tasks, so that every label is in the training set in its share), the optimizers'
own seeds and the LoRA initialisation; the dev and test splits stay fixed, so every figure is on the
same test split. Zero-shot uses no training data and decodes at temperature 0, so it is scored once
per task and that score stands for every seed.

The default run (4 optimizers: zero-shot, LabeledFewShot, BootstrapFewShot and gold-label LoRA
with at most 4 epochs and early stopping; 5 tasks; 3 seeds; 16 threads) took 54.7 minutes on 2 idle
cores, the LoRA runs 63% of it. The search optimizers
(BootstrapRS, KNNFewShot, MIPROv2, COPRO, the optuna LoRA search, BetterTogether) each cost 2-10
times more per run; name them with ``--optimizers`` or run ``--optimizers all``.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import textgrad_like as dspy  # noqa: E402
from textgrad_like.datasets.bundled import load_bundled  # noqa: E402
from textgrad_like.optim._calls import count_calls, evaluate_program  # noqa: E402

TASKS = ("classification", "counting", "wine", "breast_cancer", "arithmetic")
ALL = ("zero_shot", "labeled", "bootstrap", "random_search", "knn", "mipro", "copro", "finetune", "finetune_search",
       "better_together")
DEFAULT = ("zero_shot", "labeled", "bootstrap", "finetune")  # 55 min on 2 cores; `--optimizers all` takes hours
OUTPUT_FIELD = {"classification": "label", "counting": "count", "wine": "label", "breast_cancer": "label",
                "arithmetic": "answer"}


def make_program(task: Any) -> Any:
    """The task's program: a typed label for the classification tasks, an int for counting, CoT for arithmetic."""
    if task.name in ("classification", "wine", "breast_cancer"):
        instructions = {
            "classification": "Classify the banking message into one intent.",
            "wine": "Name the cultivar of the wine from its chemical measurements.",
            "breast_cancer": "Say whether the tumour is malignant or benign from its cell-nucleus measurements.",
        }
        inputs = "text" if task.name == "classification" else "features"
        sig = dspy.make_signature(f"{inputs} -> label", instructions[task.name])
        return dspy.Predict(sig.with_updated_fields("label", type_=Literal[tuple(task.labels or [])]))
    if task.name == "counting":
        return dspy.Predict(dspy.make_signature("words, word -> count: int",
                                                "Count how many times the word occurs in the list."))
    return dspy.ChainOfThought("question -> answer")


def proposal_counts(optimizer: Any) -> tuple[int, int] | None:
    """(accepted, tried) instruction proposals of an instruction-search optimizer, else None."""
    stats = (getattr(optimizer, "search_state", None) or {}).get("proposals")
    return (int(stats["accepted"]), int(stats["tried"])) if stats else None


def optimize(name: str, task: Any, train: list[Any], dev: list[Any], seed: int,
             args: argparse.Namespace) -> tuple[Any, Any]:
    """Compile the task's program with optimizer ``name`` (selection on ``dev`` only; never on test);
    returns the program and the optimizer (None for zero-shot and the optuna search)."""
    from textgrad_like.optim.better_together import BetterTogether
    from textgrad_like.optim.bootstrap import BootstrapFewShot
    from textgrad_like.optim.copro import COPRO
    from textgrad_like.optim.finetune import BootstrapFinetune
    from textgrad_like.optim.finetune_search import search_finetune
    from textgrad_like.optim.knn_fewshot import KNNFewShot
    from textgrad_like.optim.labeled_fewshot import LabeledFewShot
    from textgrad_like.optim.mipro import MIPROv2
    from textgrad_like.optim.random_search import BootstrapRS

    metric, student, k = task.metric, make_program(task), args.demos
    train_kwargs = {"epochs": args.epochs, "learning_rate": args.lr, "batch_size": 4, "r": 8, "seed": seed}
    if name == "zero_shot":
        return student, None
    if name == "labeled":
        labeled = LabeledFewShot(k=k)
        return labeled.compile(student, trainset=random.Random(seed).sample(train, len(train))), labeled
    if name == "bootstrap":
        bootstrap = BootstrapFewShot(metric=metric, max_bootstrapped_demos=k, max_labeled_demos=k)
        return bootstrap.compile(student, trainset=train, num_threads=args.threads), bootstrap
    if name == "random_search":
        search = BootstrapRS(metric=metric, max_bootstrapped_demos=k, max_labeled_demos=k,
                             num_candidate_programs=args.candidates, num_threads=args.threads)
        return search.compile(student, trainset=train, valset=dev), search
    if name == "knn":
        knn = KNNFewShot(k=k, trainset=train, max_bootstrapped_demos=k, max_labeled_demos=k)
        return knn.compile(student, trainset=train), knn
    if name == "mipro":
        mipro = MIPROv2(metric=metric, auto=None, num_candidates=args.candidates, max_bootstrapped_demos=k,
                        max_labeled_demos=k, num_threads=args.threads, seed=seed)
        return mipro.compile(student, trainset=train, valset=dev, num_trials=args.trials, minibatch=False,
                             view_data_batch_size=5), mipro
    if name == "copro":
        copro = COPRO(metric=metric, breadth=max(2, args.candidates), depth=2, seed=seed)
        return copro.compile(student, trainset=dev, eval_kwargs={"num_threads": args.threads}), copro
    if name == "finetune":
        finetune = BootstrapFinetune(metric=metric, targets="gold", early_stopping=args.patience,
                                     train_kwargs=train_kwargs, num_threads=args.threads)
        return finetune.compile(student, trainset=train, valset=dev, disable_progress=True), finetune
    if name == "finetune_search":
        return search_finetune(student, train, dev, metric, n_trials=args.search_trials, seed=seed,
                               train_kwargs={"batch_size": 4}, num_threads=args.threads).program, None
    if name == "better_together":
        weights = BootstrapFinetune(metric=metric, targets="gold", early_stopping=args.patience,
                                    train_kwargs=train_kwargs, num_threads=args.threads)
        together = BetterTogether(metric=metric, prompt_optimizer=LabeledFewShot(k=k), weight_optimizer=weights,
                                  seed=seed)
        return together.compile(student, trainset=train, valset=dev, strategy="auto",
                                num_threads=args.threads), together
    raise SystemExit(f"unknown optimizer {name!r}; choose from {', '.join(ALL)}")


def training_sample(task: Any, field: str, size: int, seed: int) -> list[Any]:
    """``size`` training examples drawn with ``seed``: stratified by label on the classification tasks
    (each label in proportion to its share of the train split), a plain random sample otherwise."""
    pool = list(task.train)
    size = min(size, len(pool))
    rng = random.Random(seed)
    if not task.labels:
        return rng.sample(pool, size)
    by_label: dict[str, list[Any]] = {}
    for example in pool:
        by_label.setdefault(str(getattr(example, field)), []).append(example)
    chosen: list[Any] = []
    for label in sorted(by_label):
        members = by_label[label]
        rng.shuffle(members)
        chosen += members[:max(1, round(size * len(members) / len(pool)))]
    rng.shuffle(chosen)
    return chosen[:size]


def mean_se(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return mean, se


def label_counts(predictions: list[Any], field: str) -> Counter[str]:
    return Counter(str(getattr(p, field, None)) if p is not None else "<failed>" for p in predictions)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma list from {', '.join(TASKS)}")
    parser.add_argument("--optimizers", default=",".join(DEFAULT), help=f"comma list from {', '.join(ALL)}, or all")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--lm", default="local/embedded")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--train-size", type=int, default=40, help="training examples drawn per seed")
    parser.add_argument("--dev-size", type=int, default=20, help="validation examples (selection only)")
    parser.add_argument("--test-size", type=int, default=60, help="held-out test examples (reported only)")
    parser.add_argument("--demos", type=int, default=4)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--trials", type=int, default=6, help="MIPROv2 trials")
    parser.add_argument("--epochs", type=int, default=4, help="max LoRA epochs (early stopping on dev)")
    parser.add_argument("--patience", type=int, default=2, help="LoRA epochs without a better dev score before stopping")
    parser.add_argument("--lr", type=float, default=5e-3, help="LoRA learning rate (finetune, better_together)")
    parser.add_argument("--search-trials", type=int, default=4, help="optuna trials of finetune_search")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="one seed, 12 train / 12 dev / 20 test")
    parser.add_argument("--out", default="benchmarks/results/learning.png")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.train_size, args.dev_size, args.test_size, args.search_trials = "0", 12, 12, 20, 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    lm = dspy.LM(args.lm, temperature=0.0, max_tokens=args.max_tokens)
    # a reply the adapter cannot parse is the model's failure, scored 0 like a wrong answer; it must not
    # stop the run (the default stops after 10 failures, e.g. chain-of-thought cut off by --max-tokens)
    dspy.configure(lm=lm, num_threads=args.threads,
                   max_errors=max(args.train_size, args.dev_size, args.test_size))
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    names = list(ALL) if args.optimizers == "all" else [n.strip() for n in args.optimizers.split(",") if n.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.time()
    print(f"lm={args.lm} seeds={seeds} train={args.train_size} dev={args.dev_size} test={args.test_size} "
          f"(scores: mean test accuracy % ± one standard error over seeds; selection on dev only)")
    points: dict[str, list[tuple[float, float]]] = {}
    for task_name in tasks:
        task = load_bundled(task_name)
        dev, test = task.dev[: args.dev_size], task.test[: args.test_size]
        field = OUTPUT_FIELD[task_name]
        results: dict[str, dict[str, list[float]]] = {}
        zero_shot_outcome = None
        for seed in seeds:
            train = training_sample(task, field, args.train_size, seed)
            for name in names:
                t0 = time.time()
                row = results.setdefault(name, {"score": [], "calls": [], "seconds": [], "collapsed": []})
                if name == "zero_shot" and zero_shot_outcome is not None:
                    outcome, paid = zero_shot_outcome, 0  # no training data, temperature 0: the same every seed
                else:
                    with count_calls() as calls:
                        program, optimizer = optimize(name, task, train, dev, seed, args)
                    paid = calls.calls
                    proposals = proposal_counts(optimizer)
                    if proposals is not None:
                        row.setdefault("proposals", []).append(proposals)
                    outcome = evaluate_program(program, test, task.metric, num_threads=args.threads)
                    if name == "zero_shot":
                        zero_shot_outcome = outcome
                row["score"].append(outcome.score)
                row["calls"].append(paid)
                row["seconds"].append(time.time() - t0)
                counts = label_counts(outcome.predictions, field)
                top, top_n = counts.most_common(1)[0]
                collapsed = top_n >= 0.9 * len(test)
                row["collapsed"].append(collapsed)
                print(f"  {task_name} seed {seed} {name:>15}: test {outcome.score:5.1f}  LM calls {paid:5d}  "
                      f"{time.time() - t0:6.0f}s" + (f"  COLLAPSED: {top!r} for {top_n}/{len(test)}" if collapsed
                                                     else ""), flush=True)
        zero = mean_se(results["zero_shot"]["score"]) if "zero_shot" in results else None
        print(f"\n{task_name} (test {len(test)}):")
        print(f"  {'optimizer':>15}  {'test %':>13}  {'LM calls':>9}  {'seconds':>8}  collapsed  "
              "beats zero-shot by > 1 SE (a collapsed run only measures one label's share)")
        for name, row in results.items():
            mean, se = mean_se(row["score"])
            verdict = ""
            if zero is not None and name != "zero_shot":
                verdict = "yes" if mean - zero[0] > max(se, zero[1]) else "no"
            collapsed = f"{sum(row['collapsed'])}/{len(row['collapsed'])}"
            proposals = row.get("proposals")
            screened = (f"  instructions accepted/tried {sum(a for a, _ in proposals)}/{sum(t for _, t in proposals)}"
                        if proposals else "")
            print(f"  {name:>15}  {mean:6.1f} ± {se:4.1f}  {statistics.fmean(row['calls']):9.0f}  "
                  f"{statistics.fmean(row['seconds']):8.0f}  {collapsed:>9}  {verdict}{screened}")
            points.setdefault(name, []).append((statistics.fmean(row["calls"]), mean))
    print(f"\ntotal time {time.time() - started:.0f}s")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, pts in points.items():
            ax.scatter([max(1.0, c) for c, _ in pts], [s for _, s in pts], label=name)
        ax.set_xscale("log")
        ax.set_xlabel("LM calls paid by the optimization (log)")
        ax.set_ylabel("held-out test accuracy %")
        ax.set_title(f"score against LM calls ({', '.join(tasks)})")
        ax.legend(fontsize=7)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.out, dpi=110, bbox_inches="tight")
        print(f"plot: {args.out}")
    except ImportError as exc:
        print(f"no plot ({exc})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
