"""Test-time refinement of one answer: answer -> critique -> improved answer, N times.

The answer is a free-text ``Variable``; ``TextLoss`` (an LM judge) criticises it, ``loss.backward()``
turns the critique into its gradient and ``TextualGradientDescent`` rewrites it::

    python examples/refine_answer.py                          # the bundled local model, 3 steps
    python examples/refine_answer.py --question "..." --steps 5
    python examples/refine_answer.py --model openai/gpt-4o-mini

The bundled model (SmolLM2-135M, ``LM("local/embedded")``) is tiny: it runs anywhere, on CPU, but
its critiques and rewrites are weak. A larger model shows what the loop can do.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from textgrad_like.autograd.text_loss import TextLoss
from textgrad_like.nn.functional import llm_call
from textgrad_like.nn.graph import no_grad
from textgrad_like.nn.parameter import Variable
from textgrad_like.optim.tgd import TextualGradientDescent

ANSWER_PROMPT = "Answer the user's question correctly in one or two sentences."
JUDGE_PROMPT = (
    "You review an answer to this question: {question}\n"
    "Point out, in two sentences at most, what is wrong, missing or unclear in the answer. "
    "End with a line 'Score: N/10' (10 means correct and complete)."
)


def refine(question: str, steps: int = 3, lm: Any = None, judge_lm: Any = None, first_answer: str | None = None,
           stop_at: float = 1.0, verbose: bool = False) -> dict[str, Any]:
    """Answer ``question``, then refine the answer for at most ``steps`` steps (stopping once the
    judge's score reaches ``stop_at``). Returns the answers, scores, critiques and LM calls."""
    if lm is None:
        from textgrad_like.lm import LM

        lm = LM("local/embedded", temperature=0.0, max_tokens=128)
    judge_lm = judge_lm or lm
    if first_answer is None:
        with no_grad():  # the first answer is data, not part of the graph
            first_answer = llm_call(question, system_prompt=ANSWER_PROMPT, lm=lm).value
    answer = Variable(first_answer, role_description=f"a concise, correct answer to the question: {question}")
    loss_fn = TextLoss(JUDGE_PROMPT.format(question=question), lm=judge_lm)
    optimizer = TextualGradientDescent([answer], lm=lm, constraints=[
        "Reply with the improved answer only: one or two sentences, no preamble."])
    answers, scores, critiques = [answer.value], [], []
    for step in range(steps + 1):
        loss = loss_fn(answer)
        scores.append(loss.score)
        critiques.append(loss.feedback[0])
        if verbose:
            stated = f"{loss.score:.2f}" if loss.items[0].extra.get("score_parsed") else "not stated (0.00)"
            print(f"[step {step}] score {stated}\n  answer: {answer.value}\n  critique: {loss.feedback[0]}")
        if step == steps or loss.score >= stop_at:
            break
        optimizer.zero_grad()
        loss.backward(backward_lm=lm)
        optimizer.step()
        answers.append(answer.value)
    calls = {id(m): m.usage.calls + m.usage.cache_hits for m in (lm, judge_lm) if hasattr(m, "usage")}
    return {"question": question, "first_answer": answers[0], "final_answer": answer.value, "answers": answers,
            "scores": scores, "critiques": critiques, "lm_calls": sum(calls.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--question", default="What is the capital of Australia?")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--model", default="local/embedded", help="model for answers, critiques and rewrites")
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from textgrad_like.lm import LM

    lm = LM(args.model, temperature=0.0, max_tokens=args.max_tokens)
    began = time.perf_counter()
    result = refine(args.question, steps=args.steps, lm=lm, verbose=True)
    print(f"\nfirst answer: {result['first_answer']}\nfinal answer: {result['final_answer']}")
    print(f"scores: {[round(s, 2) for s in result['scores']]}; LM calls: {result['lm_calls']}; "
          f"{time.perf_counter() - began:.0f}s")


if __name__ == "__main__":
    main()
