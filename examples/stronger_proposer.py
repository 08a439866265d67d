"""A stronger model writes the instructions, the small model runs the task.

    python examples/stronger_proposer.py                 # offline: a scripted stand-in proposer
    OPENAI_API_KEY=... python examples/stronger_proposer.py   # gpt-4o-mini writes the proposals

A 135M model asked to write instructions for itself mostly answers with a label name or a copy of an
input; COPRO and MIPROv2 screen such proposals out (they are counted, never evaluated) and say when
nothing beat the start instruction. The usual fix is a stronger proposer: ``prompt_model=`` takes any
LM and uses it for the proposal calls only; every task call still goes to the configured (task) LM.

Without ``OPENAI_API_KEY`` the proposer is a scripted stand-in (a ``DummyLM`` that writes one real
instruction naming the labels), so the example runs offline; it says so when it starts. Selection
uses the train split (COPRO) and the dev split (MIPROv2's valset); the scores printed are on the
test split, which neither optimizer sees.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any, Literal

import textgrad_like as dspy
from textgrad_like.datasets.bundled import load_bundled
from textgrad_like.utils import DummyLM


def stand_in_proposer(labels: list[str]) -> DummyLM:
    """A scripted prompt model: one sensible instruction for every proposal, short notes for MIPROv2's
    data summary and program description (keys are the input blocks of each meta-prompt)."""
    instruction = ("Read the customer's banking message and reply with exactly one intent label, chosen from: "
                   f"{', '.join(labels)}. Pick the label whose meaning matches what the customer asks for.")
    proposal = {"proposed_instruction": instruction, "proposed_prefix_for_output_field": ""}
    return DummyLM({
        "<tip>": {"proposed_instruction": instruction},  # MIPROv2's grounded proposal
        "<basic_instruction>": proposal,  # COPRO, first round
        "<attempted_instructions>": proposal,  # COPRO, later rounds
        "<prior_notes>": {"notes": "Short customer messages to a bank, each with one intent label."},
        "<notes>": {"summary": "Customer messages to a bank labelled with one of five intents."},
        "<module>": {"module_description": "Maps a customer message to its intent label."},
        "<program_code>": {"program_description": "One step that classifies a customer message."},
    })


def main(task_lm: Any = None, prompt_model: Any = None, n_train: int = 8, n_dev: int = 8, n_test: int = 10,
         threads: int = 1) -> dict[str, Any]:
    """Run COPRO and MIPROv2 with ``prompt_model`` for proposals and ``task_lm`` for the task; return the
    test scores and each optimizer's ``proposals`` / ``instruction_improved``."""
    task = load_bundled("classification")
    train, dev, test = task.train[:n_train], task.dev[:n_dev], task.test[:n_test]
    if task_lm is None:
        task_lm = dspy.LM("local/embedded", temperature=0.0, max_tokens=32)
    if prompt_model is None:
        if os.environ.get("OPENAI_API_KEY"):
            prompt_model = dspy.LM("openai/gpt-4o-mini", temperature=1.0)
            print("Proposer: openai/gpt-4o-mini (OPENAI_API_KEY is set).")
        else:
            prompt_model = stand_in_proposer(task.labels or [])
            print("Proposer: a scripted stand-in (no OPENAI_API_KEY): it writes one fixed, sensible instruction. "
                  "Set OPENAI_API_KEY to let gpt-4o-mini write the proposals.")
    dspy.configure(lm=task_lm)
    signature = dspy.Signature("text -> label", "Classify the message.").with_updated_fields(
        "label", type_=Literal[tuple(task.labels or [])])
    student = dspy.Predict(signature)
    evaluate = dspy.Evaluate(devset=test, metric=task.metric, num_threads=threads)
    results: dict[str, Any] = {"start": evaluate(student).score}

    copro = dspy.COPRO(prompt_model=prompt_model, metric=task.metric, breadth=2, depth=1, minibatch_size=4)
    program = copro.compile(student, trainset=train, eval_kwargs={"num_threads": threads})
    results["COPRO"] = {"test": evaluate(program).score, "proposals": copro.search_state["proposals"],
                        "instruction_improved": copro.search_state["instruction_improved"],
                        "instruction": program.signature.instructions}

    mipro = dspy.MIPROv2(metric=task.metric, prompt_model=prompt_model, task_model=task_lm, auto=None,
                         num_candidates=2, max_bootstrapped_demos=0, max_labeled_demos=0, num_threads=threads)
    program = mipro.compile(student, trainset=train, valset=dev, num_trials=2, minibatch=False)
    results["MIPROv2"] = {"test": evaluate(program).score, "proposals": mipro.search_state["proposals"],
                          "instruction_improved": mipro.search_state["instruction_improved"],
                          "instruction": program.signature.instructions}

    print(f"\nTest split ({len(test)} examples), start instruction: {results['start']:.1f}")
    for name in ("COPRO", "MIPROv2"):
        r = results[name]
        p = r["proposals"]
        print(f"{name}: test {r['test']:.1f}; proposals accepted {p['accepted']} / tried {p['tried']}; "
              f"instruction improved: {r['instruction_improved']}\n  instruction: {r['instruction']}")
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=16)
    parser.add_argument("--dev", type=int, default=16)
    parser.add_argument("--test", type=int, default=30)
    args = parser.parse_args()
    main(n_train=args.train, n_dev=args.dev, n_test=args.test)
