"""Loading a local model: where the weights are, on which device, in which numeric mode, and the
converted-weights cache that makes every load after the first one fast.

* :func:`resolve_source` turns the part after ``local/`` into a :class:`ModelSource`.
* :func:`resolve_device` picks ``cuda`` when asked (or when ``device="auto"`` and a GPU is there).
* A GGUF file is de-quantised by transformers (about 30 s for the embedded model on 2 busy cores).
  The first load stores the result as safetensors, with the config and the converted tokenizer, in
  ``<cache dir>/local_models/<key>/``; the key covers the file's size, modification time, a sampled
  hash of its bytes and the transformers version. Later loads read that folder (about 1 s). Each
  file of an entry has its size and a sampled hash in ``manifest.json`` (written last); an entry
  that fails the check, or that transformers cannot read, is converted again and replaced.
  ``TEXTGRAD_LIKE_WEIGHTS_CACHE=0`` turns the cache off.
* :func:`choose_numerics` times decode steps at 1 and 8 rows and a prefill in each numeric mode
  (float32, bfloat16 and, for the compact decoder, either with int8 or lossless int4 decode
  weights) and keeps the fastest whose greedy tokens agree with float32's (CPU only, models of
  50M-1.5B parameters, measured once per model and machine, remembered in
  ``<cache dir>/local_numerics.json``).
  Dynamic int8 (``dtype="int8"``) is never chosen by itself: its activation scale is computed per
  batch, so a row's tokens would depend on its neighbours.

torch and transformers are imported inside functions only: ``import textgrad_like`` stays light.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import platform
import shutil
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError, ModelLoadError
from .compact_llama import QUANTIZED_DECODE_MODES
from .embedded import EMBEDDED_NAME, find_embedded_gguf

logger = logging.getLogger(__name__)

NUMERIC_MODES = ("float32", "bfloat16", *QUANTIZED_DECODE_MODES, "int8")
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"
_ENTRY_FORMAT = "textgrad_like.converted_weights/1"
_SAMPLE_BLOCKS = 32
_SAMPLE_BYTES = 1 << 16
MEASURE_MAX_PARAMETERS = 1_500_000_000  # above this, measuring means copying too many weights: float32
MEASURE_MIN_PARAMETERS = 50_000_000  # below this, timings are noise and float32 costs nothing
AUTO_MODES = ("float32", "bfloat16")  # int8 is explicit only: its per-batch activation scale makes a row's
# tokens depend on the other rows of its batch
COMPACT_PROTOCOL = 6  # bump when the compact decoder's kernels or the measurement change: remeasure
COMPACT_AUTO_MODES = ("float32", "bfloat16", "bfloat16+int8", "float32+int8")  # int8 *weights* (no activation
# scale): row-independent
COMPACT_INT4_MODES = ("bfloat16+int4", "float32+int4")  # measured too where torch has the int4 kernel


# ---------------------------------------------------------------------------------------------------
# Where the weights are
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSource:
    """A resolved model location: a local directory/hub id plus an optional GGUF file name in it."""

    path: str
    gguf_file: str | None = None
    is_local: bool = True


def _looks_like_path(name: str) -> bool:
    return (name.startswith(("/", "./", "../", "~")) or name.endswith(".gguf") or os.sep + os.sep in name
            or name.count("/") != 1 or "\\" in name)


def resolve_source(name: str, gguf_file: str | None = None) -> ModelSource:
    """Resolve ``name`` (the part after ``local/``) to a :class:`ModelSource`.

    Raises:
        ModelLoadError: a local path that does not exist, or a GGUF file that is not there.
    """
    if not name:
        raise ModelLoadError("LM('local/...') needs a model after 'local/': 'local/embedded', a directory, "
                             "a .gguf file or a hub id such as 'HuggingFaceTB/SmolLM2-135M-Instruct'.")
    if name == EMBEDDED_NAME:
        directory, embedded_file = find_embedded_gguf()
        return ModelSource(directory, gguf_file or embedded_file, True)
    expanded = os.path.expanduser(name)
    if os.path.isfile(expanded):
        if not expanded.endswith(".gguf"):
            raise ModelLoadError(f"{name!r} is a file but not a .gguf file. Pass the model directory (with "
                                 "config.json) or a .gguf file.")
        return ModelSource(os.path.dirname(os.path.abspath(expanded)), os.path.basename(expanded), True)
    if os.path.isdir(expanded):
        if gguf_file is not None and not os.path.isfile(os.path.join(expanded, gguf_file)):
            raise ModelLoadError(f"gguf_file={gguf_file!r} is not in {expanded!r}. List the directory and pass an "
                                 "existing .gguf file name.")
        return ModelSource(os.path.abspath(expanded), gguf_file, True)
    if _looks_like_path(name):
        raise ModelLoadError(f"Local model path {name!r} does not exist. Pass an existing model directory or .gguf "
                             "file, a hub id already in the Hugging Face cache, or 'local/embedded'.")
    return ModelSource(name, gguf_file, False)


# ---------------------------------------------------------------------------------------------------
# Device and numeric mode
# ---------------------------------------------------------------------------------------------------
def resolve_device(device: str | None, torch: Any = None) -> str:
    """``None``/``"cpu"``: the CPU; ``"auto"``: the first CUDA GPU if torch sees one, else the CPU;
    ``"cuda"``/``"cuda:N"``: that GPU (a :class:`ConfigurationError` when torch sees none).
    ``torch`` is injectable for tests."""
    if device in (None, "", "cpu"):
        return "cpu"
    if torch is None:
        import torch
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigurationError(f"device={device!r} was asked for but torch sees no CUDA GPU. Use device='cpu' "
                                 "(or 'auto') or install a CUDA build of torch.")
    return str(device)


def requested_mode(dtype: Any, device: str, torch: Any = None) -> str:
    """The numeric mode asked for: ``"auto"`` (measure on CPU), a mode of :data:`NUMERIC_MODES`, or
    ``"float16"``. On a GPU ``auto`` means bfloat16 (float16 where bf16 is not supported)."""
    if torch is None:
        import torch
    if dtype is None or dtype == "auto":
        if device.startswith("cuda"):
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return "auto"
    if dtype in ("int8", "qint8"):
        return "int8"
    if dtype in QUANTIZED_DECODE_MODES:
        return str(dtype)
    if isinstance(dtype, torch.dtype):
        return str(dtype).replace("torch.", "")
    name = str(dtype).replace("torch.", "")
    if name in ("float32", "bfloat16", "float16"):
        return name
    raise ConfigurationError(f"dtype={dtype!r} is not supported. Use 'auto', 'float32', 'bfloat16', 'float16', "
                             f"{', '.join(repr(m) for m in QUANTIZED_DECODE_MODES)} (quantized weights for decode "
                             "steps, CPU only) or 'int8' (dynamic int8 quantisation of the linear layers, CPU only).")


def apply_mode(model: Any, mode: str) -> Any:
    """``model`` (float32) converted to ``mode``; int8 is torch's dynamic quantisation of nn.Linear."""
    import torch

    if mode == "int8":
        with _quiet_warnings():
            return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    return model.to(getattr(torch, transformers_dtype(mode)))


