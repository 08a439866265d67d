"""Benchmark the in-process local LM: load time, per-token latency, and batched vs one-at-a-time throughput.

Run: ``python benchmarks/local_lm.py [--model local/embedded] [--calls 16] [--max-tokens 32]``.
Every call uses ``cache=False`` and a distinct prompt, and ``ignore_eos``-like behaviour is not used:
throughput counts the completion tokens the model really produced.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Literal

import pydantic


class Verdict(pydantic.BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]
    confidence: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="local/embedded")
    parser.add_argument("--calls", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    from textgrad_like.lm import LM

    started = time.perf_counter()
    lm = LM(args.model, temperature=0.0, max_tokens=args.max_tokens, cache=False, device=args.device,
            max_batch_size=max(16, args.calls))
    lm.load()
    print(f"model load: {time.perf_counter() - started:.1f} s")
    lm("Warm up.", max_tokens=4)

    started = time.perf_counter()
    lm("Write a long story about a dragon who learns to cook.", max_tokens=64)
    seconds = time.perf_counter() - started
    tokens = lm.history[-1]["usage"]["completion_tokens"]
    print(f"single call: {tokens} tokens in {seconds:.2f} s -> {1000 * seconds / tokens:.1f} ms/token "
          f"({tokens / seconds:.1f} tok/s, prefill included)")

    started = time.perf_counter()
    out = lm("Classify the sentiment of: 'What a wonderful day!'", response_format=Verdict)
    seconds = time.perf_counter() - started
    tokens = lm.history[-1]["usage"]["completion_tokens"]
    Verdict.model_validate_json(out[0])
    print(f"constrained JSON call: {tokens} tokens in {seconds:.2f} s -> {1000 * seconds / tokens:.1f} ms/token: {out[0]}")

    prompts = [f"Tell me one fact about the number {i}." for i in range(args.calls)]

    def usage_since(start: int) -> int:
        return sum(e["usage"]["completion_tokens"] for e in list(lm.history)[start:])

    mark = len(lm.history)
    started = time.perf_counter()
    for p in prompts:
        lm(p)
    sequential_s = time.perf_counter() - started
    sequential_tokens = usage_since(mark)

    mark = len(lm.history)
    threads = [threading.Thread(target=lm, args=(p,)) for p in prompts]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    concurrent_s = time.perf_counter() - started
    concurrent_tokens = usage_since(mark)

    seq_rate = sequential_tokens / sequential_s
    conc_rate = concurrent_tokens / concurrent_s
    print(f"{args.calls} calls one at a time: {sequential_tokens} tokens in {sequential_s:.1f} s -> {seq_rate:.1f} tok/s")
    print(f"{args.calls} concurrent calls:    {concurrent_tokens} tokens in {concurrent_s:.1f} s -> {conc_rate:.1f} tok/s "
          f"(batches: {lm.backend.batcher.batch_sizes[-4:]})")
    print(f"speed-up: {conc_rate / seq_rate:.1f}x")


if __name__ == "__main__":
    main()
