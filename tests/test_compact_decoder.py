"""The compact decoder computes what transformers computes; the light tokenizer encodes what
transformers encodes; a warm load needs neither transformers' modeling code nor its tokenizer."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from textgrad_like.lm.compact_llama import CompactLlama, KVCache, supports  # noqa: E402
from textgrad_like.lm.decoding import _cache_of  # noqa: E402
from textgrad_like.lm.text_tokenizer import TextTokenizer  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from greedy_runs import assert_same_up_to_rounding, record_step_logits  # noqa: E402
from test_constrained import build_tiny_model_dir  # noqa: E402


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_model_dir(str(tmp_path_factory.mktemp("tiny-compact")), max_positions=64)


def _padded_batch():
    ids = torch.tensor([[0, 0, 0, 40, 41, 42, 43, 44], [10, 20, 30, 40, 50, 60, 70, 80]])
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1], [1] * 8])
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def _compare(reference, compact) -> None:
    ids, mask, positions = _padded_batch()
    with torch.inference_mode():
        expected = reference(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        got = compact(input_ids=ids, attention_mask=mask, position_ids=positions)
        real = mask.bool()  # padding positions hold garbage in both
        torch.testing.assert_close(got.logits[real], expected.logits.float()[real], atol=1e-5, rtol=1e-4)
        step = torch.tensor([[7], [8]])
        mask2 = torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], dim=1)
        expected2 = reference(input_ids=step, attention_mask=mask2, position_ids=positions[:, -1:] + 1,
                              cache=_cache_of(expected), use_cache=True)
        got2 = compact(input_ids=step, attention_mask=mask2, position_ids=positions[:, -1:] + 1, cache=got.cache)
        torch.testing.assert_close(got2.logits[:, -1], expected2.logits[:, -1].float(), atol=1e-5, rtol=1e-4)
        assert got2.cache.layers[0].keys.shape[2] == 9


def test_compact_decoder_matches_transformers_with_padding_and_cache(tiny_dir):
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_dir, dtype="float32").eval()
    config = model.config.to_dict()
    assert supports(config)
    _compare(model, CompactLlama(model.state_dict(), config, "cpu", "float32"))


def test_compact_decoder_matches_qwen2_with_attention_biases():
    torch.manual_seed(0)
    config = transformers.Qwen2Config(vocab_size=120, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                      tie_word_embeddings=True)
    model = transformers.Qwen2ForCausalLM(config).eval()
    with torch.no_grad():  # random biases, so that a dropped bias shows
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.normal_(0, 0.5)
    as_dict = model.config.to_dict()
    assert supports(as_dict)
    state = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied: the embedding only
    _compare(model, CompactLlama(state, as_dict, "cpu", "float32"))


def test_unsupported_architectures_fall_back_to_transformers():
    base = {"model_type": "llama", "hidden_act": "silu"}
    assert supports(base)
    assert not supports({**base, "rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5}})
    assert not supports({**base, "model_type": "gemma"})
    assert not supports({**base, "model_type": "mistral", "sliding_window": 4096})
    assert not supports({**base, "hidden_act": "gelu"})
    with pytest.raises(ValueError, match="not supported"):
        CompactLlama({}, {"model_type": "gpt2"})


def test_prefix_reuse_through_the_compact_cache_equals_a_cold_prefill(tiny_dir):
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_dir, dtype="float32").eval()
    compact = CompactLlama(model.state_dict(), model.config.to_dict(), "cpu", "float32")
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12]])
    with torch.inference_mode():
        cold = compact(input_ids=ids).logits[:, -1]
        prefix = compact(input_ids=ids[:, :5]).cache
        reused = KVCache.from_layers([(layer.keys.clone(), layer.values.clone()) for layer in prefix.layers])
        warm = compact(input_ids=ids[:, 5:], position_ids=torch.arange(5, 8)[None], cache=reused).logits[:, -1]
    torch.testing.assert_close(warm, cold, atol=1e-5, rtol=1e-4)


def test_decode_steps_write_the_cache_in_place_and_compute_what_a_copied_cache_computes(tiny_dir):
    """Decode steps append their column into the buffers' spare columns (no copy of the cache), and
    the logits equal those of steps fed a freshly copied cache; rows dropped or added by the engine
    (new tensors assigned to a layer) and two continuations of one cache stay correct."""
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_dir, dtype="float32").eval()
    compact = CompactLlama(model.state_dict(), model.config.to_dict(), "cpu", "float32")
    ids = torch.tensor([[5, 6, 7, 8, 9], [9, 8, 7, 6, 5]])
    steps = [torch.tensor([[11], [12]]), torch.tensor([[13], [14]]), torch.tensor([[15], [16]])]

    def copied(cache):
        return KVCache.from_layers([(layer.keys.clone(), layer.values.clone()) for layer in cache.layers])

    with torch.inference_mode():
        cache = compact(input_ids=ids).cache
        reference_cache = copied(cache)
        pointers = []
        for i, step in enumerate(steps):
            positions = torch.full((2, 1), 5 + i)
            out = compact(input_ids=step, position_ids=positions, cache=cache, decode_step=True)
            want = compact(input_ids=step, position_ids=positions, cache=reference_cache, decode_step=True)
            torch.testing.assert_close(out.logits, want.logits, atol=0, rtol=0)
            cache, reference_cache = out.cache, copied(want.cache)
            pointers.append(cache.layers[0].keys.data_ptr())
        assert len(set(pointers)) == 1  # the first step made the buffers, the next ones wrote into them
        assert cache.layers[0].keys.shape[2] == 8

        branch = copied(cache)  # two continuations of one cache: the second must not see the first's column
        first = compact(input_ids=torch.tensor([[21], [22]]), position_ids=torch.full((2, 1), 8), cache=cache)
        second = compact(input_ids=torch.tensor([[23], [24]]), position_ids=torch.full((2, 1), 8), cache=cache)
        alone = compact(input_ids=torch.tensor([[23], [24]]), position_ids=torch.full((2, 1), 8), cache=branch)
        torch.testing.assert_close(second.logits, alone.logits, atol=0, rtol=0)
        assert first.cache.layers[0].keys[:, :, -1].ne(second.cache.layers[0].keys[:, :, -1]).any()

        kept = first.cache  # the engine drops row 0: new tensors assigned to every layer
        for layer in kept.layers:
            layer.keys, layer.values = layer.keys[1:], layer.values[1:]
        reference = copied(kept)
        out = compact(input_ids=torch.tensor([[30]]), position_ids=torch.full((1, 1), 9), cache=kept)
        want = compact(input_ids=torch.tensor([[30]]), position_ids=torch.full((1, 1), 9), cache=reference)
        torch.testing.assert_close(out.logits, want.logits, atol=0, rtol=0)


@pytest.mark.skipif(not hasattr(torch, "_weight_int8pack_mm"), reason="torch has no int8 weight kernel here")
def test_int8_weights_serve_decode_steps_and_stay_close():
    compact = CompactLlama.__new__(CompactLlama)
    compact.torch = torch
    weight = torch.randn(96, 64).to(torch.bfloat16)
    from textgrad_like.lm.compact_llama import _quantize_rows

    quantized, scales = _quantize_rows(weight, torch)
    compact.decode_weights = {id(weight): ("int8", quantized, scales.to(torch.bfloat16))}
    x = torch.randn(1, 5, 64).to(torch.bfloat16)
    wide = compact._linear(x, weight, quantized=False).float()
    narrow = compact._linear(x, weight, quantized=True).float()
    assert not torch.equal(wide, narrow)  # the int8 kernel ran
    assert (narrow - wide).norm() / wide.norm() < 0.02


def test_text_tokenizer_matches_the_transformers_tokenizer(tiny_dir):
    reference = transformers.AutoTokenizer.from_pretrained(tiny_dir)
    light = TextTokenizer(tiny_dir)
    conversations = [
        [{"role": "user", "content": "hello there, what is 2+2?\n ok"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Résumé «x» 😀"},
         {"role": "assistant", "content": '{"a": 1}'}, {"role": "user", "content": "again"}],
    ]
    for messages in conversations:
        expected = reference.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        expected = expected["input_ids"] if hasattr(expected, "keys") else expected
        assert light.apply_chat_template(messages, add_generation_prompt=True) == list(expected)
    ids = light.encode("the cat sat <|im_end|> on the mat")
    assert ids == reference.encode("the cat sat <|im_end|> on the mat")
    assert light.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True)
    assert light.batch_decode([[i] for i in range(len(light))]) == reference.batch_decode(
        [[i] for i in range(len(reference))])
    assert (light.eos_token_id, light.pad_token_id, light.bos_token_id, len(light)) == (
        reference.eos_token_id, reference.pad_token_id, reference.bos_token_id, len(reference))
    assert light.get_vocab() == reference.get_vocab()


def test_grammar_vocabulary_is_the_same_from_either_tokenizer(tiny_dir):
    xgr = pytest.importorskip("xgrammar")
    from textgrad_like.lm.constrained import _tokenizer_info

    reference = transformers.AutoTokenizer.from_pretrained(tiny_dir)
    a = _tokenizer_info(xgr, reference, len(reference), [reference.eos_token_id])
    b = _tokenizer_info(xgr, TextTokenizer(tiny_dir), len(reference), [reference.eos_token_id])
    assert (a.vocab_type, a.add_prefix_space, a.decoded_vocab) == (b.vocab_type, b.add_prefix_space, b.decoded_vocab)


def test_a_hostile_chat_template_cannot_reach_python(tiny_dir, tmp_path):
    """Attack: a model folder whose chat template walks from a message to Python internals."""
    import shutil

    import jinja2

    folder = tmp_path / "hostile"
    shutil.copytree(tiny_dir, folder)
    (folder / "chat_template.jinja").write_text(
        "{{ messages.__class__.__mro__[1].__subclasses__() }}{{ cycler.__init__.__globals__.os.system('id') }}")
    with pytest.raises(jinja2.exceptions.SecurityError):
        TextTokenizer(str(folder)).apply_chat_template([{"role": "user", "content": "x"}])
    (folder / "chat_template.jinja").write_text("{% set _ = messages.append({'role': 'x'}) %}{{ messages }}")
    with pytest.raises(jinja2.exceptions.SecurityError):
        TextTokenizer(str(folder)).apply_chat_template([{"role": "user", "content": "x"}])


@pytest.mark.integration
def test_warm_load_of_the_embedded_model_skips_transformers_and_builds_it_on_demand():
    code = (
        "import sys, time\n"
        "from textgrad_like.lm import LM\n"
        "LM('local/embedded', max_tokens=2, cache=False).load()\n"  # converts on a first run, reads the entry after
        "from textgrad_like.lm import local_backend\n"
        "print('modeling-before', 'transformers.modeling_utils' in sys.modules)\n"
    )
    warm = (
        "import sys, time\n"
        "started = time.perf_counter()\n"
        "from textgrad_like.lm import LM\n"
        "lm = LM('local/embedded', temperature=0.0, max_tokens=8, cache=False)\n"
        "text = lm('Name a color.')[0]\n"
        "b = lm.backend\n"
        "print('warm', b.loaded.from_cache, type(b.decoder).__name__, 'transformers.modeling_utils' in sys.modules,"
        " 'transformers.tokenization_utils_base' in sys.modules, bool(text))\n"
        "print('hf', type(b.model).__name__, 'transformers.modeling_utils' in sys.modules)\n"
    )
    root = os.path.dirname(os.path.dirname(__file__))
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    out = subprocess.run([sys.executable, "-c", warm], capture_output=True, text=True, check=True, cwd=root)
    lines = dict(line.split(" ", 1) for line in out.stdout.strip().splitlines())
    assert lines["warm"] == "True CompactLlama False False True"
    assert lines["hf"] == "LlamaForCausalLM True"


INT8_MODES = [("bfloat16+int8", torch.bfloat16), ("float32+int8", torch.float32), ("bfloat16+int4", torch.bfloat16),
              ("float32+int4", torch.float32)]


@pytest.mark.skipif(not hasattr(torch, "_weight_int4pack_mm_for_cpu"), reason="torch has no int4 weight kernel here")
def test_int4_serves_only_weights_already_on_a_4_bit_grid():
    """A Q4_1-style weight (each group of 32 inputs is min + step × level, level 0..15) is packed to int4
    and multiplies as the float weight does, up to bfloat16 rounding; a float weight is refused, so
    it keeps int8 and 4 bits never add error of their own."""
    from textgrad_like.lm.compact_llama import INT4_GROUP, _lossless_int4

    torch.manual_seed(0)
    rows, width = 48, 96
    levels = torch.randint(0, 16, (rows, width // INT4_GROUP, INT4_GROUP)).float()
    levels[..., 0], levels[..., 1] = 0, 15  # every group spans its grid, as GGUF's quantizer makes it
    step, low = torch.rand(rows, width // INT4_GROUP, 1) * 0.01 + 1e-3, torch.randn(rows, width // INT4_GROUP, 1) * 0.05
    weight = (levels * step + low).reshape(rows, width)
    packed = _lossless_int4(weight, torch)
    assert packed is not None
    x = torch.randn(3, width).to(torch.bfloat16)
    got = torch._weight_int4pack_mm_for_cpu(x, packed[0], INT4_GROUP, packed[1]).float()
    expected = x.float() @ weight.t()
    assert (got - expected).norm() / expected.norm() < 0.01
    assert _lossless_int4(torch.randn(rows, width) * 0.02, torch) is None
    assert _lossless_int4(weight[:, :80], torch) is None  # a width the groups do not divide


@pytest.mark.skipif(not hasattr(torch, "_weight_int4pack_mm_for_cpu"), reason="torch has no int4 weight kernel here")
def test_int4_mode_packs_the_4_bit_layers_and_keeps_int8_for_the_rest(tiny_dir):
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_dir, dtype="float32").eval()
    state = model.state_dict()
    from textgrad_like.lm.compact_llama import INT4_GROUP

    down = state["model.layers.0.mlp.down_proj.weight"]  # put one layer's down projection on a 4-bit grid
    groups = down.reshape(down.shape[0], -1, INT4_GROUP)
    low, step = groups.amin(-1, keepdim=True), (groups.amax(-1, keepdim=True) - groups.amin(-1, keepdim=True)) / 15
    state["model.layers.0.mlp.down_proj.weight"] = (((groups - low) / step).round() * step + low).reshape(down.shape)
    compact = CompactLlama(state, model.config.to_dict(), "cpu", "float32+int4")
    kinds = {name: compact.decode_weights[id(block[name])][0] for block in compact.blocks[:1] for name in ("down", "o")}
    assert kinds == {"down": "int4", "o": "int8"}
    assert compact.decode_weights[id(compact.head)][0] == "int8"
    exact = CompactLlama(state, model.config.to_dict(), "cpu", "float32")
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    a, b = exact(input_ids=ids[:, :4]), compact(input_ids=ids[:, :4])
    a = exact(input_ids=ids[:, 4:], cache=a.cache, decode_step=True).logits
    b = compact(input_ids=ids[:, 4:], cache=b.cache, decode_step=True).logits
    assert not torch.equal(a, b) and torch.allclose(a, b, atol=0.05 * float(a.abs().max()))


@pytest.mark.skipif(not hasattr(torch, "_weight_int8pack_mm"), reason="torch has no int8 weight kernel here")
@pytest.mark.parametrize(("mode", "dtype"), INT8_MODES)
def test_int8_mode_end_to_end_on_a_tiny_model(tiny_dir, mode, dtype):
    """LM(dtype=mode) decodes through the compact decoder with int8 weights for decode steps; the
    prefill, the activations and the KV cache stay in the mode's first dtype."""
    from textgrad_like.lm import LM

    lm = LM(f"local/{tiny_dir}", dtype=mode, temperature=0.0, max_tokens=6, cache=False)
    text = lm("hello")[0]
    decoder = lm.backend.decoder
    assert isinstance(text, str) and decoder.mode == mode and decoder.decode_weights and decoder.dtype == dtype
    assert lm.backend.model.dtype == dtype  # the transformers model (LoRA, training) runs in that dtype
    ids = torch.tensor([[3, 4, 5, 6]])
    prefill = decoder(input_ids=ids)
    step = decoder(input_ids=torch.tensor([[7]]), cache=prefill.cache, decode_step=True)
    assert prefill.cache.layers[0].keys.dtype == dtype and step.logits.dtype == dtype
    assert step.cache.layers[0].keys.dtype == dtype


