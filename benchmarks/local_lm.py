"""Benchmark the in-process local LM; every ratio is measured within this one run.

    python benchmarks/local_lm.py [--model local/embedded] [--calls 16] [--max-tokens 32]
                                  [--examples 90] [--demos 8] [--threads 8] [--no-cold] [--json FILE]

Prints, in order:

1. cold and warm load + first call, each in a fresh process (the cold one with an empty cache
   folder, so the GGUF file is converted and the numeric mode measured; the warm one reads the
   converted weights back), wall and CPU seconds;
2. the numeric mode chosen on this machine (and the step times it was chosen from);
3. single-stream tokens/s (one 64-token call);
4. ``--calls`` calls one at a time vs all at once (continuous batching): tokens/s and the ratio;
5. a few-shot classification ``Evaluate`` (``--demos`` demos, ``--examples`` examples,
   ``--threads`` threads) with the shared-prefix KV reuse off and on: wall time and the ratio.

Every call uses ``cache=False``; throughput counts the completion tokens the model produced. The
machine's load average is printed first: on a shared machine, compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_LOAD_SNIPPET = """
import json, sys, time
started = time.perf_counter()
from textgrad_like.lm import LM
lm = LM({model!r}, temperature=0.0, max_tokens=16, cache=False).load()
loaded = time.perf_counter()
lm("Name a color.")
done = time.perf_counter()
b = lm.backend
print(json.dumps({{"load_s": loaded - started, "first_call_s": done - loaded, "total_s": done - started,
                  "from_cache": b.loaded.from_cache, "mode": b.mode, "numerics": b.loaded.numerics}}))
