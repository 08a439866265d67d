"""An inference-only Llama-family forward pass in plain torch: the decode engine's fast path.

Why it exists: on a 2-core CPU a 135M model spends most of a decode step outside the matrix
products when it runs through transformers' generic modules (51 ms per token for SmolLM2-135M in
bfloat16), and importing transformers' modeling code costs about 3 s per process. This module
builds the same computation from the weights alone — fused q/k/v and gate/up projections,
``torch.nn.functional.scaled_dot_product_attention`` with grouped-query heads, ``rms_norm`` — and
imports nothing but torch.

Numerics. ``float32``/``bfloat16``/``float16`` keep every weight in that dtype. ``bfloat16+int8``
and ``float32+int8`` keep weights of that dtype for prefill (and the activations and KV cache in
it) and, on CPUs where torch has the kernel (``torch._weight_int8pack_mm``), an int8 copy of every
linear weight (one scale per output channel) for decode steps, where reading the weights is the
cost; the kernel takes bfloat16 inputs, so ``float32+int8`` rounds a decode step's activations to
bfloat16 going into each int8 product and returns float32. The ``+int4`` modes keep 4-bit groups
of 32 inputs instead (``torch._weight_int4pack_mm_for_cpu``, 1.7× faster than int8 at one row on
AVX2) for each weight whose groups already lie on a 16-level grid, which is what a Q4_0/Q4_1
GGUF's layers are once de-quantised, so 4 bits lose nothing there but the bfloat16 rounding of
each group's scale and offset; any other weight (the embedded model's Q8_0 output head, any
float checkpoint) keeps int8. The float32 modes exist for CPUs without bfloat16 arithmetic (AVX2
only), where torch's bfloat16 matrix product is a scalar loop about 4× slower than float32 and a
few-shot prompt's prefill would cost seconds.

The kernel is chosen by the kind of pass (prompt tokens: the prefill dtype; generated tokens: the
quantized weights), never by how many rows share the pass, and these kernels give each row the
same products whatever its neighbours. Attention is the one place a row meets the batch's layout:
torch's CPU kernel blocks the key columns, so a row among padded neighbours (or after a
prefix-cache hit) rounds its attention differently, by a few units of the dtype's last place; a
greedy token can then differ only where two candidates were that close (measured and tested, not
exact). The int8 copy is a second rounding of the same weights;
:func:`~textgrad_like.lm.loading.choose_numerics` keeps a mode only when its greedy tokens agree
with float32's. RMSNorm is computed in float32 and cast, as transformers does.

Supported: ``model_type`` ``llama``/``qwen2``/``mistral`` configs with SiLU MLPs, default RoPE and
no sliding window (:func:`supports`). LoRA adapters on the attention and MLP projections are
applied from the peft-injected transformers model's matrices (:func:`lora_tables`), so adapted rows
decode here too. Anything else — and training — goes through the transformers model.

The call signature mirrors what the engine passes to a transformers causal LM:
``model(input_ids=, attention_mask=, position_ids=, cache=, logits_to_keep=, use_cache=True)``
returns an object with ``.logits`` and ``.cache``; the cache has ``.layers``, each with
``.keys``/``.values`` tensors of shape ``[rows, kv_heads, columns, head_dim]`` (views of buffers
with spare columns, so that a decode step does not copy the cache: :class:`KVLayer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

INT8_K_MULTIPLE = 16  # torch._weight_int8pack_mm needs the input width to be a multiple of this
SUPPORTED_TYPES = ("llama", "qwen2", "mistral")
QUANTIZED_DECODE_MODES = ("bfloat16+int8", "float32+int8", "bfloat16+int4", "float32+int4")  # prefill dtype +
# the decode steps' weights: int8 per output channel, or (+int4) 4-bit groups where that is lossless
INT4_GROUP = 32  # GGUF's Q4_0/Q4_1 block size along the input dimension


KV_SPARE_COLUMNS = 128  # columns a layer's key/value buffers keep free for the next decode steps


class _KVBuffers:
    """Key and value buffers ``[rows, kv_heads, capacity, head_dim]``; columns ``:filled`` hold data."""

    def __init__(self, keys: Any, values: Any, filled: int) -> None:
        self.keys, self.values, self.filled = keys, values, filled


class KVLayer:
    """One layer's cached keys and values, ``[rows, kv_heads, columns, head_dim]``.

    After the first decode step ``keys``/``values`` are views of the leading columns of buffers with
    spare columns, so that a step writes its one new column in place instead of copying the whole
    cache (at 16 rows of 400 columns the copies were about an eighth of a step). The engine may
    assign new tensors to ``keys``/``values`` when rows leave or join; the next append then copies
    them into new buffers. Appending twice to the same layer (two continuations of one cache) is
    safe: only the latest extension of a buffer writes into it, any other copies first."""

    def __init__(self, keys: Any, values: Any, buffers: _KVBuffers | None = None) -> None:
        self.keys = keys
        self.values = values
        self._buffers = buffers

    def _owns_tip(self) -> bool:
        """Whether ``keys``/``values`` are the filled columns of this layer's buffers, nothing written after."""
        buffers = self._buffers
        return (buffers is not None and buffers.filled == self.keys.shape[2]
                and self.keys.data_ptr() == buffers.keys.data_ptr()
                and self.values.data_ptr() == buffers.values.data_ptr()
                and self.keys.shape[:2] == buffers.keys.shape[:2] and self.values.shape[:2] == buffers.values.shape[:2])

    def appended(self, keys: Any, values: Any) -> KVLayer:
        """A new layer: this layer's columns followed by ``keys``/``values`` (this layer is unchanged)."""
        length, extra = int(self.keys.shape[2]), int(keys.shape[2])
        buffers = self._buffers
        if buffers is None or not self._owns_tip() or length + extra > buffers.keys.shape[2]:
            capacity = length + extra + KV_SPARE_COLUMNS
            new_keys = self.keys.new_empty((*self.keys.shape[:2], capacity, self.keys.shape[3]))
            new_values = self.values.new_empty((*self.values.shape[:2], capacity, self.values.shape[3]))
            new_keys[:, :, :length] = self.keys
            new_values[:, :, :length] = self.values
            buffers = _KVBuffers(new_keys, new_values, length)
        buffers.keys[:, :, length:length + extra] = keys
        buffers.values[:, :, length:length + extra] = values
        buffers.filled = length + extra
        return KVLayer(buffers.keys[:, :, :length + extra], buffers.values[:, :, :length + extra], buffers)


