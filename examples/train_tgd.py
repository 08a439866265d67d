"""A training loop that reads like PyTorch: textual gradients improve a classifier's instruction.

    python examples/train_tgd.py [--steps 8] [--batch-size 4] [--val-size 20]

The model is one ``Predict`` over the bundled banking-intent task, run on the embedded local LM.
Each step: forward a batch (a graph is recorded per example), compute a metric loss, send textual
gradients back with ``loss.backward()``, rewrite the instruction with ``opt.step()``, validate, and
keep the best parameters seen so far (as one keeps the best checkpoint in torch).
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from typing import Any, Literal

import textgrad_like as tl
from textgrad_like.autograd import MetricLoss
from textgrad_like.datasets import load_bundled
from textgrad_like.optim import TextualGradientDescent
from textgrad_like.primitives import RunHistory


class IntentClassifier(tl.Module):
    def __init__(self, labels: list[str]) -> None:
        super().__init__()
        sig = tl.Signature("text -> label", "Answer.").with_updated_fields("label", type_=Literal[tuple(labels)])
        self.classify = tl.Predict(sig)

    def forward(self, text: str) -> tl.Prediction:
        return self.classify(text=text)


def batches(examples: list[Any], batch_size: int, seed: int) -> list[list[Any]]:
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    return [shuffled[i:i + batch_size] for i in range(0, len(shuffled), batch_size)]


def train(lm: Any, steps: int = 8, batch_size: int = 4, val_size: int = 20, num_threads: int = 4,
          seed: int = 0, num_candidates: int = 1) -> dict[str, Any]:
    task = load_bundled("classification")
    tl.configure(lm=lm, backward_lm=lm)
    model = IntentClassifier(task.labels)
    loss_fn = MetricLoss(task.metric)
    opt = TextualGradientDescent(model.parameters(kind="instruction"), momentum=2, num_candidates=num_candidates,
                                 constraints=["One or two sentences.", "Name the possible intents."])
    evaluate = tl.Evaluate(devset=task.dev[:val_size], metric=task.metric, num_threads=num_threads)
    history = RunHistory()
    calls = lambda: lm.usage.calls  # noqa: E731
    requests = lambda: lm.usage.calls + lm.usage.cache_hits  # noqa: E731
    backward_calls: list[int] = []

    best = evaluate(model).score
    first = best
    best_state = model.state_dict()
    history.record(best, step=0, lm_calls=calls())
    loader = batches(task.train, batch_size, seed)
    for step, batch in enumerate(loader[:steps], start=1):
        model.train()
        preds = model.batch(batch, num_threads=num_threads, disable_progress_bar=True)
        loss = loss_fn(preds, batch)
        before = requests()
        loss.backward()
        backward_calls.append(requests() - before)  # one LM request per predictor node reached (cache hits too)
        if num_candidates > 1:  # the step scores each rewrite on this batch and keeps the best
            opt.step(lambda batch=batch: loss_fn(model.batch(batch, num_threads=num_threads,
                                                             disable_progress_bar=True), batch))
        else:
            opt.step()
        opt.zero_grad()
        score = evaluate(model).score
        if score > best:
            best, best_state = score, model.state_dict()
        else:
            model.load_state_dict(best_state)  # keep the best parameters
        history.record(score, step=step, lm_calls=calls(), loss=loss.value, kept=best)
        logging.getLogger(__name__).info("step %d: loss %.3f, val %.1f, best %.1f", step, loss.value, score, best)
    model.load_state_dict(best_state)
    return {"model": model, "before": first, "after": best, "history": history, "lm_calls": calls(),
            "backward_calls": backward_calls, "batch_size": batch_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--val-size", type=int, default=20)
    parser.add_argument("--lm", default="local/embedded")
    parser.add_argument("--num-candidates", type=int, default=1, help="rewrites per step, best on the batch kept")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    lm = tl.LM(args.lm, temperature=0.0, max_tokens=200)
    result = train(lm, steps=args.steps, batch_size=args.batch_size, val_size=args.val_size,
                   num_candidates=args.num_candidates)
    print(f"validation accuracy: {result['before']:.1f} -> {result['after']:.1f} "
          f"({result['lm_calls']} LM calls, {time.perf_counter() - start:.0f} s)")
    print("learned instruction:", result["model"].classify.instruction.value)


if __name__ == "__main__":
    main()