"""

POSITIVE = ["wonderful", "delightful", "excellent", "fantastic", "lovely", "brilliant", "superb", "great", "charming"]
NEGATIVE = ["awful", "terrible", "boring", "dreadful", "horrible", "disappointing", "bland", "poor", "annoying"]
THINGS = ["movie", "meal", "hotel", "concert", "book", "game", "phone", "service", "trip", "show", "class"]


def reviews(n: int, offset: int = 0) -> list[tuple[str, str]]:
    out = []
    for i in range(offset, offset + n):
        label = "positive" if i % 2 == 0 else "negative"
        words = POSITIVE if label == "positive" else NEGATIVE
        out.append((f"The {THINGS[i % len(THINGS)]} was {words[(i // 2) % len(words)]}, review {i}.", label))
    return out


def load_in_fresh_process(model: str, cache_dir: str) -> dict[str, Any]:
    env = dict(os.environ, TEXTGRAD_LIKE_CACHEDIR=cache_dir, TEXTGRAD_LIKE_DISK_CACHE="0")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([sys.executable, "-c", _LOAD_SNIPPET.format(model=model)], capture_output=True, text=True,
                         env=env, cwd=str(Path(__file__).resolve().parent.parent), check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def timed_calls(lm: Any, prompts: list[str], concurrent: bool) -> tuple[int, float]:
    mark = len(lm.history)
    started = time.perf_counter()
    if concurrent:
        threads = [threading.Thread(target=lm, args=(p,)) for p in prompts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for p in prompts:
            lm(p)
    seconds = time.perf_counter() - started
    tokens = sum(e["usage"]["completion_tokens"] for e in list(lm.history)[mark:])
    return tokens, seconds


def few_shot_evaluate(lm: Any, demos: int, examples: int, threads: int) -> tuple[float, float]:
    import textgrad_like as dspy

    class Sentiment(dspy.Signature):
        """Classify the sentiment of a short review."""

        review: str = dspy.InputField()
        sentiment: Literal["positive", "negative"] = dspy.OutputField()

    program = dspy.Predict(Sentiment)
    program.demos = [dspy.Example(review=r, sentiment=s) for r, s in reviews(demos, offset=1000)]
    devset = [dspy.Example(review=r, sentiment=s).with_inputs("review") for r, s in reviews(examples)]
    evaluate = dspy.Evaluate(devset=devset, metric=lambda ex, pred, trace=None: ex.sentiment == pred.sentiment,
                             num_threads=threads)
    started = time.perf_counter()
    with dspy.context(lm=lm):
        result = evaluate(program)
    return time.perf_counter() - started, float(result.score)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/embedded")
    parser.add_argument("--calls", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--examples", type=int, default=90)
    parser.add_argument("--demos", type=int, default=8)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--device", default=None)
    parser.add_argument("--no-cold", action="store_true", help="skip the fresh-process cold/warm load")
    parser.add_argument("--json", default=None, help="also write every figure to this file")
    args = parser.parse_args()
    report: dict[str, Any] = {"loadavg": os.getloadavg(), "cpus": os.cpu_count()}
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")

    if not args.no_cold:
        with tempfile.TemporaryDirectory(prefix="tgl-bench-") as cache_dir:
            cold = load_in_fresh_process(args.model, cache_dir)
            warm = load_in_fresh_process(args.model, cache_dir)
        report.update(cold=cold, warm=warm)
        for name, r in (("cold", cold), ("warm", warm)):
            print(f"{name} load + first call: {r['total_s']:.1f} s wall ({r['load_s']:.1f} s load, "
                  f"{r['first_call_s']:.1f} s first call), {r['cpu_s']:.1f} s CPU, weights from cache: {r['from_cache']}")
        print(f"numeric mode measured by the cold load: {cold['mode']} ({cold['numerics']})")

    from textgrad_like.lm import LM

    started = time.perf_counter()
    lm = LM(args.model, temperature=0.0, max_tokens=args.max_tokens, cache=False, device=args.device,
            max_batch_size=max(16, args.calls)).load()
    backend = lm.backend
    report["load_in_process_s"] = time.perf_counter() - started
    report["mode"] = backend.mode
    report["numerics"] = backend.loaded.numerics
    print(f"load in this process: {report['load_in_process_s']:.1f} s; numeric mode: {backend.mode} "
          f"(measured: {backend.loaded.numerics or 'earlier, remembered in the cache folder'})")
    lm("Warm up.", max_tokens=4)

    tokens, seconds = timed_calls(lm, ["Write a long story about a dragon who learns to cook."], False)
    report["single_stream_tok_s"] = tokens / seconds
    print(f"single stream: {tokens} tokens in {seconds:.2f} s -> {tokens / seconds:.1f} tok/s "
          f"({1000 * seconds / max(1, tokens):.0f} ms/token, prefill included)")

    prompts = [f"Tell me one fact about the number {i}." for i in range(args.calls)]
    seq_tokens, seq_s = timed_calls(lm, prompts, False)
    prompts = [f"Tell me one fact about the number {i + args.calls}." for i in range(args.calls)]
    conc_tokens, conc_s = timed_calls(lm, prompts, True)
    seq_rate, conc_rate = seq_tokens / seq_s, conc_tokens / conc_s
    report.update(sequential_tok_s=seq_rate, concurrent_tok_s=conc_rate, concurrency_ratio=conc_rate / seq_rate,
                  batcher=dict(backend.batcher.stats))
    print(f"{args.calls} calls one at a time: {seq_tokens} tokens in {seq_s:.1f} s -> {seq_rate:.1f} tok/s")
    print(f"{args.calls} concurrent calls:    {conc_tokens} tokens in {conc_s:.1f} s -> {conc_rate:.1f} tok/s "
          f"-> {conc_rate / seq_rate:.1f}x (widest step: {backend.batcher.stats['max_active']} rows)")

    if args.examples > 0:
        cold_lm = lm.copy(prefix_cache_mb=0, max_tokens=16, max_batch_size=max(16, args.threads))
        warm_lm = lm.copy(max_tokens=16, max_batch_size=max(16, args.threads))
        off_s, off_score = few_shot_evaluate(cold_lm, args.demos, args.examples, args.threads)
        on_s, on_score = few_shot_evaluate(warm_lm, args.demos, args.examples, args.threads)
        prefixes = warm_lm.backend.prefix_cache
        report.update(evaluate_without_reuse_s=off_s, evaluate_with_reuse_s=on_s, prefix_ratio=off_s / on_s,
                      scores=(off_score, on_score), prefix_hits=prefixes.hits, reused_tokens=prefixes.reused_tokens)
        print(f"few-shot Evaluate ({args.demos} demos, {args.examples} examples, {args.threads} threads): "
              f"{off_s:.1f} s without prefix reuse (score {off_score:.1f}), {on_s:.1f} s with it "
              f"(score {on_score:.1f}) -> {off_s / on_s:.1f}x; {prefixes.hits} hits, {prefixes.reused_tokens} "
              f"prompt tokens reused")
    report["loadavg_end"] = os.getloadavg()
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