@dataclass
class KVCache:
    """The per-layer key/value cache of a batch of rows (the engine edits ``layers`` in place)."""

    layers: list[KVLayer] = field(default_factory=list)

    @classmethod
    def from_layers(cls, layers: list[tuple[Any, Any]]) -> KVCache:
        return cls([KVLayer(k, v) for k, v in layers])


@dataclass
class CompactOutput:
    logits: Any
    cache: KVCache


def supports(config: dict[str, Any]) -> bool:
    """Whether :class:`CompactLlama` computes what transformers computes for ``config`` (a config dict)."""
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default")) if isinstance(rope, dict) else "default"
    window = config.get("sliding_window")
    if config.get("model_type") == "qwen2" and not config.get("use_sliding_window", False):
        window = None  # qwen2 configs carry a window size that only applies with use_sliding_window
    return (config.get("model_type") in SUPPORTED_TYPES and config.get("hidden_act", "silu") == "silu"
            and rope_type == "default" and not config.get("mlp_bias", False) and not window
            and float(config.get("partial_rotary_factor", 1.0) or 1.0) == 1.0)


def _rope_theta(config: dict[str, Any]) -> float:
    rope = config.get("rope_parameters")
    if isinstance(rope, dict) and rope.get("rope_theta") is not None:
        return float(rope["rope_theta"])
    return float(config.get("rope_theta") or 10000.0)


