"""Benchmark the search optimizers on a bundled task with the embedded local model.

    python benchmarks/optimizers.py                       # the README figures (about 10 min on 2 cores)
    python benchmarks/optimizers.py --optimizers all --val-size 40 --train-size 30 --trials 10
    python benchmarks/optimizers.py --optimizers bootstrap,mipro --lm openai/gpt-4o-mini
    python benchmarks/optimizers.py --optimizers copro --typed-label --candidates 6 --temperature 1.0 --test-size 30

``--typed-label`` declares the intent as a ``Literal`` (the instruction then only has to say what to
do, the type lists the intents); ``--test-size`` adds a held-out score no optimizer saw.

For each optimizer it prints the zero-shot score, the optimized score on the valset and the LM
calls the optimization paid for, and writes a training curve (best score against LM calls, all
optimizers on one figure) with ``RunHistory.plot``.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import textgrad_like as dspy  # noqa: E402
from textgrad_like.datasets.bundled import load_bundled  # noqa: E402
from textgrad_like.optim._calls import count_calls, evaluate_program  # noqa: E402
from textgrad_like.optim.bootstrap import BootstrapFewShot  # noqa: E402
from textgrad_like.optim.copro import COPRO  # noqa: E402
from textgrad_like.optim.ensemble import Ensemble  # noqa: E402
from textgrad_like.optim.knn_fewshot import KNNFewShot  # noqa: E402
from textgrad_like.optim.labeled_fewshot import LabeledFewShot  # noqa: E402
from textgrad_like.optim.mipro import MIPROv2  # noqa: E402
from textgrad_like.optim.random_search import BootstrapRS  # noqa: E402
from textgrad_like.primitives import RunHistory  # noqa: E402

ALL = ("labeled", "bootstrap", "random_search", "knn", "mipro", "copro", "ensemble")
DEFAULT = ("labeled", "bootstrap", "random_search", "knn", "mipro", "ensemble")


def make_program(task: Any, args: argparse.Namespace) -> Any:
    if task.name == "classification" and args.bare_signature:
        # what `dspy.Predict("text -> label")` gives: the signature's default instruction, nothing about the intents
        return dspy.Predict("text -> label")
    if task.name == "classification":
        if args.typed_label:
            # the label is a Literal: the adapter (and constrained decoding) keep it to one of the intents
            sig = dspy.make_signature("text -> label", "Classify the banking message into one intent.")
            return dspy.Predict(sig.with_updated_fields("label", type_=Literal[tuple(task.labels or [])]))
        labels = ", ".join(task.labels or [])
        sig = dspy.make_signature("text -> label", f"Classify the banking message into one intent: {labels}.")
        return dspy.Predict(sig)
    return dspy.ChainOfThought("question -> answer")


def run_one(name: str, args: argparse.Namespace, task: Any, train: list[Any], val: list[Any]) -> tuple[Any, Any]:
    metric = task.metric
    student = make_program(task, args)
    if name == "labeled":
        opt: Any = LabeledFewShot(k=args.demos)
        return opt, opt.compile(student, trainset=train)
    if name == "bootstrap":
        opt = BootstrapFewShot(metric=metric, max_bootstrapped_demos=args.demos, max_labeled_demos=args.demos)
        return opt, opt.compile(student, trainset=train, num_threads=args.threads)
    if name == "random_search":
        opt = BootstrapRS(metric=metric, max_bootstrapped_demos=args.demos, max_labeled_demos=args.demos,
                          num_candidate_programs=args.candidates, num_threads=args.threads)
        return opt, opt.compile(student, trainset=train, valset=val, checkpoint_dir=args.checkpoint_dir)
    if name == "mipro":
        opt = MIPROv2(metric=metric, auto=None, num_candidates=args.candidates, max_bootstrapped_demos=args.demos,
                      max_labeled_demos=args.demos, num_threads=args.threads, seed=args.seed)
        return opt, opt.compile(student, trainset=train, valset=val, num_trials=args.trials, minibatch=False,
                                view_data_batch_size=5, checkpoint_dir=args.checkpoint_dir)
    if name == "knn":
        opt = KNNFewShot(k=args.demos, trainset=train, max_bootstrapped_demos=args.demos, max_labeled_demos=args.demos)
        return opt, opt.compile(student, trainset=train)
    if name == "ensemble":
        # an ensemble of labeled few-shot programs, each with demos from a different shuffle, majority vote
        programs = [LabeledFewShot(k=args.demos).compile(make_program(task, args),
                                                         trainset=random.Random(i).sample(train, len(train)),
                                                         sample=False)
                    for i in range(max(3, args.candidates))]
        opt = Ensemble(reduce_fn=dspy.majority)
        return opt, opt.compile(programs)
    if name == "copro":
        opt = COPRO(metric=metric, breadth=max(2, args.candidates), depth=args.depth,
                    init_temperature=args.temperature, num_examples=args.copro_examples, seed=args.seed)
        return opt, opt.compile(student, trainset=val, eval_kwargs={"num_threads": args.threads})
    raise SystemExit(f"unknown optimizer {name!r}; choose from {', '.join(ALL)}")


def held_out(program: Any, test: list[Any], task: Any, args: argparse.Namespace) -> str:
    """`` [test 43.3]`` for a held-out split (not seen by any optimizer), or ``""`` when there is none."""
    if not test:
        return ""
    return f"  [test {evaluate_program(program, test, task.metric, num_threads=args.threads).score:.1f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="classification", help="bundled task (classification, arithmetic)")
    parser.add_argument("--lm", default="local/embedded", help="model name for LM(...)")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--optimizers", default=",".join(DEFAULT), help=f"comma list from {', '.join(ALL)}, or all")
    parser.add_argument("--train-size", type=int, default=20)
    parser.add_argument("--val-size", type=int, default=30)
    parser.add_argument("--demos", type=int, default=4, help="max bootstrapped / labeled demos")
    parser.add_argument("--candidates", type=int, default=6, help="candidate programs / instructions")
    parser.add_argument("--trials", type=int, default=8, help="MIPROv2 trials")
    parser.add_argument("--threads", type=int, default=8, help="concurrent calls (the local model batches them)")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--test-size", type=int, default=30,
                        help="also score zero-shot and each optimized program on this many held-out test examples")
    parser.add_argument("--typed-label", action="store_true",
                        help="classification: declare the label as a Literal of the intents instead of listing them")
    parser.add_argument("--bare-signature", action="store_true",
                        help="classification: start from Predict('text -> label') with no written instruction")
    parser.add_argument("--temperature", type=float, default=1.4, help="COPRO proposal temperature")
    parser.add_argument("--depth", type=int, default=2, help="COPRO rounds")
    parser.add_argument("--copro-examples", type=int, default=3, help="trainset examples each COPRO proposal sees")
    parser.add_argument("--checkpoint-dir", default=None)
    parser.add_argument("--out", default="benchmarks/results/optimizers_curve.png")
    parser.add_argument("--lm-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="extra LM(...) argument, e.g. --lm-arg device=cuda (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="use a scripted DummyLM (checks the pipeline only)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("textgrad_like.optim").setLevel(logging.INFO)

    task = load_bundled(args.task)
    train, val = task.train[: args.train_size], task.dev[: args.val_size]
    test = task.test[: args.test_size]
    if args.dry_run:
        from textgrad_like.utils.dummies import DummyLM

        lm: Any = DummyLM({"": {"label": (task.labels or ["x"])[0], "answer": "0", "reasoning": "-",
                                "notes": "-", "summary": "-", "program_description": "-",
                                "module_description": "-", "proposed_instruction": "Classify carefully.",
                                "proposed_prefix_for_output_field": "Label:"}})
    else:
        extra = dict(item.split("=", 1) for item in args.lm_arg)
        lm = dspy.LM(args.lm, temperature=0.0, max_tokens=args.max_tokens, **extra)
    dspy.configure(lm=lm, num_threads=args.threads)

    start = time.time()
    with count_calls() as zero_calls:
        zero = evaluate_program(make_program(task, args), val, task.metric, num_threads=args.threads).score
    zero_test = held_out(make_program(task, args), test, task, args)
    print(f"task={task.name} lm={args.lm} train={len(train)} val={len(val)} test={len(test)} "
          f"typed_label={args.typed_label} bare_signature={args.bare_signature}")
    print(f"zero-shot: {zero:.1f}{zero_test}  ({zero_calls.calls} LM calls, {time.time() - start:.0f}s)")
    histories: dict[str, RunHistory] = {}
    rows = []
    names = ALL if args.optimizers == "all" else [n.strip() for n in args.optimizers.split(",") if n.strip()]
    for name in names:
        t0 = time.time()
        with count_calls() as calls:
            opt, compiled = run_one(name, args, task, train, val)
        paid = calls.calls
        score = evaluate_program(compiled, val, task.metric, num_threads=args.threads).score
        rows.append((name, zero, score, paid, time.time() - t0))
        print(f"{name:>14}: zero-shot {zero:5.1f} -> optimized {score:5.1f}  LM calls {paid:5d}  "
              f"({time.time() - t0:.0f}s){held_out(compiled, test, task, args)}")
        if name in ("copro", "mipro"):
            print(f"{'':>14}  instruction: {compiled.predictors()[0].signature.instructions[:160]!r}")
        history = RunHistory(name)
        for row in opt.history.rows:
            history.record(row["score"], step=row["step"], lm_calls=row["lm_calls"], tokens=row["tokens"])
        if not len(history):
            history.record(score, step=0, lm_calls=paid)
        histories[name] = history
    if histories:
        first, *others = histories
        try:
            path = histories[first].plot(args.out, title=f"{task.name}: best valset score vs LM calls",
                                         others={k: histories[k] for k in others})
            print(f"curve: {path}")
        except dspy.errors.ConfigurationError as exc:
            print(f"no curve written: {exc}")
    print(f"total time {time.time() - start:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
