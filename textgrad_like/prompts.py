"""The library's own prompts, as class-based :class:`~textgrad_like.signatures.Signature` s built once.

Each meta-prompt the library sends (the textual backward pass, the TGD step, the merging of
feedback items, the LM judge) is one class here: its docstring is the instruction, its fields the
inputs and outputs. They are built once at import, so the adapters' caches see the same classes on
every call. To change a prompt, subclass it and pass the subclass where it is used::

    class TerseStep(prompts.TextualStep):
        \"\"\"Rewrite the text to address the feedback. Keep it under 30 words.\"\"\"

    opt = TextualGradientDescent(params, step_signature=TerseStep)
    loss.backward(backward_signature=MyBackward)
    LMJudgeLoss("...", signature=MyJudge)

A replacement must keep the field names of the class it replaces (:func:`check_override` says
which are missing).
"""

from typing import Any

from .errors import ConfigurationError
from .signatures import InputField, OutputField, Signature

__all__ = ["TextualBackward", "TextualStep", "SummarizeFeedback", "JudgeOutput", "check_override"]


def _one_paragraph(cls: Any) -> Any:
    """Send the docstring as one paragraph (the line breaks are only for the source's line length)."""
    cls.instructions = " ".join(cls.instructions.split())
    return cls


@_one_paragraph
class TextualBackward(Signature):
    """You are the backward pass of a program made of LM calls. One step of the program ran with the inputs and
    produced the outputs shown. Later steps or the final evaluation gave feedback on those outputs. Explain how this
    step's instruction should change so that its outputs earn better feedback: be specific and actionable, do not
    rewrite the instruction yourself. If some inputs came from earlier steps, say for each such input what was wrong
    with it (an empty string if nothing was wrong)."""

    instruction: str = InputField(desc="the instruction this step was given")
    step_inputs: str = InputField(desc="the inputs this step received")
    step_outputs: str = InputField(desc="the outputs this step produced")
    feedback: str = InputField(desc="feedback on these outputs from later steps or the evaluation")
    upstream_inputs: list[str] = InputField(desc="names of inputs that earlier steps produced")
    instruction_feedback: str = OutputField(desc="how the instruction should change")
    input_feedback: dict[str, str] = OutputField(desc="for each upstream input name, what was wrong with it")


@_one_paragraph
class TextualStep(Signature):
    """Improve a piece of text that is a trainable part of a program. You get its role, its current value, feedback
    collected from the program's runs, constraints that the new value must respect, and earlier values with the
    scores they reached. Write a new value that addresses the feedback, keeps what works, and respects every
    constraint. Reply with the complete new value only."""

    role: str = InputField(desc="what this text is for")
    current_value: str = InputField()
    feedback: str = InputField(desc="feedback items from the backward pass")
    constraints: str = InputField(desc="rules the new value must follow")
    past_values: str = InputField(desc="earlier values and their scores, oldest first")
    improved_value: str = OutputField(desc="the complete new text")


@_one_paragraph
class SummarizeFeedback(Signature):
    """Several feedback items were written about the same piece of text, each from one run of a program. Merge them
    into one list of distinct, actionable points: keep every point that recurs or comes from a low-scoring run,
    drop repetitions, and do not invent points that no item makes."""

    role: str = InputField(desc="what the text is for")
    feedback_items: str = InputField(desc="numbered feedback items with the score of the run each came from")
    summary: str = OutputField(desc="the merged feedback, one point per line")


class JudgeOutput(Signature):
    """Judge the output of a system."""

    task_inputs: str = InputField(desc="the inputs the system received")
    system_output: str = InputField(desc="what the system produced")
    reference: str = InputField(desc="a reference answer, if any")
    feedback: str = OutputField(desc="concrete criticism: what is wrong or missing and how to fix it")
    score: float = OutputField(desc="quality from 0.0 (useless) to 1.0 (perfect)")


def check_override(signature: Any, default: Any, where: str) -> Any:
    """``signature`` if it has every field of ``default`` (``None`` gives ``default``); else a
    :class:`ConfigurationError` naming the missing fields."""
    if signature is None:
        return default
    fields = getattr(signature, "fields", None)
    if not isinstance(fields, dict):
        raise ConfigurationError(f"{where} must be a Signature class (a subclass of prompts.{default.__name__}), "
                                 f"got {signature!r}.")
    missing = [name for name in default.fields if name not in fields]
    if missing:
        raise ConfigurationError(f"{where}={signature.__name__} lacks the field(s) {missing} of "
                                 f"prompts.{default.__name__}; subclass it and change only the docstring or the "
                                 "field descriptions.")
    return signature
