"""One training loop, two kinds of parameters: a textual gradient for the instruction and a torch
gradient for a LoRA adapter, from one ``loss.backward()``.

    python examples/train_text_and_lora.py [--epochs 2] [--train-size 4] [--batch-size 2] [--val-size 8]

The model is one ``Predict`` over the bundled banking-intent task, run on the embedded local LM with a
LoRA adapter attached. Each step reads like PyTorch:

    loss = metric_loss(preds, batch) + sft_loss(preds, batch)   # a textual loss + a torch loss
    loss.backward()        # textual gradient -> instruction.grad;  torch gradient -> LoRA tensors' .grad
    text_opt.step()        # TextualGradientDescent rewrites the instruction
    lora_opt.step()        # torch.optim.AdamW updates the adapter

``SFTLoss`` trains the adapter towards the gold labels of the batch (the prompt is exactly what the
predictor sends). The validation accuracy is printed after every epoch. Runs on CPU in a few minutes.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from train_tgd import IntentClassifier  # the same program as the TGD example (examples/ is on sys.path)

import textgrad_like as tl
from textgrad_like.autograd import MetricLoss, SFTLoss
from textgrad_like.datasets import load_bundled
from textgrad_like.nn.lora import LoRA
from textgrad_like.optim import TextualGradientDescent


def train(lm: Any, epochs: int = 2, train_size: int = 4, batch_size: int = 2, val_size: int = 8,
          lr: float = 2e-3, num_threads: int = 4, seed: int = 0) -> dict[str, Any]:
    import torch

    torch.manual_seed(seed)
    task = load_bundled("classification")
    tl.configure(lm=lm, backward_lm=lm)
    model = IntentClassifier(task.labels)
    LoRA(lm, r=8, alpha=16, seed=seed).attach(model.classify)     # the adapter is a parameter of the model

    # the text optimizer steps the instruction and leaves the LoRA to torch
    text_opt = TextualGradientDescent(model.parameters(), momentum=1,
                                      constraints=["One or two sentences.", "Name the possible intents."])
    lora_opt = torch.optim.AdamW(model.parameters(kind="lora"), lr=lr)
    metric_loss, sft_loss = MetricLoss(task.metric), SFTLoss()
    evaluate = tl.Evaluate(devset=task.dev[:val_size], metric=task.metric, num_threads=num_threads)

    trainset = list(task.train[:train_size])
    scores = [evaluate(model).score]
    best_score, best_instruction = scores[0], model.classify.instruction.value
    print(f"epoch 0: validation accuracy {scores[0]:.1f}%")
    for epoch in range(1, epochs + 1):
        random.Random(seed + epoch).shuffle(trainset)
        for start in range(0, len(trainset), batch_size):
            batch = trainset[start:start + batch_size]
            model.train()
            preds = model.batch(batch, num_threads=num_threads, disable_progress_bar=True)
            loss = metric_loss(preds, batch) + sft_loss(preds, batch)
            loss.backward()
            text_opt.step()
            lora_opt.step()
            text_opt.zero_grad()
            lora_opt.zero_grad()
            print(f"  step: loss {loss.value:.3f}, instruction now {model.classify.instruction.value[:70]!r}")
        scores.append(evaluate(model).score)
        print(f"epoch {epoch}: validation accuracy {scores[-1]:.1f}%")
        if scores[-1] >= best_score:
            best_score, best_instruction = scores[-1], model.classify.instruction.value
        else:  # keep the best instruction seen (a 135M model writes poor rewrites); the adapter keeps training
            model.classify.instruction.value = best_instruction
            print(f"  kept the best instruction so far: {best_instruction[:70]!r}")
    return {"model": model, "scores": scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--val-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--lm", default="local/embedded")
    args = parser.parse_args()
    start = time.perf_counter()
    lm = tl.LM(args.lm, temperature=0.0, max_tokens=200)
    result = train(lm, epochs=args.epochs, train_size=args.train_size, batch_size=args.batch_size,
                   val_size=args.val_size, lr=args.lr)
    print(f"validation accuracy per epoch: {[round(s, 1) for s in result['scores']]} "
          f"({time.perf_counter() - start:.0f} s)")
    print("learned instruction:", result["model"].classify.instruction.value)


if __name__ == "__main__":
    main()
