"""Validation score before and after N textual-gradient steps (TGD) with the embedded model.

    python benchmarks/textual_gradients.py [--steps 8] [--val-size 20] [--num-candidates 3] [--plot runs/tgd.png]

Prints the validation accuracy of the starting instruction, the best after N steps, the LM
calls spent (forward, backward and step calls together) and the LM calls per ``loss.backward()``
(one per predictor node the loss reaches: here one per example of the batch). With
``--num-candidates k`` (k > 1) it trains twice in the same run, with one rewrite per step and with
the best of k rewrites on the batch, and prints both gains.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

from train_tgd import train  # noqa: E402

import textgrad_like as tl  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--val-size", type=int, default=20)
    parser.add_argument("--lm", default="local/embedded")
    parser.add_argument("--plot", default="runs/tgd_curve.png")
    parser.add_argument("--num-candidates", type=int, default=1,
                        help="k > 1: also train with the best of k rewrites per step and compare")
    args = parser.parse_args()
    print(f"TGD on bundled classification ({args.val_size} val examples, {args.steps} steps of {args.batch_size}):")
    runs = [1] if args.num_candidates <= 1 else [1, args.num_candidates]
    for k in runs:
        start = time.perf_counter()
        lm = tl.LM(args.lm, temperature=0.0, max_tokens=200)
        calls_before = lm.usage.calls
        result = train(lm, steps=args.steps, batch_size=args.batch_size, val_size=args.val_size, num_candidates=k)
        label = "one rewrite per step" if k == 1 else f"best of {k} rewrites per step"
        print(f" {label}:")
        print(f"  validation accuracy before: {result['before']:.1f}%")
        print(f"  validation accuracy after:  {result['after']:.1f}% (gain {result['after'] - result['before']:+.1f})")
        print(f"  LM calls: {lm.usage.calls - calls_before}, wall time: {time.perf_counter() - start:.0f} s")
        per_backward = result["backward_calls"]
        if per_backward:
            print(f"  LM calls per loss.backward() (batch of {result['batch_size']}): "
                  f"{sum(per_backward) / len(per_backward):.1f} (min {min(per_backward)}, max {max(per_backward)})")
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        plot = args.plot if k == 1 else args.plot.replace(".png", f"_k{k}.png")
        result["history"].plot(plot, x="lm_calls")
        print(f"  curve: {plot}")


if __name__ == "__main__":
    main()