def torch_supported(torch: Any) -> bool:
    """torch >= 2.5: ``rms_norm`` and grouped-query ``scaled_dot_product_attention(enable_gqa=)``."""
    try:
        major, minor = (int(p) for p in torch.__version__.split("+")[0].split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (2, 5) and hasattr(torch.nn.functional, "rms_norm")


def int8_kernel_available(torch: Any) -> bool:
    return hasattr(torch, "_weight_int8pack_mm")


def int4_kernel_available(torch: Any) -> bool:
    return hasattr(torch, "_weight_int4pack_mm_for_cpu") and hasattr(torch, "_convert_weight_to_int4pack_for_cpu")


class CompactLlama:
    """The forward pass of a Llama-family causal LM, built from its state dict (inference only)."""

    takes_decode_step = True  # the engine says which passes are decode steps (the int8 kernel's)

    def __init__(self, state: dict[str, Any], config: dict[str, Any], device: str = "cpu",
                 mode: str = "float32") -> None:
        import torch

        if not supports(config):
            raise ValueError(f"config of model_type={config.get('model_type')!r} is not supported by CompactLlama; "
                             "load it through transformers.")
        if not torch_supported(torch):
            raise ValueError(f"CompactLlama needs torch >= 2.5 (found {torch.__version__}); transformers decodes.")
        self.torch = torch
        self.config = dict(config)
        self.device = device
        self.mode = mode
        self.dtype = {"float32": torch.float32, "float16": torch.float16}.get(mode.split("+")[0], torch.bfloat16)
        self.layers_count = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.kv_heads = int(config.get("num_key_value_heads") or self.heads)
        hidden = int(config["hidden_size"])
        self.head_dim = int(config.get("head_dim") or hidden // self.heads)
        self.hidden = hidden
        self.intermediate = int(config["intermediate_size"])
        self.eps = float(config.get("rms_norm_eps", 1e-6))
        self.vocab_size = int(config["vocab_size"])

        def weight(name: str) -> Any:
            return state[name].to(device=device, dtype=self.dtype)

        def optional(name: str) -> Any:
            return weight(name) if name in state else None

        embed = state.get("model.embed_tokens.weight")
        head = state.get("lm_head.weight")
        if embed is None and head is None:
            raise ValueError("The state dict has neither model.embed_tokens.weight nor lm_head.weight.")
        self.embed = (embed if embed is not None else head).to(device=device, dtype=self.dtype)
        self.head = self.embed if head is None or embed is None else head.to(device=device, dtype=self.dtype)
        self.norm = weight("model.norm.weight")
        # id(weight) -> ("int8", int8 weight [out, in], bf16 scales [out]) or
        # ("int4", packed 4-bit weight, bf16 scales and zeros [in / INT4_GROUP, out, 2]): decode steps' kernels
        self.decode_weights: dict[int, tuple[str, Any, Any]] = {}
        if mode in QUANTIZED_DECODE_MODES and (device != "cpu" or not int8_kernel_available(torch) or (
                mode.endswith("+int4") and not int4_kernel_available(torch))):
            raise ValueError(f"mode {mode!r} needs torch's {mode.split('+')[1]} weight kernel on the CPU; use "
                             f"{mode.split('+')[0]!r}.")
        self.blocks: list[dict[str, Any]] = []
        for i in range(self.layers_count):
            p = f"model.layers.{i}."
            qkv = torch.cat([state[p + f"self_attn.{n}_proj.weight"] for n in "qkv"])
            gate_up = torch.cat([state[p + "mlp.gate_proj.weight"], state[p + "mlp.up_proj.weight"]])
            biases = [state.get(p + f"self_attn.{n}_proj.bias") for n in "qkv"]
            if any(b is not None for b in biases) and not all(b is not None for b in biases):
                raise ValueError(f"layer {i} has biases on only some of q/k/v; transformers decodes this model.")
            self.blocks.append({
                "ln1": weight(p + "input_layernorm.weight"),
                "ln2": weight(p + "post_attention_layernorm.weight"),
                "qkv": qkv.to(device=device, dtype=self.dtype),
                "qkv_bias": torch.cat(biases).to(device=device, dtype=self.dtype) if all(
                    b is not None for b in biases) else None,
                "o": weight(p + "self_attn.o_proj.weight"),
                "o_bias": optional(p + "self_attn.o_proj.bias"),
                "gate_up": gate_up.to(device=device, dtype=self.dtype),
                "down": weight(p + "mlp.down_proj.weight"),
            })
            if mode in QUANTIZED_DECODE_MODES:  # from the state's own values: int4 checks them exactly
                block = self.blocks[-1]
                for name, original in (("qkv", qkv), ("o", state[p + "self_attn.o_proj.weight"]),
                                       ("gate_up", gate_up), ("down", state[p + "mlp.down_proj.weight"])):
                    self._add_decode_weight(block[name], original if mode.endswith("+int4") else None)
        if mode in QUANTIZED_DECODE_MODES:
            self._add_decode_weight(self.head, None)
        theta = _rope_theta(config)
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32, device=device)
                                         / self.head_dim))

    def _add_decode_weight(self, weight: Any, original: Any) -> None:
        """Register the decode-step copy of ``weight``: int4 when ``original`` (its float values) is
        already on a 4-bit grid, else int8 where the kernel takes the width; other widths keep
        ``weight`` itself (torch 2.13's int8 kernel crashes on them)."""
        grid = _lossless_int4(original, self.torch) if original is not None else None
        if grid is not None:
            self.decode_weights[id(weight)] = ("int4", *grid)
        elif weight.shape[1] % INT8_K_MULTIPLE == 0:
            quantized, scales = _quantize_rows(weight, self.torch)
            self.decode_weights[id(weight)] = ("int8", quantized, scales.to(self.torch.bfloat16))

    # -- the forward pass -----------------------------------------------------------------------------
    def _linear(self, x: Any, weight: Any, quantized: bool, bias: Any = None) -> Any:
        torch = self.torch
        packed = self.decode_weights.get(id(weight)) if quantized else None
        if packed is None:
            return torch.nn.functional.linear(x, weight, bias)
        shape = x.shape  # quantized weights, bfloat16 activations (the kernels' fast path)
        flat = x.reshape(-1, shape[-1]).to(torch.bfloat16)
        if packed[0] == "int4":
            out = torch._weight_int4pack_mm_for_cpu(flat, packed[1], INT4_GROUP, packed[2])
        else:
            out = torch._weight_int8pack_mm(flat, packed[1], packed[2])
        out = out.view(*shape[:-1], -1).to(x.dtype)
        return out if bias is None else out + bias

    def _norm(self, x: Any, weight: Any) -> Any:
        """RMSNorm as transformers computes it: ``x * rsqrt(mean(x²) + eps)`` in float32, cast, then
        scaled. Written out rather than ``rms_norm``: torch's fused CPU kernel is about 10× slower on
        a prompt's ``[rows, tokens, hidden]`` (1.4 ms against 0.14 ms at 480 tokens on AVX2)."""
        torch = self.torch
        full = x if x.dtype == torch.float32 else x.to(torch.float32)
        normed = torch.mul(full, torch.rsqrt(torch.mean(full * full, -1, keepdim=True).add_(self.eps)))
        return weight * (normed if x.dtype == torch.float32 else normed.to(x.dtype))

    def _rotary(self, positions: Any) -> tuple[Any, Any]:
        """``cos`` and ``signed_sin`` ``[rows, 1, tokens, head_dim]``: rotating ``x`` is
        ``x * cos + x.roll(head_dim // 2, -1) * signed_sin``, which is transformers'
        ``x * cos + rotate_half(x) * sin`` exactly (the sign moves from ``x`` to ``sin``) in two ops
        fewer."""
        torch = self.torch
        freqs = positions[..., None].to(torch.float32) * self.inv_freq
        angles = torch.cat([freqs, freqs], dim=-1)[:, None]
        sin = angles.sin()
        half = self.head_dim // 2
        signed = torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)
        return angles.cos().to(self.dtype), signed.to(self.dtype)

    def _mask(self, attention_mask: Any, past: int, tokens: int) -> Any:
        """Boolean ``[rows, 1, tokens, past + tokens]``: a token sees unpadded columns up to itself.
        A padding token also sees itself, so that no query row is fully masked (NaN-free)."""
        torch = self.torch
        valid = attention_mask.to(torch.bool)[:, None, None, :]
        if tokens == 1:
            return valid
        columns = torch.arange(past + tokens, device=attention_mask.device)
        query_columns = past + torch.arange(tokens, device=attention_mask.device)
        causal = columns[None, :] <= query_columns[:, None]
        itself = columns[None, :] == query_columns[:, None]
        return (valid & causal[None, None]) | itself[None, None]

    def __call__(self, input_ids: Any, attention_mask: Any = None, position_ids: Any = None, cache: Any = None,
                 past_key_values: Any = None, logits_to_keep: int = 0, use_cache: bool = True,
                 decode_step: bool = False, lora: dict[tuple[int, str], list[tuple[Any, Any, float]]] | None = None,
                 **_: Any) -> CompactOutput:
        torch = self.torch
        functional = torch.nn.functional
        cache = cache if cache is not None else past_key_values
        rows, tokens = input_ids.shape
        past = int(cache.layers[0].keys.shape[2]) if cache is not None and cache.layers else 0
        if attention_mask is None:
            attention_mask = torch.ones((rows, past + tokens), dtype=torch.long, device=input_ids.device)
        if position_ids is None:
            position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)[:, past:]
        quantized = bool(self.decode_weights) and decode_step and tokens == 1
        mask = self._mask(attention_mask, past, tokens)
        cos, sin = self._rotary(position_ids)
        heads, kv_heads, head_dim = self.heads, self.kv_heads, self.head_dim
        x = functional.embedding(input_ids, self.embed)
        layers: list[KVLayer] = []
        for index, block in enumerate(self.blocks):
            h = self._norm(x, block["ln1"])
            qkv = self._linear(h, block["qkv"], quantized, block["qkv_bias"])
            if lora and any((index, name) in lora for name in "qkv"):
                widths = [heads * head_dim, kv_heads * head_dim, kv_heads * head_dim]
                qkv = torch.cat([_with_lora(out, h, lora.get((index, name)))
                                 for out, name in zip(qkv.split(widths, dim=-1), "qkv", strict=True)], dim=-1)
            qkv = qkv.view(rows, tokens, heads + 2 * kv_heads, head_dim).transpose(1, 2)
            qk = qkv[:, :heads + kv_heads]  # queries and keys rotate together
            qk = qk * cos + qk.roll(head_dim // 2, -1) * sin
            q, k, v = qk[:, :heads], qk[:, heads:], qkv[:, heads + kv_heads:]
            layer = cache.layers[index].appended(k, v) if past else KVLayer(k, v)
            k, v = layer.keys, layer.values
            layers.append(layer)
            attended = functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=kv_heads != heads)
            attended = attended.transpose(1, 2).reshape(rows, tokens, heads * head_dim)
            projected = self._linear(attended, block["o"], quantized, block["o_bias"])
            x = x + (_with_lora(projected, attended, lora.get((index, "o"))) if lora else projected)
            h = self._norm(x, block["ln2"])
            gate_up = self._linear(h, block["gate_up"], quantized)
            gate, up = gate_up[..., :self.intermediate], gate_up[..., self.intermediate:]
            if lora:
                gate, up = _with_lora(gate, h, lora.get((index, "gate"))), _with_lora(up, h, lora.get((index, "up")))
            hidden = functional.silu(gate) * up
            down = self._linear(hidden, block["down"], quantized)
            x = x + (_with_lora(down, hidden, lora.get((index, "down"))) if lora else down)
        if logits_to_keep:
            x = x[:, -int(logits_to_keep):]
        x = self._norm(x, self.norm)
        return CompactOutput(self._linear(x, self.head, quantized), KVCache(layers))