@pytest.mark.skipif(not hasattr(torch, "_weight_int8pack_mm"), reason="torch has no int8 weight kernel here")
def test_float32_int8_decode_steps_stay_close_to_float32(tiny_dir):
    """float32+int8 differs from float32 only by the int8 weights and the bfloat16 rounding of a decode
    step's matrix-product inputs: prefill logits are float32's exactly, decode logits close to them."""
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_dir, dtype="float32").eval()
    state, config = model.state_dict(), model.config.to_dict()
    exact = CompactLlama(state, config, "cpu", "float32")
    mixed = CompactLlama(state, config, "cpu", "float32+int8")
    ids = torch.tensor([[3, 4, 5, 6, 7, 8]])
    a, b = exact(input_ids=ids[:, :5]), mixed(input_ids=ids[:, :5])
    assert torch.equal(a.logits, b.logits)
    a = exact(input_ids=ids[:, 5:], cache=a.cache, decode_step=True).logits
    b = mixed(input_ids=ids[:, 5:], cache=b.cache, decode_step=True).logits
    assert not torch.equal(a, b) and torch.allclose(a, b, atol=0.05 * float(a.abs().max()))


def test_int8_weights_skip_widths_the_kernel_cannot_take():
    config = {"model_type": "llama", "hidden_act": "silu", "num_hidden_layers": 1, "num_attention_heads": 1,
              "num_key_value_heads": 1, "hidden_size": 8, "intermediate_size": 32, "vocab_size": 20, "head_dim": 8}
    torch.manual_seed(0)
    state = {"model.embed_tokens.weight": torch.randn(20, 8), "model.norm.weight": torch.ones(8),
             "model.layers.0.input_layernorm.weight": torch.ones(8),
             "model.layers.0.post_attention_layernorm.weight": torch.ones(8),
             **{f"model.layers.0.self_attn.{n}_proj.weight": torch.randn(8, 8) for n in "qkvo"},
             "model.layers.0.mlp.gate_proj.weight": torch.randn(32, 8),
             "model.layers.0.mlp.up_proj.weight": torch.randn(32, 8),
             "model.layers.0.mlp.down_proj.weight": torch.randn(8, 32)}
    if not hasattr(torch, "_weight_int8pack_mm"):
        pytest.skip("torch has no int8 weight kernel here")
    compact = CompactLlama(state, config, "cpu", "bfloat16+int8")
    assert len(compact.decode_weights) == 1  # only down_proj (input width 32); width 8 would crash the kernel
    out = compact(input_ids=torch.tensor([[1]]))
    assert out.logits.shape == (1, 1, 20) and torch.isfinite(out.logits).all()