def transformers_dtype(mode: str) -> str:
    """The dtype the transformers model (LoRA, training) runs in for a numeric ``mode``."""
    return mode.split("+")[0] if mode in QUANTIZED_DECODE_MODES else mode


@contextlib.contextmanager
def _quiet_warnings() -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _step_seconds(model: Any, torch: Any, batches: tuple[int, ...] = (1, 8), context: int = 32,
                  steps: int = 8, text_ids: list[int] | None = None) -> tuple[list[float], Any]:
    """Seconds per decode step (the best step at each width of ``batches`` rows), then the seconds of
    the widest batch's prefill (``max(batches)`` rows of ``context`` prompt tokens), and the greedy
    next tokens of every decode step of a fixed prompt (``text_ids``, else random tokens) fed its own
    continuation (teacher forcing), for the agreement check: the tokens come from the same kernels
    decoding uses. ``model`` is a transformers model or a CompactLlama."""
    vocab = int(getattr(model, "vocab_size", 0) or getattr(model.config, "vocab_size", 1000))
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(min(100, vocab - 1), vocab, (max(batches), context + steps), generator=generator)
    if text_ids and len(text_ids) >= context + steps + max(batches):  # rows: the text from different offsets
        ids = torch.tensor([text_ids[r:r + context + steps] for r in range(max(batches))], dtype=torch.long)
    import inspect

    forward = getattr(model, "forward", model)
    cache_arg = "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"
    step_kwargs: dict[str, Any] = {"decode_step": True} if getattr(model, "takes_decode_step", False) else {}
    seconds: list[float] = []
    greedy = []
    prefill = 0.0
    with torch.inference_mode():
        for batch in batches:
            started = time.perf_counter()
            out = model(input_ids=ids[:batch, :context], use_cache=True)
            prefill = time.perf_counter() - started  # the last (widest) one is kept: earlier ones warm up
            best = float("inf")
            for i in range(steps):
                cache = getattr(out, "cache", None) or out.past_key_values
                started = time.perf_counter()
                out = model(input_ids=ids[:batch, context + i:context + i + 1], use_cache=True, **{cache_arg: cache},
                            **step_kwargs)
                best = min(best, time.perf_counter() - started)
                greedy.append(out.logits[:, -1].float().argmax(-1))
            seconds.append(best)
    return seconds + [prefill], torch.cat(greedy)