def _with_lora(out: Any, x: Any, adapters: list[tuple[Any, Any, float]] | None) -> Any:
    """``out`` plus the LoRA updates ``B(A(x)) * scaling`` of ``adapters``, computed as peft does: in
    the adapter's dtype, added to the base output in that dtype, then cast back."""
    if not adapters:
        return out
    total = out.to(adapters[0][0].dtype)
    for a, b, scaling in adapters:
        total = total + (x.to(a.dtype) @ a.t() @ b.t()) * scaling
    return total.to(out.dtype)


LORA_MODULES = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o", "gate_proj": "gate", "up_proj": "up",
                "down_proj": "down"}


def lora_tables(model: Any, adapter: str) -> dict[tuple[int, str], list[tuple[Any, Any, float]]] | None:
    """The LoRA matrices of ``adapter`` in a peft-injected transformers ``model``, keyed by (layer,
    projection) for :meth:`CompactLlama.__call__`; None when the adapter has a part the compact forward
    does not compute (a module outside the attention/MLP projections, DoRA or another variant, a LoRA
    bias, merged weights), so that the caller runs the transformers model instead."""
    tables: dict[tuple[int, str], list[tuple[Any, Any, float]]] = {}
    for name, module in model.named_modules():
        lora_a = getattr(module, "lora_A", None)
        if lora_a is None or adapter not in lora_a:
            continue
        parts = name.split(".")
        short = LORA_MODULES.get(parts[-1])
        if short is None or len(parts) < 4 or parts[-4] != "layers" or not parts[-3].isdigit() \
                or getattr(module, "merged", False) or adapter in (getattr(module, "lora_variant", {}) or {}) \
                or (getattr(module, "use_dora", {}) or {}).get(adapter) \
                or (getattr(module, "lora_bias", {}) or {}).get(adapter):
            return None
        tables.setdefault((int(parts[-3]), short), []).append(
            (lora_a[adapter].weight, module.lora_B[adapter].weight, float(module.scaling[adapter])))
    return tables


