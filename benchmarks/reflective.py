"""GEPA and SIMBA on a bundled task with the embedded model, compared with the zero-shot program.

    python benchmarks/reflective.py                      # both optimizers, default sizes (~15 min, 2 cores)
    python benchmarks/reflective.py --only gepa --budget 60
    python benchmarks/reflective.py --compare-engines    # GEPA's native loop vs the gepa package, same task

Prints, for each method, the test score, the metric calls spent and the wall time. The task model
and the reflection model are both ``LM("local/embedded")`` unless ``--model`` names another.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any, Literal

import textgrad_like as dspy
from textgrad_like.datasets.bundled import CLASSIFICATION_LABELS, label_match, load_bundled
from textgrad_like.optim.gepa import GEPA
from textgrad_like.optim.simba import SIMBA


def feedback_metric(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> Any:
    ok = label_match(gold, pred)
    got = getattr(pred, "label", "")
    if ok:
        return dspy.Prediction(score=1.0, feedback=f"Correct: the label is {gold.label}.")
    return dspy.Prediction(score=0.0, feedback=(
        f"Wrong: answered {got!r}, but the message {gold.text!r} has label {gold.label!r}. The label must be "
        f"exactly one of {', '.join(CLASSIFICATION_LABELS)}."))


def plain_metric(gold: Any, pred: Any, trace: Any = None) -> float:
    return float(label_match(gold, pred))


def make_program() -> Any:
    """The label is typed with the task's intents (so constrained decoding can only emit one of them);
    the instruction starts vague, which is what the optimizers improve."""
    labels = tuple(load_bundled("classification").labels)
    sig = dspy.Signature("text -> label", "Answer.").with_updated_fields("label", type_=Literal[labels])
    return dspy.Predict(sig)


def test_score(program: Any, testset: list[Any], threads: int) -> float:
    result = dspy.Evaluate(devset=testset, metric=plain_metric, num_threads=threads)(program)
    return float(result.score)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="local/embedded")
    ap.add_argument("--task", default="classification")
    ap.add_argument("--n-train", type=int, default=16)
    ap.add_argument("--n-val", type=int, default=8)
    ap.add_argument("--n-test", type=int, default=30)
    ap.add_argument("--budget", type=int, default=60, help="GEPA max_metric_calls")
    ap.add_argument("--simba-bsize", type=int, default=6)
    ap.add_argument("--simba-candidates", type=int, default=3)
    ap.add_argument("--simba-steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=["gepa", "simba"], default=None)
    ap.add_argument("--compare-engines", action="store_true")
    ap.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    lm = dspy.LM(args.model, temperature=0.0, max_tokens=24)
    reflection_lm = dspy.LM(args.model, temperature=0.0, max_tokens=160)
    dspy.configure(lm=lm, num_threads=args.threads)
    task = load_bundled(args.task)
    train, val = task.train[: args.n_train], task.dev[: args.n_val]
    testset = task.test[: args.n_test]
    figures: dict[str, Any] = {"task": args.task, "model": args.model, "train": len(train), "val": len(val),
                               "test": len(testset)}

    def report(name: str, score: float, metric_calls: int | None, seconds: float, **extra: Any) -> None:
        calls = "-" if metric_calls is None else str(metric_calls)
        sys.stdout.write(f"{name:<22} test {score:6.2f}%   metric calls {calls:>5}   {seconds:7.1f}s\n")
        sys.stdout.flush()
        figures[name] = {"test": score, "metric_calls": metric_calls, "seconds": round(seconds, 1), **extra}

    t = time.time()
    report("zero-shot", test_score(make_program(), testset, args.threads), None, time.time() - t)

    engines = ["native", "gepa"] if args.compare_engines else ["native"]
    if args.only in (None, "gepa"):
        for engine in engines:
            t = time.time()
            opt = GEPA(feedback_metric, max_metric_calls=args.budget, reflection_lm=reflection_lm, track_stats=True,
                       num_threads=args.threads, engine=engine, reflection_minibatch_size=3)
            best = opt.compile(make_program(), trainset=train, valset=val)
            d = best.detailed_results
            report(f"GEPA[{engine}]", test_score(best, testset, args.threads), d.total_metric_calls, time.time() - t,
                   val=max(d.val_aggregate_scores), candidates=len(d.candidates),
                   instruction=best.instruction.value[:400])
    if args.only in (None, "simba") and not args.compare_engines:
        t = time.time()
        opt = SIMBA(metric=plain_metric, bsize=args.simba_bsize, num_candidates=args.simba_candidates,
                    max_steps=args.simba_steps, max_demos=3, num_threads=args.threads, prompt_model=reflection_lm)
        best = opt.compile(make_program(), trainset=train, seed=0)
        report("SIMBA", test_score(best, testset, args.threads), best.metric_calls, time.time() - t,
               train=best.score, demos=len(best.demos), instruction=best.instruction.value[:400])
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