def choose_numerics(model: Any, modes: tuple[str, ...] = AUTO_MODES, min_agreement: float = 0.9,
                    min_gain: float = 1.2, convert: Any = None,
                    text_ids: list[int] | None = None) -> tuple[str, dict[str, Any]]:
    """Measure ``modes`` on a float32 CPU ``model`` (unchanged); returns the chosen mode and the figures.

    A mode must agree with float32's greedy next token on at least ``min_agreement`` of the
    decode steps of a fixed prompt (so that constrained outputs stay what float32 would write).
    Its gain is float32's time over its own, as a geometric mean over a decode step at 1 row, one
    at 8 rows and a prefill of 8 × 32 prompt tokens (a single stream, a batch and a few-shot
    prompt count alike: on a CPU without bfloat16 arithmetic, bfloat16 decodes faster than float32
    but prefills about 4× slower; modes with the same prefill dtype are credited its best prefill
    time); the mode with the largest gain of at least ``min_gain`` is chosen, float32 otherwise.
    ``convert(model, mode)`` builds the candidate (default: a converted copy of a transformers
    model). ``text_ids`` (a tokenized English text) makes the agreement check run on text rather
    than random tokens, where the next token is rarely a coin toss.
    """
    import torch

    if convert is None:
        def convert(original: Any, mode: str) -> Any:
            return apply_mode(copy.deepcopy(original), mode)
    figures: dict[str, Any] = {}
    base_seconds, base_greedy = _step_seconds(model, torch, text_ids=text_ids)
    figures["float32"] = _timing_figures(base_seconds) | {"agreement": 1.0}
    measured: dict[str, tuple[list[float], float]] = {}
    for mode in modes:
        if mode == "float32":
            continue
        try:
            candidate = convert(model, mode)
            seconds, greedy = _step_seconds(candidate, torch, text_ids=text_ids)
        except Exception as exc:  # a mode this CPU/torch build does not run: skip it
            figures[mode] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
            continue
        measured[mode] = seconds, float((greedy == base_greedy).float().mean())
        del candidate
    # Modes that share a prefill dtype share its prefill kernel: their best time stands for all of
    # them, so that one noisy prefill does not decide between two modes that differ only in decoding.
    prefill: dict[str, float] = {"float32": base_seconds[-1]}
    for mode, (seconds, _) in measured.items():
        dtype = transformers_dtype(mode)
        prefill[dtype] = min(prefill.get(dtype, math.inf), seconds[-1])
    base = base_seconds[:-1] + [prefill["float32"]]
    chosen, best_gain = "float32", 1.0
    for mode, (seconds, agreement) in measured.items():
        figures[mode] = _timing_figures(seconds) | {"agreement": round(agreement, 3)}
        timed = seconds[:-1] + [prefill[transformers_dtype(mode)]]
        gain = math.prod(old / new for new, old in zip(timed, base, strict=True)) ** (1 / len(timed))
        figures[mode]["gain"] = round(gain, 3)
        if agreement >= min_agreement and gain >= min_gain and gain > best_gain:
            chosen, best_gain = mode, gain
    return chosen, figures


