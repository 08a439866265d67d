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

The instruction-search optimizers' meta-prompts follow the same rule: ``COPRO(proposal_signature=,
attempts_signature=)``, ``MIPROv2(proposal_signature=)`` (the other proposer prompts are class
attributes of ``GroundedProposer``), ``GEPA(reflection_signature=)``, ``SIMBA(rule_signature=)``.

A replacement must keep the field names of the class it replaces (:func:`check_override` says
which are missing).
"""

from typing import Any

from .errors import ConfigurationError
from .signatures import InputField, OutputField, Signature

__all__ = ["TextualBackward", "TextualStep", "SummarizeFeedback", "JudgeOutput", "check_override",
           "ProposeInstruction", "ProposeFromAttempts", "ObserveData", "SummarizeData", "DescribeProgram",
           "DescribeModule", "ProposeGroundedInstruction", "ReflectOnInstruction", "ContrastTrajectories"]


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


# --- instruction search: COPRO, MIPROv2's GroundedProposer, GEPA, SIMBA -----------------------------------------


@_one_paragraph
class ProposeInstruction(Signature):
    """You improve instructions for a language model. Given the instruction a task uses now, what the task reads and
    produces, and (when given) a few examples with the outputs they should get, write a better instruction that makes the task
    clear, and a short prefix that the model's answer should start with. The instruction must say what to do with the
    inputs and what to produce; do not answer one of the examples."""

    task_fields: str = InputField(desc="what the task reads and what it must produce")
    examples: str = InputField(desc="a few inputs from the task's data with the outputs they should get")
    basic_instruction: str = InputField(desc="the current instruction")
    proposed_instruction: str = OutputField(desc="the improved instruction")
    proposed_prefix_for_output_field: str = OutputField(desc="the text the answer should start with")


@_one_paragraph
class ProposeFromAttempts(Signature):
    """You improve instructions for a language model. Below are instructions already tried, each with the score it
    reached on validation data, from lowest to highest. Write a new instruction (and an answer prefix) likely to score
    higher than all of them; novel ideas are welcome. The instruction must say what to do with the inputs and what to
    produce; do not answer one of the examples."""

    task_fields: str = InputField(desc="what the task reads and what it must produce")
    examples: str = InputField(desc="a few inputs from the task's data with the outputs they should get")
    attempted_instructions: str = InputField(desc="instructions tried, with scores")
    proposed_instruction: str = OutputField(desc="the improved instruction")
    proposed_prefix_for_output_field: str = OutputField(desc="the text the answer should start with")


@_one_paragraph
class ObserveData(Signature):
    """You are studying a dataset used to train a language-model program. Read the examples and the notes taken so
    far, then write short factual notes about the data: the fields, what the inputs look like, what the outputs look
    like, and any patterns. Do not repeat notes that are already there."""

    examples: str = InputField(desc="a batch of training examples")
    prior_notes: str = InputField(desc="notes taken on earlier batches (may be empty)")
    notes: str = OutputField(desc="new notes about the data")


@_one_paragraph
class SummarizeData(Signature):
    """Condense notes about a dataset into a brief summary (two to four sentences) that would help someone write
    instructions for a model solving this task."""

    notes: str = InputField(desc="notes about a dataset")
    summary: str = OutputField(desc="a brief summary of the data")


@_one_paragraph
class DescribeProgram(Signature):
    """Describe in two or three sentences what this language-model program does and how its steps work together,
    given its source code."""

    program_code: str = InputField(desc="source code of the program")
    program_description: str = OutputField(desc="what the program does")


@_one_paragraph
class DescribeModule(Signature):
    """Given the source of a language-model program and a summary of it, describe in one or two sentences the job of
    the named step inside the program."""

    program_code: str = InputField(desc="source code of the program")
    program_description: str = InputField(desc="summary of the program")
    module: str = InputField(desc="the step to describe: its name and signature")
    module_description: str = OutputField(desc="the job of this step")


@_one_paragraph
class ProposeGroundedInstruction(Signature):
    """Write an improved instruction for one step of a language-model program. Use the evidence given: a summary of
    the data, what the program and this step do, example inputs with good outputs, the current instruction and a
    style tip. The instruction must tell the model what to do with its inputs and what to produce. Reply with the
    instruction text only."""

    data_summary: str = InputField(desc="what the training data looks like")
    program_description: str = InputField(desc="what the whole program does")
    module_description: str = InputField(desc="what this step does")
    step_signature: str = InputField(desc="the inputs and outputs of this step")
    task_demos: str = InputField(desc="example inputs with good outputs for this step")
    current_instruction: str = InputField(desc="the instruction used now")
    tip: str = InputField(desc="a style tip for the new instruction")
    proposed_instruction: str = OutputField(desc="the new instruction")


@_one_paragraph
class ReflectOnInstruction(Signature):
    """You improve the instruction of one step in a program made of language-model calls. You get the step's current
    instruction and cases it handled recently: the inputs it received, the outputs it produced, and feedback on each
    case. Work out what the failing cases have in common, what the good cases did right, and which facts about the
    task the feedback reveals. Then write a complete new instruction for the step that keeps what works, fixes the
    failures, and states the task-specific facts and rules the step needs. Reply with the new instruction only."""

    current_instruction: str = InputField(desc="the instruction the step runs with now")
    cases_with_feedback: str = InputField(desc="inputs, outputs and feedback of recent cases")
    new_instruction: str = OutputField(desc="the complete improved instruction")


@_one_paragraph
class ContrastTrajectories(Signature):
    """A program made of language-model steps ran twice on the same task input. One run earned a higher reward than
    the other. Compare the two runs step by step, find the decisions that made the better run better (or the worse
    run worse), and write for each named step one short, general rule that would make that step behave like the
    better run on inputs of this kind. Rules must not mention this particular input's values; they should help on
    similar inputs. Give a rule only for steps that need one."""

    program_steps: str = InputField(desc="the program's steps: name, signature and current instruction")
    task_input: str = InputField(desc="the input both runs received")
    worse_run: str = InputField(desc="each step's inputs and outputs in the worse run")
    worse_reward: float = InputField()
    better_run: str = InputField(desc="each step's inputs and outputs in the better run")
    better_reward: float = InputField()
    evaluator_feedback: str = InputField(desc="what the evaluator said about each run, if anything")
    step_names: list[str] = InputField(desc="names of the steps that can receive a rule")
    analysis: str = OutputField(desc="what made the difference between the runs")
    rules: dict[str, str] = OutputField(desc="step name -> rule to add to that step's instruction")


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
