"""The decode engine: prefill with shared-prefix reuse, then one token per running row per step.

Rows are grouped in *lanes*, one per LoRA adapter (``None``: the base model), because one forward
pass runs with one adapter active. A lane holds its rows' KV cache as one left-padded batch (a
transformers ``DynamicCache``), their attention mask and next positions. A new row is prefilled
alone and merged into its lane (both sides padded on the left to the same length); a finished
row is removed from the batch at once, and columns that only padding uses are cut off.

:class:`PrefixCache` keeps the KV of prompt prefixes (least recently used first out, bounded in
bytes). A prompt that shares at least ``min_tokens`` leading tokens with an entry (the chat
template's system message, instructions and demos of a few-shot program) copies that part of the
KV and prefills only the rest. Because the KV of position *i* depends only on tokens ``0..i``,
the reused part equals what a cold prefill computes. The first prompt is stored whole; a prompt
that shares only part of an entry stores that shared part (the *stem*), so the cache fills with
the prefixes that calls really share. Rows with a LoRA adapter do not use it (their weights change
during training).

torch is imported inside functions only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .batching import GenerationRow

logger = logging.getLogger(__name__)

DEFAULT_PREFIX_CACHE_MB = 256.0
DEFAULT_MIN_PREFIX_TOKENS = 16
DEFAULT_MAX_PREFILL_TOKENS = 8192  # rows x padded prompt length of one prefill pass


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PrefixCache:
    """KV tensors of prompt prefixes, least recently used evicted first, at most ``max_bytes``."""

    def __init__(self, max_bytes: int, min_tokens: int = DEFAULT_MIN_PREFIX_TOKENS) -> None:
        self.max_bytes = int(max_bytes)
        self.min_tokens = max(1, int(min_tokens))
        self._entries: OrderedDict[tuple[int, ...], tuple[list[tuple[Any, Any]], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.reused_tokens = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def peek(self, ids: Sequence[int]) -> int:
        """The longest prefix of ``ids`` an entry holds (no statistics, no LRU update)."""
        with self._lock:
            return max((_common_prefix(key, ids) for key in self._entries), default=0)

    def lookup(self, ids: Sequence[int]) -> tuple[int, tuple[int, ...] | None, list[tuple[Any, Any]] | None]:
        """``(length, entry key, layers)`` of the entry sharing the longest prefix with ``ids``
        (at most ``len(ids) - 1`` tokens, at least ``min_tokens``), or ``(0, None, None)``."""
        best, best_key = 0, None
        with self._lock:
            for key in self._entries:
                shared = _common_prefix(key, ids)
                if shared > best or (shared == best and best_key is not None and len(key) < len(best_key)):
                    best, best_key = shared, key
            best = min(best, len(ids) - 1)
            if best_key is None or best < self.min_tokens:
                self.misses += 1
                return 0, None, None
            self._entries.move_to_end(best_key)
            self.hits += 1
            self.reused_tokens += best
            return best, best_key, self._entries[best_key][0]

    def insert(self, ids: Sequence[int], layers: list[tuple[Any, Any]]) -> None:
        """Store the KV ``layers`` (``[1, heads, len(ids), dim]`` each) of the prompt ``ids``."""
        key = tuple(int(t) for t in ids)
        if len(key) < self.min_tokens:
            return
        size = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in layers)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (layers, size)
            self._bytes += size
            while self._bytes > self.max_bytes and self._entries:
                _, (_, freed) = self._entries.popitem(last=False)
                self._bytes -= freed


@dataclass(eq=False)
class _Lane:
    """The running rows of one adapter: a left-padded batch with its KV cache."""

    adapter: str | None
    rows: list[GenerationRow] = field(default_factory=list)
    cache: Any = None  # a transformers DynamicCache, batch dimension = rows
    mask: Any = None  # [rows, columns] long
    positions: Any = None  # [rows, 1] long: the position of each row's next token
    pending: list[int] = field(default_factory=list)  # each row's sampled token, not yet fed to the model


class DecodeEngine:
    """Prefill, merge and step rows on a loaded model (the :class:`~textgrad_like.lm.batching.Engine`
    of a local backend). Every transformers forward pass holds ``loaded.lock`` with the row's adapter
    active; base-model rows on the compact decoder need neither."""

    def __init__(self, loaded: Any, stop_token_ids: list[int], pad_token_id: int,
                 prefix_cache: PrefixCache | None = None, max_prefill_tokens: int = DEFAULT_MAX_PREFILL_TOKENS) -> None:
        self.loaded = loaded
        self.decoder = loaded.decoder
        self.tokenizer = loaded.tokenizer
        self.device = loaded.device
        self.stop_token_ids = list(stop_token_ids)
        self.pad_token_id = int(pad_token_id)
        self.prefix_cache = prefix_cache
        self.max_prefill_tokens = int(max_prefill_tokens)
        self.lanes: dict[str | None, _Lane] = {}
        #: running totals: prefill and decode seconds, prompt tokens prefilled, decode steps
        self.stats = {"prefill_s": 0.0, "prefill_tokens": 0, "decode_s": 0.0, "decode_steps": 0}
        self._cache_arg: str | None = None
        self._lora: dict[str, tuple[int, Any]] = {}  # adapter -> (adapter generation, its LoRA matrices)

    def active(self) -> int:
        return sum(len(lane.rows) for lane in self.lanes.values())

    def reset(self) -> None:
        self.lanes.clear()

    # -- forward passes -----------------------------------------------------------------------------
    def _compact(self, adapter: str | None) -> bool:
        """Rows run on the compact decoder when there is one: base-model rows always, adapter rows
        when the adapter is plain LoRA on the attention/MLP projections (else transformers runs them)."""
        if self.decoder is None:
            return False
        return adapter is None or self._lora_tables(adapter) is not None

    def _lora_tables(self, adapter: str) -> Any:
        """The adapter's LoRA matrices for the compact decoder (None: transformers must run it). The
        walk over the model's modules costs ~5 ms, so it is redone only when adapters change; the
        matrices themselves are the live parameters, which training updates in place."""
        generation = self.loaded.adapter_generation
        hit = self._lora.get(adapter)
        if hit is None or hit[0] != generation:
            from .compact_llama import lora_tables

            hit = (generation, lora_tables(self.loaded.model, adapter))
            self._lora[adapter] = hit
        return hit[1]

    def _forward(self, adapter: str | None, decode_step: bool = False, **inputs: Any) -> Any:
        if self.decoder is not None and adapter is None:  # reads only its own weights: no lock, no switching
            return self.decoder(use_cache=True, decode_step=decode_step, **inputs)
        model = self.loaded.model
        if self.decoder is not None:
            with self.loaded.lock:  # training updates the adapter's matrices under this lock
                self.loaded.use_adapter(adapter)  # checks that the adapter exists
                tables = self._lora_tables(adapter)
                if tables is not None:
                    return self.decoder(use_cache=True, decode_step=decode_step, lora=tables, **inputs)
        if self._cache_arg is None:
            import inspect

            # transformers 5 names the KV cache argument ``cache``; 4.x calls it ``past_key_values``.
            self._cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        cache = inputs.pop("cache", None)
        if cache is not None:
            inputs[self._cache_arg] = cache
        with self.loaded.lock:
            self.loaded.use_adapter(adapter)
            return model(use_cache=True, **inputs)

    def _new_cache(self, adapter: str | None, layers: list[tuple[Any, Any]]) -> Any:
        if self._compact(adapter):
            from .compact_llama import KVCache

            return KVCache.from_layers(layers)
        from transformers import DynamicCache

        return DynamicCache(ddp_cache_data=layers)

    def _plan_prefixes(self, rows: list[GenerationRow], torch: Any) -> list[tuple[int, Any]]:
        """For each row: how many leading prompt tokens come from the prefix cache, and their KV
        layers. Rows of one admission that share a prefix no entry holds get it computed once first."""
        prefixes = self.prefix_cache
        if prefixes is None or rows[0].adapter is not None:
            return [(0, None)] * len(rows)
        missing = [r.prompt_ids for r in rows if prefixes.peek(r.prompt_ids) < prefixes.min_tokens]
        if len(missing) > 1:
            ordered = sorted(missing)
            stem: list[int] = []
            for a, b in zip(ordered, ordered[1:], strict=False):
                shared = min(_common_prefix(a, b), len(a) - 1, len(b) - 1)
                if shared > len(stem):
                    stem = a[:shared]
            if len(stem) >= prefixes.min_tokens:  # one pass over the shared part, then every row reuses it
                self._prefill_rows([GenerationRow(stem, 1)], [(0, None)], torch)
        plan: list[tuple[int, Any]] = []
        for row in rows:
            shared, entry_key, layers = prefixes.lookup(row.prompt_ids)
            if layers is not None and entry_key is not None and shared < len(entry_key):
                prefixes.insert(row.prompt_ids[:shared],
                                [(k[:, :, :shared].clone(), v[:, :, :shared].clone()) for k, v in layers])
            plan.append((shared, layers))
        return plan

    def _prefill_rows(self, rows: list[GenerationRow], plan: list[tuple[int, Any]],
                      torch: Any) -> tuple[Any, Any, Any]:
        """One forward pass over the rows' prompts after their reused prefixes.

        Columns: ``[reused prefix, left-padded to K][prompt rest, left-padded to S]``; the attention
        mask hides the padding, position ids continue each row's own prefix. Returns the batch's KV
        cache, its attention mask and the logits of each row's next token."""
        width_past = max(shared for shared, _ in plan)
        rests = [row.prompt_ids[shared:] for row, (shared, _) in zip(rows, plan, strict=True)]
        width_rest = max(len(rest) for rest in rests)
        count = len(rows)
        ids = torch.full((count, width_rest), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((count, width_past + width_rest), dtype=torch.long)
        positions = torch.zeros((count, width_rest), dtype=torch.long)
        for i, (rest, (shared, _)) in enumerate(zip(rests, plan, strict=True)):
            ids[i, width_rest - len(rest):] = torch.tensor(rest, dtype=torch.long)
            positions[i, width_rest - len(rest):] = torch.arange(shared, shared + len(rest))
            mask[i, width_past - shared:width_past] = 1
            mask[i, width_past + width_rest - len(rest):] = 1
        past = None
        if width_past:
            layers = []
            template = next(found for _, found in plan if found is not None)
            for index, (key0, value0) in enumerate(template):
                keys = key0.new_zeros((count, key0.shape[1], width_past, key0.shape[3]))
                values = value0.new_zeros((count, value0.shape[1], width_past, value0.shape[3]))
                for i, (shared, found) in enumerate(plan):
                    if shared:
                        keys[i, :, width_past - shared:] = found[index][0][0, :, :shared]
                        values[i, :, width_past - shared:] = found[index][1][0, :, :shared]
                layers.append((keys.to(self.device), values.to(self.device)))
            past = self._new_cache(rows[0].adapter, layers)
        mask = mask.to(self.device)
        out = self._forward(rows[0].adapter, input_ids=ids.to(self.device), attention_mask=mask,
                            position_ids=positions.to(self.device), cache=past, logits_to_keep=1)
        cache = _cache_of(out)
        prefixes = self.prefix_cache
        if prefixes is not None and rows[0].adapter is None:
            for i, (row, (shared, _)) in enumerate(zip(rows, plan, strict=True)):
                if shared == 0:  # a prompt no entry shared: store it whole
                    start = width_past + width_rest - len(row.prompt_ids)
                    prefixes.insert(row.prompt_ids, [(layer.keys[i:i + 1, :, start:].clone(),
                                                      layer.values[i:i + 1, :, start:].clone())
                                                     for layer in cache.layers])
        return cache, mask, out.logits[:, -1, :].float()

    # -- admission ----------------------------------------------------------------------------------
    def admit(self, rows: list[GenerationRow]) -> list[GenerationRow]:
        import torch

        finished: list[GenerationRow] = []
        groups: dict[str | None, list[GenerationRow]] = {}
        for row in rows:
            groups.setdefault(row.adapter, []).append(row)
        with torch.inference_mode():
            for group in groups.values():
                for chunk in self._chunks(group):
                    finished += self._admit_chunk(chunk, torch)
        return finished

    def _chunks(self, rows: list[GenerationRow]) -> list[list[GenerationRow]]:
        """Rows split so that one prefill pass holds at most ``max_prefill_tokens`` prompt tokens."""
        chunks: list[list[GenerationRow]] = [[]]
        longest = 0
        for row in rows:
            longest_with = max(longest, len(row.prompt_ids))
            if chunks[-1] and longest_with * (len(chunks[-1]) + 1) > self.max_prefill_tokens:
                chunks.append([])
                longest_with = len(row.prompt_ids)
            chunks[-1].append(row)
            longest = longest_with
        return chunks

    def _admit_chunk(self, rows: list[GenerationRow], torch: Any) -> list[GenerationRow]:
        started = time.perf_counter()
        plan = self._plan_prefixes(rows, torch)
        cache, mask, logits = self._prefill_rows(rows, plan, torch)
        self.stats["prefill_s"] += time.perf_counter() - started
        finished: list[GenerationRow] = []
        keep: list[int] = []
        tokens: list[int] = []
        for i, (row, (shared, _)) in enumerate(zip(rows, plan, strict=True)):
            row.reused_prefix_tokens = shared
            self.stats["prefill_tokens"] += len(row.prompt_ids) - shared
            token = self._pick(row, logits[i:i + 1], torch)
            if self._record(row, token):
                finished.append(row)
            else:
                keep.append(i)
                tokens.append(token)
        if keep:
            positions = torch.tensor([[len(rows[i].prompt_ids)] for i in keep], dtype=torch.long, device=self.device)
            if len(keep) < len(rows):
                index = torch.tensor(keep, dtype=torch.long, device=self.device)
                for layer in cache.layers:
                    layer.keys, layer.values = layer.keys[index], layer.values[index]
                mask = mask[index]
            self._merge([rows[i] for i in keep], cache, mask, positions, tokens, torch)
        return finished

    def _merge(self, rows: list[GenerationRow], cache: Any, mask: Any, positions: Any, tokens: list[int],
               torch: Any) -> None:
        adapter = rows[0].adapter
        lane = self.lanes.get(adapter)
        if lane is None or not lane.rows:
            self.lanes[adapter] = _Lane(adapter, list(rows), cache, mask, positions, list(tokens))
            return
        width = max(lane.mask.shape[1], mask.shape[1])
        for old, new in zip(lane.cache.layers, cache.layers, strict=True):
            old.keys = torch.cat([_pad_left(old.keys, width, torch), _pad_left(new.keys, width, torch)], dim=0)
            old.values = torch.cat([_pad_left(old.values, width, torch), _pad_left(new.values, width, torch)], dim=0)
        lane.mask = torch.cat([_pad_left(lane.mask, width, torch), _pad_left(mask, width, torch)], dim=0)
        lane.positions = torch.cat([lane.positions, positions], dim=0)
        lane.rows += rows
        lane.pending += tokens

    # -- decoding -----------------------------------------------------------------------------------
    def step(self) -> list[GenerationRow]:
        import torch

        finished: list[GenerationRow] = []
        started = time.perf_counter()
        with torch.inference_mode():
            for adapter in list(self.lanes):
                lane = self.lanes[adapter]
                finished += self._step_lane(lane, torch)
                if not lane.rows:
                    del self.lanes[adapter]
        self.stats["decode_s"] += time.perf_counter() - started
        self.stats["decode_steps"] += 1
        return finished

    def _step_lane(self, lane: _Lane, torch: Any) -> list[GenerationRow]:
        step_ids = torch.tensor(lane.pending, dtype=torch.long, device=self.device).unsqueeze(1)
        lane.mask = torch.cat([lane.mask, torch.ones_like(step_ids)], dim=1)
        out = self._forward(lane.adapter, decode_step=True, input_ids=step_ids, attention_mask=lane.mask,
                            position_ids=lane.positions, cache=lane.cache)
        lane.cache = _cache_of(out)
        lane.positions = lane.positions + 1
        logits = out.logits[:, -1, :].float()
        keep: list[int] = []
        finished: list[GenerationRow] = []
        for j, row in enumerate(lane.rows):
            token = self._pick(row, logits[j:j + 1], torch)
            if self._record(row, token):
                finished.append(row)
            else:
                keep.append(j)
                lane.pending[j] = token
        if finished:
            self._keep(lane, keep, torch)
        return finished

    def _keep(self, lane: _Lane, keep: list[int], torch: Any) -> None:
        lane.rows = [lane.rows[j] for j in keep]
        lane.pending = [lane.pending[j] for j in keep]
        if not keep:
            lane.cache = lane.mask = lane.positions = None
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        lane.mask, lane.positions = lane.mask[index], lane.positions[index]
        used = lane.mask.any(dim=0)
        start = int(used.to(torch.long).argmax().item())  # leading columns no remaining row uses
        for layer in lane.cache.layers:
            layer.keys = layer.keys[index, :, start:]
            layer.values = layer.values[index, :, start:]
        lane.mask = lane.mask[:, start:]

    def _pick(self, row: GenerationRow, logits: Any, torch: Any) -> int:
        if row.constraint is not None:
            row.constraint.apply(logits)
        if not row.temperature or row.temperature <= 0:
            return int(torch.argmax(logits, dim=-1).item())
        probs = torch.softmax(logits / float(row.temperature), dim=-1)
        if row.top_p is not None and 0 < row.top_p < 1:
            sorted_probs, order = torch.sort(probs, descending=True)
            cumulative = sorted_probs.cumsum(-1)
            drop = cumulative - sorted_probs > row.top_p
            sorted_probs[drop] = 0.0
            probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
        return int(torch.multinomial(probs, 1).item())

    def _record(self, row: GenerationRow, token: int) -> bool:
        """Record ``token`` for ``row``; True (and the final text set) when the row is finished."""
        done = self._advance(row, token)
        if done:
            row.text = cut_at_stop(self.tokenizer.decode(row.token_ids, skip_special_tokens=True), row.stop)
        return done

    def _advance(self, row: GenerationRow, token: int) -> bool:
        if token in self.stop_token_ids:
            row.finish_reason = "stop"
            return True
        row.token_ids.append(token)
        if row.on_text is not None:
            try:
                row.on_text(self.tokenizer.decode(row.token_ids, skip_special_tokens=True))
            except Exception:  # a consumer's problem must not stop the batch
                logger.exception("Token streaming callback failed; streaming for this row stops.")
                row.on_text = None
        if row.constraint is not None:
            row.constraint.advance(token)
            if row.constraint.is_done():
                row.finish_reason = "stop"
                return True
        if row.stop:
            tail = self.tokenizer.decode(row.token_ids[-32:], skip_special_tokens=True)
            if any(s in tail for s in row.stop):
                row.finish_reason = "stop"
                return True
        if len(row.token_ids) >= row.max_new_tokens:
            row.finish_reason = "length"
            return True
        return False


def _pad_left(tensor: Any, width: int, torch: Any) -> Any:
    """``tensor`` ([rows, columns] or [rows, heads, columns, dim]) padded with zeros on the left to ``width`` columns."""
    dim = 1 if tensor.dim() == 2 else 2
    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([torch.zeros(shape, dtype=tensor.dtype, device=tensor.device), tensor], dim=dim)


def _cache_of(output: Any) -> Any:
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the first occurrence of any of the ``stop`` strings."""
    cut = len(text)
    for s in stop:
        at = text.find(s)
        if s and at != -1:
            cut = min(cut, at)
    return text[:cut]