def _timing_figures(seconds: list[float]) -> dict[str, Any]:
    """``_step_seconds``' times as reported: decode step ms per width, then the prefill's ms."""
    return {"step_ms": [round(t * 1000, 2) for t in seconds[:-1]], "prefill_ms": round(seconds[-1] * 1000, 1)}


def machine_fingerprint() -> str:
    """CPU model, core count and torch version: what the numeric choice depends on."""
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    return f"{cpu}|{os.cpu_count()}|torch {torch.__version__}"


def _numerics_file() -> str:
    from .cache import default_cache_dir

    return os.path.join(default_cache_dir(), "local_numerics.json")


def remembered_numerics(model_key: str, model: Any, measure: Any = None) -> tuple[str, dict[str, Any]]:
    """:func:`choose_numerics` for ``model`` (or ``measure()``, which returns the same pair), measured
    once per (model, machine) and remembered."""
    key = f"{model_key}|{machine_fingerprint()}"
    path = _numerics_file()
    table: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        with open(path, encoding="utf-8") as f:
            table = json.load(f)
    hit = table.get(key) if isinstance(table, dict) else None
    if isinstance(hit, dict) and hit.get("mode") in NUMERIC_MODES:
        return str(hit["mode"]), dict(hit.get("figures") or {})
    mode, figures = measure() if measure is not None else choose_numerics(model)
    logger.info("Numeric mode for %s on this machine: %s (%s)", model_key, mode, figures)
    table = table if isinstance(table, dict) else {}
    table[key] = {"mode": mode, "figures": figures}
    _write_json_atomic(path, table)
    return mode, figures