@pytest.mark.skipif(not hasattr(torch, "_weight_int8pack_mm"), reason="torch has no int8 weight kernel here")
@pytest.mark.parametrize(("mode", "dtype"), INT8_MODES)
def test_int8_mode_answers_a_prompt_alike_alone_in_a_batch_and_after_a_prefix_hit(tiny_dir, mode, dtype,
                                                                                   monkeypatch):
    """The int8 kernel is chosen by the kind of pass, never by the batch width, and each row's matrix
    products do not depend on its neighbours. Attention over a batch's padding columns rounds
    differently from attention alone (torch's CPU kernel blocks the columns), so a row's logits
    agree with its run alone within a few roundings, and its tokens can part only at a near tie."""
    import threading

    from textgrad_like.lm import LM

    seen = record_step_logits(monkeypatch)
    lm = LM(f"local/{tiny_dir}", dtype=mode, temperature=0.0, max_tokens=12, cache=False)
    prompt = "the quick brown fox"

    def run_alone() -> list:
        seen.clear()
        lm(prompt)
        return next(iter(seen.values()))

    alone = run_alone()
    prompt_ids = next(iter(seen))
    assert_same_up_to_rounding(alone, run_alone(), dtype)  # the second call reuses the cached prompt prefix
    others = ["hello there", "one two three", "a b c d e f", "tea and cake"]
    seen.clear()
    threads = [threading.Thread(target=lm, args=(t,)) for t in [prompt] + others]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lm.backend.batcher.stats["max_active"] >= 2  # it did share steps with other rows
    assert len(seen) == 5
    assert_same_up_to_rounding(alone, seen[prompt_ids], dtype)


