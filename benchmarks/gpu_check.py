"""GPU check of LoRA training on the local model: bf16, batch sizes, training and generation tokens/s.

Run on a machine with a CUDA GPU: ``python benchmarks/gpu_check.py [--model local/embedded]
[--batch-sizes 8,32,128] [--seq-len 256] [--steps 5] [--json $OUT/gpu_check.json]``.
Without CUDA it prints "no GPU: ..." and exits with status 0 (nothing else runs).

Checks, in order (each prints one line; ``--json`` also writes every figure to a file):

1. the model loads on ``cuda`` in bfloat16 and a LoRA adapter attaches to it (adapter dtype shown);
2. SFT training (token cross-entropy of replies through the adapter, AdamW) at each batch size:
   seconds per step, trained tokens/s, peak GPU memory;
3. a few steps on one fixed batch lower its loss (the gradients reach the adapter in bf16);
4. generation with the adapter and with the base model side by side in one dynamic batch: tokens/s,
   and the base model's output is unchanged by the adapter;
5. generation on the GPU through the same continuous batcher as on CPU: single-stream tokens/s and
   ``--gen-calls`` concurrent calls (tokens/s and the ratio).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="local/embedded")
    parser.add_argument("--batch-sizes", default="8,32,128")
    parser.add_argument("--seq-len", type=int, default=256, help="prompt + reply tokens per record")
    parser.add_argument("--reply-len", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per batch size")
    parser.add_argument("--gen-calls", type=int, default=32)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("no GPU: torch sees no CUDA device (torch.cuda.is_available() is False), so nothing was measured. "
              "Run this on a machine with an NVIDIA GPU and a CUDA build of torch; the CPU path is covered by "
              "benchmarks/local_lm.py and benchmarks/finetune.py.")
        return 0

    from textgrad_like.autograd.sft import SFTExample, sft_loss_tensor
    from textgrad_like.lm import LM
    from textgrad_like.nn.lora import LoRA

    report: dict[str, Any] = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    started = time.perf_counter()
    lm = LM(args.model, device="cuda", dtype="bfloat16", temperature=0.0, max_tokens=48, cache=False,
            max_batch_size=max(16, args.gen_calls)).load()
    report["load_s"] = round(time.perf_counter() - started, 2)
    model = lm.backend.model
    lora = LoRA(lm, r=16, alpha=32, seed=0)
    report["model_dtype"] = str(next(model.parameters()).dtype)
    report["adapter_dtype"] = str(lora.tensors()[0].dtype)
    report["adapter_parameters"] = lora.num_parameters()
    print(f"[1] {report['device']}: loaded {args.model} in {report['load_s']} s, model {report['model_dtype']}, "
          f"adapter {report['adapter_dtype']} ({lora.num_parameters()} parameters)")
    if report["model_dtype"] != "torch.bfloat16":
        print("    WARNING: the model is not in bfloat16")

    vocab = int(lm.backend.vocab_size)
    gen = torch.Generator().manual_seed(0)

    def records(n: int) -> list[SFTExample]:
        prompt = args.seq_len - args.reply_len
        out = []
        for _ in range(n):
            ids = torch.randint(100, min(vocab, 20000), (args.seq_len,), generator=gen).tolist()
            out.append(SFTExample(lora, ids[:prompt], ids[prompt:]))
        return out

    optimizer = torch.optim.AdamW(lora.tensors(), lr=1e-3)
    report["train"] = []
    for size in [int(s) for s in args.batch_sizes.split(",") if s.strip()]:
        batch = records(size)
        try:
            torch.cuda.reset_peak_memory_stats()
            loss, _ = sft_loss_tensor(batch)  # warm-up
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                loss, _ = sft_loss_tensor(batch)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
            torch.cuda.synchronize()
            seconds = (time.perf_counter() - t0) / args.steps
        except torch.cuda.OutOfMemoryError:
            print(f"[2] batch {size}: out of GPU memory")
            report["train"].append({"batch_size": size, "oom": True})
            torch.cuda.empty_cache()
            continue
        row = {"batch_size": size, "s_per_step": round(seconds, 4),
               "tokens_per_s": round(size * args.seq_len / seconds, 1),
               "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}
        report["train"].append(row)
        print(f"[2] batch {size} x {args.seq_len} tokens: {row['s_per_step']} s/step, {row['tokens_per_s']} tok/s "
              f"trained, peak {row['peak_mem_gib']} GiB")

    fixed = records(8)
    losses = []
    for _ in range(10):
        loss, _ = sft_loss_tensor(fixed)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(round(float(loss.item()), 4))
    report["fixed_batch_losses"] = losses
    print(f"[3] loss on one fixed batch over 10 steps: {losses[0]} -> {losses[-1]} "
          f"({'decreases' if losses[-1] < losses[0] else 'DOES NOT DECREASE'})")

    adapted = lora.adapted_lm()
    prompt = "Write three sentences about the sea."
    base_alone = lm(prompt)
    outputs: dict[int, list[str]] = {}

    def call(i: int) -> None:
        outputs[i] = (adapted if i % 2 else lm)(f"{prompt}" if i == 0 else f"{prompt} ({i})")

    lm.history.clear()
    adapted.history.clear()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=call, args=(i,)) for i in range(args.gen_calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    tokens = sum(h["usage"]["completion_tokens"] for h in list(lm.history) + list(adapted.history))
    report["generation"] = {"calls": args.gen_calls, "tokens": tokens, "seconds": round(seconds, 2),
                            "tokens_per_s": round(tokens / seconds, 1),
                            "base_unchanged": outputs.get(0) == base_alone}
    print(f"[4] {args.gen_calls} mixed base/adapter calls: {tokens} tokens in {seconds:.2f} s "
          f"({report['generation']['tokens_per_s']} tok/s); base output unchanged by the adapter: "
          f"{report['generation']['base_unchanged']}")
    plain = lm.copy(max_tokens=64)
    t0 = time.perf_counter()
    plain("Write a long story about a dragon who learns to cook.")
    torch.cuda.synchronize()
    single_s = time.perf_counter() - t0
    single_tokens = plain.history[-1]["usage"]["completion_tokens"]
    plain.history.clear()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=plain, args=(f"Tell me one fact about the number {i}.",))
               for i in range(args.gen_calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    torch.cuda.synchronize()
    many_s = time.perf_counter() - t0
    many_tokens = sum(h["usage"]["completion_tokens"] for h in plain.history)
    single_rate, many_rate = single_tokens / single_s, many_tokens / many_s
    report["serving"] = {"single_stream_tok_s": round(single_rate, 1), "concurrent_tok_s": round(many_rate, 1),
                         "ratio": round(many_rate / single_rate, 1), "widest_step": lm.backend.batcher.stats["max_active"]}
    print(f"[5] single stream {single_rate:.1f} tok/s; {args.gen_calls} concurrent {many_rate:.1f} tok/s "
          f"({many_rate / single_rate:.1f}x, widest step {report['serving']['widest_step']} rows)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    ok = losses[-1] < losses[0] and report["generation"]["base_unchanged"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
