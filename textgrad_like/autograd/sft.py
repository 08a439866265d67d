"""``SFTLoss``: supervised fine-tuning loss of LoRA weights on a predictor's own prompt/completion format.

    loss = SFTLoss()(traces)        # traces, predictions with graphs, or (predictor, inputs, outputs) steps
    loss.backward()                 # torch backward through the LoRA adapters
    optimizer.step()                # e.g. torch.optim.AdamW(program.parameters(kind="lora"), lr=1e-3)

Each recorded predictor call becomes one chat fine-tuning record made by the adapter the predictor
uses (``Adapter.format_finetune_data``: the exact messages it would send, plus the reply it should
give). The prompt is tokenized exactly as the local model tokenizes it at generation time; the
loss is the token-mean cross-entropy of the reply tokens (and the end-of-turn token), the prompt
masked out, computed with each predictor's LoRA adapter active.

torch is imported inside functions only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import BackwardError, ConfigurationError
from ..nn.graph import Graph
from ..nn.lora import LoRA, lora_of
from ..nn.module import Module
from ..nn.parameter import Parameter
from ..predict.predict import resolve_adapter
from ..primitives import Example, Prediction
from ..primitives.metric import call_metric, read_metric

logger = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 1024


@dataclass
class SFTExample:
    """One tokenized training record: the prompt (masked) and the completion (trained on)."""

    lora: LoRA
    prompt_ids: list[int]
    completion_ids: list[int]
    messages: list[dict[str, Any]] = field(default_factory=list)
    predictor_name: str | None = None

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)


# --- traces -> steps ---------------------------------------------------------------------------------
def _is_step(item: Any) -> bool:
    return isinstance(item, tuple) and len(item) == 3 and isinstance(item[0], Module)


def trace_steps(traces: Any) -> list[tuple[Any, dict[str, Any], Any]]:
    """Flatten predictions with graphs, graphs, traces and ``(predictor, inputs, outputs)`` steps into steps."""
    if traces is None:
        return []
    if _is_step(traces):
        return [traces]
    if isinstance(traces, Graph):
        return list(traces.trace())
    if isinstance(traces, Prediction):
        graph = traces.graph
        if graph is None:
            raise ConfigurationError("This prediction has no recorded graph: run the program in training mode "
                                     "(module.train()) or inside textgrad_like.nn.record() to collect traces.")
        return list(graph.trace())
    if isinstance(traces, (list, tuple)):
        steps: list[tuple[Any, dict[str, Any], Any]] = []
        for item in traces:
            steps.extend(trace_steps(item))
        return steps
    raise ConfigurationError(f"SFTLoss takes traces: predictions with graphs, Graphs, lists of (predictor, inputs, "
                             f"outputs) steps; got {type(traces).__name__}.")


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Parameter) else value


def finetune_record(predictor: Any, inputs: dict[str, Any], outputs: Any, adapter: Any = None,
                    exclude_demos: bool = False, lm: Any = None) -> dict[str, Any]:
    """The chat fine-tuning record of one predictor call, in the format of the adapter it uses."""
    lm = lm if lm is not None else getattr(predictor, "lm", None)
    adapter = adapter if adapter is not None else resolve_adapter(lm)
    signature = predictor.signature
    demos = [] if exclude_demos else list(getattr(predictor, "demos", []) or [])
    plain_inputs = {k: _plain(v) for k, v in dict(inputs).items() if k in signature.input_fields}
    plain_outputs = {k: _plain(v) for k, v in (dict(outputs.items()) if hasattr(outputs, "items") else {}).items()
                     if k in signature.output_fields}
    missing = [k for k in signature.output_fields if k not in plain_outputs]
    if missing:
        raise ConfigurationError(f"A trace of predictor {type(predictor).__name__} lacks output field(s) {missing}; "
                                 "it cannot be a fine-tuning target.")
    return adapter.format_finetune_data(signature, demos, plain_inputs, plain_outputs)


def tokenize_record(record: dict[str, Any], lora: LoRA, max_length: int = DEFAULT_MAX_LENGTH,
                    predictor_name: str | None = None) -> SFTExample | None:
    """Tokenize a chat record as the local model sees it at generation time (``None`` if the prompt
    alone does not fit in ``max_length`` tokens; long completions are cut at ``max_length``)."""
    messages = list(record.get("messages") or [])
    if not messages or messages[-1].get("role") != "assistant":
        raise ConfigurationError("A fine-tuning record must end with the assistant's reply.")
    backend = lora.lm.backend
    prompt_ids = backend.encode_messages(messages[:-1], lora.lm.model_type)
    tokenizer = backend.tokenizer
    reply = str(messages[-1].get("content", ""))
    completion_ids = [int(t) for t in tokenizer.encode(reply, add_special_tokens=False)]
    eos = tokenizer.eos_token_id
    end = int(eos) if eos is not None and int(eos) in backend.stop_token_ids else backend.stop_token_ids[0]
    completion_ids.append(end)
    room = int(max_length) - len(prompt_ids)
    if room < 1:
        logger.warning("Skipping a fine-tuning record: its prompt has %d tokens, max_length is %d.",
                       len(prompt_ids), max_length)
        return None
    return SFTExample(lora, prompt_ids, completion_ids[:room], messages, predictor_name)


def build_sft_examples(steps: Sequence[tuple[Any, dict[str, Any], Any]], *, lora: LoRA | None = None,
                       adapter: Any = None, exclude_demos: bool = False, max_length: int = DEFAULT_MAX_LENGTH,
                       names: dict[int, str] | None = None) -> list[SFTExample]:
    """Records of the steps whose predictor has a LoRA (or all steps with ``lora``), tokenized."""
    out: list[SFTExample] = []
    for predictor, inputs, outputs in steps:
        target = lora if lora is not None else lora_of(predictor)
        if target is None:
            continue
        record = finetune_record(predictor, inputs, outputs, adapter=adapter, exclude_demos=exclude_demos,
                                 lm=getattr(predictor, "lm", None) or target.adapted_lm())
        example = tokenize_record(record, target, max_length, (names or {}).get(id(predictor)))
        if example is not None:
            out.append(example)
    return out


# --- the loss ----------------------------------------------------------------------------------------
def _supports_logits_to_keep(model: Any) -> bool:
    import inspect

    cached = getattr(model, "_tgl_logits_to_keep", None)
    if cached is None:
        cached = "logits_to_keep" in inspect.signature(model.forward).parameters
        try:
            model._tgl_logits_to_keep = cached
        except Exception:
            pass
    return bool(cached)


# Causal LMs whose output is ``lm_head(final hidden state)`` with nothing after it (no soft-capping or
# scaling of the logits): their reply-token logits can be computed from the gathered hidden states.
PLAIN_HEAD_TYPES = ("llama", "mistral", "qwen2", "qwen3")


def _plain_head_parts(model: Any) -> tuple[Any, Any] | None:
    """(decoder stack, output head) of a plain-head causal LM (peft-wrapped or not), else None."""
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(causal, "config", None)
    if getattr(config, "model_type", None) not in PLAIN_HEAD_TYPES:
        return None
    decoder = causal.get_decoder() if hasattr(causal, "get_decoder") else None
    head = causal.get_output_embeddings() if hasattr(causal, "get_output_embeddings") else None
    if decoder is None or head is None or decoder is causal:
        return None
    return decoder, head


def _group_sum(model: Any, examples: Sequence[SFTExample], pad_id: int, torch: Any) -> Any:
    """Sum of reply-token cross-entropies of ``examples`` (one left-padded batch, adapter already active).

    Only the reply positions need logits. On a plain-head model the decoder's hidden states are
    gathered at those positions and the output head runs on that ``[reply tokens, hidden]`` matrix:
    asking the model for its last few positions instead (``logits_to_keep``) hands the head a
    strided 3-D slice, for which torch copies the vocabulary matrix once per sequence (a third of a
    training step's time on the embedded model)."""
    sequences = [ex.prompt_ids + ex.completion_ids for ex in examples]
    width = max(len(s) for s in sequences)
    device = next(model.parameters()).device
    ids = torch.full((len(sequences), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        ids[i, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
        mask[i, width - len(seq):] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    rows, cols, targets = [], [], []
    for i, ex in enumerate(examples):
        m = len(ex.completion_ids)
        for j in range(m):  # the logits at column (width - m - 1 + j) predict completion token j
            rows.append(i)
            cols.append(width - m - 1 + j)
            targets.append(ex.completion_ids[j])
    row_index, col_index = torch.tensor(rows, device=device), torch.tensor(cols, device=device)
    kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "use_cache": False}
    parts = _plain_head_parts(model)
    if parts is not None:
        decoder, head = parts
        hidden = decoder(**kwargs)[0]
        picked = head(hidden[row_index, col_index]).float()
    else:
        keep = max(len(ex.completion_ids) for ex in examples) + 1
        if _supports_logits_to_keep(model):
            kwargs["logits_to_keep"] = keep
        logits = model(**kwargs).logits[:, -keep:, :]
        picked = logits[row_index, col_index - (width - keep)].float()
    return torch.nn.functional.cross_entropy(picked, torch.tensor(targets, device=device), reduction="sum")


def sft_loss_tensor(examples: Sequence[SFTExample], train: bool = True) -> tuple[Any, int]:
    """``(token-mean cross-entropy tensor, number of reply tokens)`` of ``examples``, each group run with
    its own LoRA adapter active (under the model's adapter lock)."""
    import torch

    if not examples:
        raise BackwardError("SFT loss of zero examples: give it at least one accepted trace.")
    groups: dict[int, list[SFTExample]] = {}
    for ex in examples:
        groups.setdefault(id(ex.lora), []).append(ex)
    total = None
    tokens = 0
    for group in groups.values():
        lora = group[0].lora
        backend = lora.lm.backend
        with lora.switch.using(lora.adapter_name, train=train) as model:
            part = _group_sum(model, group, backend.pad_token_id, torch)
        total = part if total is None else total + part
        tokens += sum(len(ex.completion_ids) for ex in group)
    return total / max(1, tokens), tokens


class SFTLossValue:
    """The result of :class:`SFTLoss`: a torch scalar (``tensor``) with ``backward()``, like a torch loss."""

    def __init__(self, tensor: Any, num_tokens: int, examples: list[SFTExample]) -> None:
        self.tensor = tensor
        self.num_tokens = num_tokens
        self.examples = examples

    @property
    def value(self) -> float:
        return float(self.tensor.detach().item())

    def item(self) -> float:
        return self.value

    def __float__(self) -> float:
        return self.value

    @property
    def loras(self) -> list[LoRA]:
        seen: dict[int, LoRA] = {}
        for ex in self.examples:
            seen.setdefault(id(ex.lora), ex.lora)
        return list(seen.values())

    def backward(self, retain_graph: bool = False) -> None:
        """torch backward of the loss into the LoRA tensors' ``.grad`` (accumulates, as in torch)."""
        if not getattr(self.tensor, "requires_grad", False):
            raise BackwardError("This SFT loss does not depend on any trainable tensor: every LoRA it used has "
                                "requires_grad=False (call lora.requires_grad_(True)).")
        loras = self.loras
        switch = loras[0].switch
        with switch.lock:
            self.tensor.backward(retain_graph=retain_graph)

    def __add__(self, other: Any) -> Any:
        """``sft + text_loss`` is the combined loss of both (see ``Loss.__add__``); ``sft + sft`` sums the tensors."""
        if isinstance(other, SFTLossValue):
            return SFTLossValue(self.tensor + other.tensor, self.num_tokens + other.num_tokens,
                                [*self.examples, *other.examples])
        if isinstance(other, (int, float)) and other == 0:
            return self
        radd = getattr(other, "__radd__", None)
        return radd(self) if radd is not None and hasattr(other, "items") else NotImplemented

    __radd__ = __add__

    def __repr__(self) -> str:
        return f"SFTLossValue({self.value:.4f}, tokens={self.num_tokens}, records={len(self.examples)})"


def _accepted(metric: Callable[..., Any], example: Any, prediction: Any, trace: Any) -> bool:
    return read_metric(call_metric(metric, example, prediction, trace)).score > 0


def _with_gold(steps: list[tuple[Any, dict[str, Any], Any]], example: Any,
               keep_own: bool) -> list[tuple[Any, dict[str, Any], Any]]:
    """The steps with their outputs replaced by the gold values ``example`` has for them. A step none of
    whose output fields has a gold value is kept (with its own outputs) only when ``keep_own``."""
    out = []
    for predictor, inputs, outputs in steps:
        own = dict(outputs.items()) if hasattr(outputs, "items") else {}
        gold = {k: example[k] for k in predictor.signature.output_fields if k in example and k not in inputs}
        if gold:
            out.append((predictor, inputs, Prediction(**{**own, **gold})))
        elif keep_own:
            out.append((predictor, inputs, outputs))
    return out


class SFTLoss:
    """Supervised loss of the LoRA weights on accepted traces: ``SFTLoss()(traces).backward()``.

    Args:
        adapter: format records with this adapter (default: the one each predictor uses).
        exclude_demos: leave the predictors' demos out of the training prompts.
        max_length: most tokens per record (prompt + reply).
        metric: with ``examples`` given to the call, keep only predictions the metric accepts.
            With ``examples``, steps are trained towards the examples' gold outputs (see ``__call__``).
        lora: train this LoRA on every step (default: each predictor's own LoRA; steps without one are skipped).
    """

    def __init__(self, adapter: Any = None, exclude_demos: bool = False, max_length: int = DEFAULT_MAX_LENGTH,
                 metric: Callable[..., Any] | None = None, lora: LoRA | None = None) -> None:
        if int(max_length) < 2:
            raise ConfigurationError("max_length must be at least 2 tokens.")
        self.adapter = adapter
        self.exclude_demos = exclude_demos
        self.max_length = int(max_length)
        self.metric = metric
        self.lora = lora

    def __call__(self, traces: Any, examples: Sequence[Example] | None = None) -> SFTLossValue:
        """The SFT loss of ``traces``. With ``examples`` (one per trace), each step is trained towards the
        gold values the example holds for its output fields (fields without one keep the model's own
        output); with a ``metric`` too, only the traces the metric accepts are used, and steps without any
        gold field are trained on their own (accepted) outputs."""
        if examples is not None:
            items = list(traces) if isinstance(traces, (list, tuple)) else [traces]
            if len(items) != len(examples):
                raise ConfigurationError(f"{len(items)} traces but {len(examples)} examples: pass one per trace.")
            kept: list[tuple[Any, dict[str, Any], Any]] = []
            for item, example in zip(items, examples, strict=True):
                trace = trace_steps(item)
                if self.metric is not None and not _accepted(self.metric, example, item, trace):
                    continue
                kept.extend(_with_gold(trace, example, keep_own=self.metric is not None))
            traces = kept
        steps = trace_steps(traces)
        examples_ = build_sft_examples(steps, lora=self.lora, adapter=self.adapter, exclude_demos=self.exclude_demos,
                                       max_length=self.max_length)
        if not examples_:
            raise BackwardError("SFTLoss found no trace to train on: no accepted traces, or no predictor in them has a "
                                "LoRA (attach one with LoRA(lm).attach(predictor), or pass SFTLoss(lora=...)).")
        tensor, tokens = sft_loss_tensor(examples_)
        return SFTLossValue(tensor, tokens, examples_)