def _write_json_atomic(path: str, data: Any) -> None:
    staging = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(staging, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        os.replace(staging, path)
    except OSError as exc:
        logger.info("Could not write %s (%s).", path, exc)
        with contextlib.suppress(OSError):
            os.remove(staging)


# ---------------------------------------------------------------------------------------------------
# The converted-weights cache
# ---------------------------------------------------------------------------------------------------
def sampled_hash(path: str, blocks: int = _SAMPLE_BLOCKS, block_bytes: int = _SAMPLE_BYTES) -> str:
    """A hash of a file's size and ``blocks`` evenly spaced blocks of it (plus its start and end):
    fast for files of gigabytes, and changed by a truncated, rewritten or replaced file."""
    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode())
    offsets = sorted({0, max(0, size - block_bytes)} | {size * i // blocks for i in range(blocks)})
    with open(path, "rb") as f:
        for offset in offsets:
            f.seek(offset)
            digest.update(f.read(block_bytes))
    return digest.hexdigest()


def converted_weights_dir(gguf_path: str, transformers_version: str) -> str:
    """The cache folder of the weights converted from ``gguf_path``: keyed by the file's size,
    modification time, sampled hash and the transformers version."""
    from .cache import default_cache_dir

    stat = os.stat(gguf_path)
    key = f"{stat.st_size}|{stat.st_mtime_ns}|{sampled_hash(gguf_path)}|{transformers_version}"
    return os.path.join(default_cache_dir(), "local_models", hashlib.sha256(key.encode()).hexdigest()[:20])


def _plain_name(name: Any) -> bool:
    return isinstance(name, str) and bool(name) and not name.startswith(".") and os.path.basename(name) == name \
        and "/" not in name and "\\" not in name


def _entry_is_intact(folder: str) -> bool:
    try:
        with open(os.path.join(folder, MANIFEST_FILE), encoding="utf-8") as f:
            manifest = json.load(f)
        files = manifest["files"]
        if manifest.get("format") != _ENTRY_FORMAT or WEIGHTS_FILE not in files:
            return False
        if any(not _plain_name(name) for name in files) or set(os.listdir(folder)) - set(files) - {MANIFEST_FILE}:
            logger.warning("Converted-weights cache %s holds files its manifest does not list.", folder)
            return False
        for name, expected in files.items():
            path = os.path.join(folder, name)
            if not os.path.isfile(path) or os.path.islink(path) or os.path.getsize(path) != expected["size"] \
                    or sampled_hash(path) != expected["sampled_sha256"]:
                logger.warning("Converted-weights cache %s: %s changed since it was written.", folder, name)
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _write_entry(folder: str, model: Any, tokenizer: Any, source_path: str) -> None:
    """Store a float32 ``model`` (safetensors), its config, generation config and tokenizer."""
    from safetensors.torch import save_model

    staging = f"{folder}.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
        config = copy.deepcopy(model.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # the stored weights are plain tensors
        config.save_pretrained(staging)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        save_model(model, os.path.join(staging, WEIGHTS_FILE))
        files = {}
        for name in sorted(os.listdir(staging)):
            path = os.path.join(staging, name)
            files[name] = {"size": os.path.getsize(path), "sampled_sha256": sampled_hash(path)}
        with open(os.path.join(staging, MANIFEST_FILE), "w", encoding="utf-8") as f:
            json.dump({"format": _ENTRY_FORMAT, "source": source_path, "files": files}, f, indent=1)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    except OSError as exc:
        logger.info("Could not cache the converted weights in %s (%s); the GGUF file is converted on every load.",
                    folder, exc)
        shutil.rmtree(staging, ignore_errors=True)


def _read_entry(transformers: Any, folder: str) -> tuple[Any, Any] | None:
    if not _entry_is_intact(folder):
        return None
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype="float32")
        return model, tokenizer
    except Exception as exc:  # a damaged entry: convert again and overwrite it
        logger.warning("Ignoring the converted-weights cache %s (%s: %s).", folder, type(exc).__name__, exc)
        return None


def _weights_cache_enabled() -> bool:
    return os.environ.get("TEXTGRAD_LIKE_WEIGHTS_CACHE", "1") != "0"


# ---------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------
class LoadedModel:
    """Weights and tokenizer in memory, shared by every backend that names them.

    ``decoder`` is the :class:`~textgrad_like.lm.compact_llama.CompactLlama` fast path when the
    architecture allows it (the engine decodes base-model rows with it); ``model`` is the
    transformers model — LoRA adapters, training and architectures the compact path does not cover
    use it. When the weights came from the converted-weights cache, ``model`` is built on first use,
    so a process that only generates never imports transformers' modeling code.

    ``lock`` is held around every forward pass, so that whoever switches LoRA adapters on the
    model (:class:`~textgrad_like.lm.adapted.AdapterSwitch`, which sets ``activate``) never does it
    in the middle of another pass.
    """

    def __init__(self, model: Any, tokenizer: Any, source: ModelSource, device: str, mode: str,
                 load_seconds: float = 0.0, from_cache: bool = False, numerics: dict[str, Any] | None = None,
                 decoder: Any = None, config: dict[str, Any] | None = None, eos_token_ids: list[int] | None = None,
                 model_loader: Any = None) -> None:
        self._model = model
        self._model_loader = model_loader
        self.tokenizer = tokenizer
        self.source = source
        self.device = device
        self.mode = mode
        self.load_seconds = load_seconds
        self.from_cache = from_cache
        self.numerics = dict(numerics or {})
        self.decoder = decoder
        self.config = dict(config if config is not None else model.config.to_dict())
        self.eos_token_ids = list(eos_token_ids or [])
        self.lock = threading.RLock()
        self._build_lock = threading.Lock()
        self.activate: Any = None  # Callable[[str | None], None]; set by the adapter switch
        self.adapter_generation = 0  # bumped by the adapter switch whenever adapters are added or released

    @property
    def model(self) -> Any:
        """The transformers model (loaded on first use when only the compact decoder was needed so far).
        It is built under its own lock, so base-model decoding goes on meanwhile."""
        if self._model is None:
            with self._build_lock:
                if self._model is None:
                    started = time.perf_counter()
                    self._model = self._model_loader()
                    logger.info("Built the transformers model of %s for LoRA/training in %.1f s.", self.source.path,
                                time.perf_counter() - started)
        return self._model

    def use_adapter(self, name: str | None) -> None:
        """Make ``name`` the active LoRA adapter (``None``: the base model); call it with ``lock`` held."""
        if self.activate is not None:
            self.activate(name)
        elif name is not None:
            raise ConfigurationError(f"LoRA adapter {name!r} is not on this model. Create it with "
                                     "textgrad_like.nn.LoRA(lm) first.")


def _eos_ids(*values: Any) -> list[int]:
    ids: list[int] = []
    for value in values:
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is not None and int(item) not in ids:
                ids.append(int(item))
    return ids


def _compact_modes(torch: Any, device: str) -> tuple[str, ...]:
    from .compact_llama import int4_kernel_available, int8_kernel_available

    if device == "cpu" and int8_kernel_available(torch):
        return COMPACT_AUTO_MODES + (COMPACT_INT4_MODES if int4_kernel_available(torch) else ())
    return AUTO_MODES


def _build_decoder(state: dict[str, Any], config: dict[str, Any], device: str, mode: str) -> Any:
    """The compact decoder in ``mode``, or None where it does not apply (int8 dynamic mode, an
    unsupported architecture, or a failure building it: then the transformers model decodes)."""
    from .compact_llama import CompactLlama, supports

    if mode == "int8" or not supports(config) or not _compact_allowed(device):
        return None
    try:
        return CompactLlama(state, config, device, mode)
    except (KeyError, ValueError, RuntimeError, TypeError, AttributeError) as exc:
        logger.warning("Decoding %s through transformers: the compact decoder could not be built (%s: %s).",
                       config.get("model_type"), type(exc).__name__, exc)
        return None


def _compact_allowed(device: str) -> bool:
    """``TEXTGRAD_LIKE_COMPACT_DECODER``: ``0`` never uses the compact decoder, ``1`` uses it on any
    device; unset, it runs on the CPU (where transformers' per-op overhead is the cost) and a GPU
    keeps transformers (the compact decoder is not yet measured there)."""
    setting = os.environ.get("TEXTGRAD_LIKE_COMPACT_DECODER", "")
    return setting != "0" and (device == "cpu" or setting == "1")


AGREEMENT_TEXT = (
    "The library lends books for three weeks. A reader who returns a book late pays a small fee for each day, "
    "and the money buys new books for the children's room. On Saturdays volunteers read stories aloud, and in "
    "winter the reading room stays open until eight in the evening so that students can work in a warm place. "
    "Last year the library added a shelf of games, a printer anyone may use, and a quiet corner with maps of the "
    "town as it looked a hundred years ago.")


def _compact_choice(model_key: str, state: dict[str, Any], config: dict[str, Any], torch: Any,
                    tokenizer: Any = None) -> tuple[str, dict[str, Any]]:
    """The numeric mode of the compact decoder on this CPU, measured once and remembered."""
    from .compact_llama import CompactLlama

    def measure() -> tuple[str, dict[str, Any]]:
        try:
            base = CompactLlama(state, config, "cpu", "float32")
            text_ids = [int(t) for t in tokenizer.encode(AGREEMENT_TEXT)] if tokenizer is not None else None
            return choose_numerics(base, modes=_compact_modes(torch, "cpu"),
                                   convert=lambda _, mode: CompactLlama(state, config, "cpu", mode), text_ids=text_ids)
        except (KeyError, ValueError, RuntimeError, TypeError, AttributeError) as exc:
            logger.warning("Could not measure numeric modes (%s: %s); using float32.", type(exc).__name__, exc)
            return "float32", {"error": f"{type(exc).__name__}: {exc}"[:200]}

    return remembered_numerics(f"{model_key}|compact|{COMPACT_PROTOCOL}", None, measure)


def _size_in_range(parameters: int) -> bool:
    if MEASURE_MIN_PARAMETERS <= parameters <= MEASURE_MAX_PARAMETERS:
        return True
    logger.info("Not measuring numeric modes for a model of %d parameters; using float32 (pass dtype= to choose).",
                parameters)
    return False


def _load_warm(source: ModelSource, device: str, mode: str, torch: Any, started: float) -> LoadedModel | None:
    """Weights, tokenizer and compact decoder straight from an intact converted-weights entry, without
    importing transformers (its model is built on first use). None when that path does not apply."""
    from importlib.metadata import PackageNotFoundError, version

    from .compact_llama import supports
    from .text_tokenizer import TextTokenizer, can_load

    if not (source.gguf_file and source.is_local and _weights_cache_enabled()) or mode == "int8" \
            or not _compact_allowed(device):
        return None
    try:
        folder = converted_weights_dir(os.path.join(source.path, source.gguf_file), version("transformers"))
    except (OSError, PackageNotFoundError):
        return None
    if not can_load(folder) or not _entry_is_intact(folder):
        return None
    try:
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
        if not supports(config):
            return None
        generation: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            with open(os.path.join(folder, "generation_config.json"), encoding="utf-8") as f:
                generation = json.load(f)
        from safetensors.torch import load_file

        state = load_file(os.path.join(folder, WEIGHTS_FILE))
        tokenizer = TextTokenizer(folder)
    except Exception as exc:  # a damaged entry: the transformers path converts again and replaces it
        logger.warning("Ignoring the converted-weights cache %s (%s: %s).", folder, type(exc).__name__, exc)
        return None
    figures: dict[str, Any] = {}
    if mode == "auto":
        parameters = sum(int(t.numel()) for t in state.values())
        mode, figures = (_compact_choice(_model_key(source), state, config, torch, tokenizer)
                         if _size_in_range(parameters) else ("float32", {}))
    decoder = _build_decoder(state, config, device, mode)
    if decoder is None:
        return None
    hf_mode = transformers_dtype(mode)

    def build_transformers_model() -> Any:
        import transformers

        if not _entry_is_intact(folder):
            raise ModelLoadError(f"The converted-weights cache {folder!r} changed after this model was loaded, so the "
                                 "LoRA/training model would not match the decoder. Delete that folder and load the "
                                 "model again.")
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype="float32")
        if hf_mode != "float32":
            model = apply_mode(model, hf_mode)
        return model.to(device).eval()

    eos = _eos_ids(generation.get("eos_token_id"), tokenizer.eos_token_id)
    del state
    return LoadedModel(None, tokenizer, source, device, mode, time.perf_counter() - started, True, figures,
                       decoder=decoder, config=config, eos_token_ids=eos, model_loader=build_transformers_model)


def load_model_and_tokenizer(source: ModelSource, device: str, dtype: Any = None,
                             allow_download: bool = False) -> LoadedModel:
    """Load weights and tokenizer (GGUF through the converted-weights cache) in the numeric mode
    asked for, with the compact decoder where the architecture allows; wraps every failure in
    :class:`ModelLoadError`."""
    started = time.perf_counter()
    try:
        import torch
    except ImportError:
        raise ModelLoadError("Local models need torch and transformers: `pip install textgrad_like[local]`.")
    mode = requested_mode(dtype, device, torch)
    if (mode == "int8" or mode in QUANTIZED_DECODE_MODES) and device != "cpu":
        raise ConfigurationError(f"dtype={mode!r} runs on the CPU only; use 'bfloat16' on a GPU.")
    warm = _load_warm(source, device, mode, torch, started)
    if warm is not None:
        return warm
    try:
        import transformers
    except ImportError:
        raise ModelLoadError("Local models need torch and transformers: `pip install textgrad_like[local]`.")
    load_dtype = mode if mode in ("bfloat16", "float16") and not source.gguf_file else "float32"
    model, tokenizer, from_cache = _load_weights(transformers, source, allow_download, load_dtype)
    config = model.config.to_dict()
    from .compact_llama import supports

    compact = supports(config) and _compact_allowed(device)
    figures: dict[str, Any] = {}
    if mode == "auto":
        if not _size_in_range(sum(p.numel() for p in model.parameters())):
            mode = "float32"
        elif compact:
            mode, figures = _compact_choice(_model_key(source), model.state_dict(), config, torch, tokenizer)
        else:
            mode, figures = remembered_numerics(_model_key(source), model)
    if not compact and mode in QUANTIZED_DECODE_MODES:
        mode = transformers_dtype(mode)  # quantized decode weights are a compact-decoder kernel
    decoder = _build_decoder(model.state_dict(), config, device, mode) if compact else None
    hf_mode = transformers_dtype(mode)
    if hf_mode != load_dtype:
        model = apply_mode(model, hf_mode)
    model.to(device)
    model.eval()
    eos = _eos_ids(getattr(getattr(model, "generation_config", None), "eos_token_id", None), tokenizer.eos_token_id)
    return LoadedModel(model, tokenizer, source, device, mode, time.perf_counter() - started, from_cache, figures,
                       decoder=decoder, config=config, eos_token_ids=eos)


def _model_key(source: ModelSource) -> str:
    if source.gguf_file and source.is_local:
        path = os.path.join(source.path, source.gguf_file)
        with contextlib.suppress(OSError):
            stat = os.stat(path)
            return f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    return f"{source.path}|{source.gguf_file}"


def _load_weights(transformers: Any, source: ModelSource, allow_download: bool,
                  load_dtype: str) -> tuple[Any, Any, bool]:
    if source.gguf_file:
        try:
            import gguf  # noqa: F401
        except ImportError:
            raise ModelLoadError("Loading a .gguf file needs the 'gguf' package: `pip install gguf`.")
    cached_folder = None
    if source.gguf_file and source.is_local and _weights_cache_enabled():
        with contextlib.suppress(OSError):
            cached_folder = converted_weights_dir(os.path.join(source.path, source.gguf_file), transformers.__version__)
        if cached_folder is not None:
            hit = _read_entry(transformers, cached_folder)
            if hit is not None:
                return hit[0], hit[1], True
    offline = not allow_download or os.environ.get("HF_HUB_OFFLINE", "") in ("1", "true", "True")
    common: dict[str, Any] = {"local_files_only": offline}
    if source.gguf_file:
        common["gguf_file"] = source.gguf_file
    where = os.path.join(source.path, source.gguf_file) if source.gguf_file else source.path
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source.path, **common)
        with _quiet_warnings():
            model = transformers.AutoModelForCausalLM.from_pretrained(source.path, dtype=load_dtype, **common)
    except Exception as exc:
        if not source.is_local and offline:
            raise ModelLoadError(
                f"Hub model {source.path!r} is not in the local Hugging Face cache and downloads are off ({exc}). "
                f"Download it first (`hf download {source.path}`) or pass a local directory or .gguf file.")
        if source.gguf_file:
            raise ModelLoadError(
                f"transformers could not read the GGUF file {where!r} ({type(exc).__name__}: {exc}). Use a GGUF of an "
                "architecture transformers supports (llama, mistral, qwen2, ...) with a supported quantisation, "
                "or a safetensors checkpoint directory.")
        raise ModelLoadError(f"Could not load the model at {where!r} ({type(exc).__name__}: {exc}). Check that the "
                             "directory holds config.json, tokenizer files and weights.")
    if cached_folder is not None:
        _write_entry(cached_folder, model, tokenizer, where)
    return model, tokenizer, False