def test_chat_templates_get_what_transformers_gives_them(tiny_dir, tmp_path):
    import shutil

    folder = tmp_path / "templated"
    shutil.copytree(tiny_dir, folder)
    (folder / "chat_template.jinja").write_text(
        "{% for m in messages %}{% if loop.index > 2 %}{% break %}{% endif %}{{ m.content }};{% endfor %}"
        "{% if tools is not none %}TOOLS{% endif %}{{ messages[0] | tojson(ensure_ascii=False, sort_keys=True) }}"
        "{{ strftime_now('%Y') | length }}")
    light = TextTokenizer(str(folder))
    text = light.apply_chat_template([{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                                      {"role": "user", "content": "c"}], tokenize=False)
    assert text == 'a;b;{"content": "a", "role": "user"}4'


def test_a_cache_entry_with_unlisted_or_odd_files_is_not_trusted(tmp_path):
    import json

    from textgrad_like.lm.loading import MANIFEST_FILE, WEIGHTS_FILE, _entry_is_intact, sampled_hash

    folder = tmp_path / "entry"
    folder.mkdir()
    (folder / WEIGHTS_FILE).write_bytes(b"w" * 100)
    files = {WEIGHTS_FILE: {"size": 100, "sampled_sha256": sampled_hash(str(folder / WEIGHTS_FILE))}}
    manifest = {"format": "textgrad_like.converted_weights/1", "source": "x", "files": files}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert _entry_is_intact(str(folder))
    (folder / "chat_template.jinja").write_text("{{ planted }}")  # not in the manifest
    assert not _entry_is_intact(str(folder))
    (folder / "chat_template.jinja").unlink()
    manifest["files"]["../outside"] = {"size": 1, "sampled_sha256": "x"}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert not _entry_is_intact(str(folder))


def test_lora_rows_decode_on_the_compact_decoder_as_peft_computes_them(tiny_dir):
    """An adapter on every projection, with non-zero B: the compact forward with the adapter's
    matrices gives the logits of the peft-injected transformers model."""
    from textgrad_like.lm import LM
    from textgrad_like.lm.compact_llama import lora_tables
    from textgrad_like.nn.lora import LoRA

    lm = LM(f"local/{tiny_dir}", dtype="float32", temperature=0.0, max_tokens=4, cache=False)
    lora = LoRA(lm, r=4, target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                         "down_proj"), seed=0)
    with torch.no_grad():
        for name, tensor in lora.switch.parameters_of(lora.adapter_name).items():
            if ".lora_B." in name:
                tensor.normal_(0, 0.3)
    engine = lm.backend.engine
    tables = lora_tables(lm.backend.model, lora.adapter_name)
    assert tables is not None and len(tables) == 2 * 7
    ids, mask, positions = _padded_batch()
    with torch.inference_mode():
        compact = engine._forward(lora.adapter_name, input_ids=ids, attention_mask=mask, position_ids=positions)
        decoder, engine.decoder = engine.decoder, None
        try:
            reference = engine._forward(lora.adapter_name, input_ids=ids, attention_mask=mask, position_ids=positions)
        finally:
            engine.decoder = decoder
        base = engine._forward(None, input_ids=ids, attention_mask=mask, position_ids=positions)
    real = mask.bool()
    torch.testing.assert_close(compact.logits[real], reference.logits.float()[real], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(compact.logits[real], base.logits[real], atol=1e-3)  # the adapter changed them


def test_adapters_the_compact_forward_cannot_compute_fall_back_to_transformers(tiny_dir):
    from textgrad_like.lm import LM
    from textgrad_like.lm.compact_llama import lora_tables
    from textgrad_like.nn.lora import LoRA

    lm = LM(f"local/{tiny_dir}", dtype="float32", temperature=0.0, max_tokens=4, cache=False)
    lora = LoRA(lm, r=2, target_modules=("q_proj", "lm_head"), seed=0)
    assert lora_tables(lm.backend.model, lora.adapter_name) is None
    assert not lm.backend.engine._compact(lora.adapter_name)


def test_cached_lora_matrices_follow_adapters_that_are_released_and_added_again(tiny_dir):
    import gc

    from textgrad_like.lm import LM
    from textgrad_like.nn.lora import LoRA

    lm = LM(f"local/{tiny_dir}", dtype="float32", temperature=0.0, max_tokens=4, cache=False)
    engine = lm.backend.engine
    first = LoRA(lm, r=2, name="again", seed=0)
    old = engine._lora_tables(first.adapter_name)[(0, "q")][0][0]
    del first
    gc.collect()
    second = LoRA(lm, r=2, name="again", seed=1)
    assert second.adapter_name == "again"
    new = engine._lora_tables("again")[(0, "q")][0][0]
    assert new is not old
    assert any(new is tensor for tensor in second.tensors())