def _lossless_int4(weight: Any, torch: Any, group: int = INT4_GROUP) -> tuple[Any, Any] | None:
    """``weight`` [out, in] packed for ``torch._weight_int4pack_mm_for_cpu`` with its bfloat16 scales and
    zeros, if every group of ``group`` inputs already lies on a 16-level grid (a Q4_0/Q4_1 GGUF's
    layers, de-quantised): then 4 bits lose nothing but the bfloat16 rounding of each group's scale
    and offset. None for any other weight (int8 per channel serves it) or a shape the kernel refuses."""
    full = weight.to(torch.float32)
    rows, width = full.shape
    if width % group or rows % 16:
        return None
    groups = full.reshape(rows, width // group, group)
    low, high = groups.amin(-1), groups.amax(-1)
    step = (high - low) / 15
    safe = torch.where(step > 0, step, torch.ones_like(step))
    scaled = (groups - low[..., None]).div_(safe[..., None])  # in steps above the group's minimum
    levels = scaled.round()
    if float(scaled.sub_(levels).abs_().amax()) > 0.01:  # off the grid by more than 1% of a step: not 4-bit
        return None
    levels.clamp_(0, 15)
    try:
        packed = torch._convert_weight_to_int4pack_for_cpu(levels.reshape(rows, width).to(torch.int32), 1)
    except RuntimeError:
        return None
    # the kernel computes (level - 8) * scale + zero
    scales_and_zeros = torch.stack([step, low + 8 * step], dim=-1).transpose(0, 1).contiguous()
    return packed, scales_and_zeros.to(torch.bfloat16)


def _quantize_rows(weight: Any, torch: Any) -> tuple[Any, Any]:
    """Symmetric per-output-channel int8 copy of ``weight`` and its float32 scales."""
    full = weight.to(torch.float32)
    scales = (full.abs().amax(dim=1) / 127.0).clamp(min=1e-8)
    quantized = torch.div(full, scales[:, None]).round_().clamp_(-127, 127).to(torch.int8)  # in place: half the passes
    return quantized, scales
