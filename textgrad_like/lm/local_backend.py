"""Loading a transformers causal LM in process, and running requests to it in dynamic batches.

One :class:`LocalBackend` exists per (path, gguf_file, device, dtype) in a process: the module-level
registry hands the same loaded weights to every ``LocalLM`` that names them. Each backend owns a
:class:`DynamicBatcher`: concurrent requests from threads wait a few milliseconds to be gathered,
then run as one left-padded batch. Our own decode loop (instead of ``model.generate``) keeps every
row's sampling settings, token limit, stop strings and constraint separate, and drops finished rows
from the KV cache so the batch shrinks as rows end.

torch and transformers are imported inside functions only: ``import textgrad_like`` stays light.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError, LMError, ModelLoadError
from .constrained import Constraint, ConstraintCompiler
from .embedded import EMBEDDED_NAME, find_embedded_gguf

logger = logging.getLogger(__name__)

DEFAULT_MAX_BATCH_SIZE = 16
DEFAULT_BATCH_WAIT_MS = 40.0  # long enough for a burst of threads to join; small next to one decode step


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
# Requests and rows
# ---------------------------------------------------------------------------------------------------
@dataclass
class GenerationRow:
    """One completion to produce: a prompt, its settings and (after the run) its result."""

    prompt_ids: list[int]
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    constraint: Constraint | None = None
    stop: tuple[str, ...] = ()
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str = ""
    on_text: Callable[[str], None] | None = None  # receives the decoded text so far, token by token


@dataclass
class _Request:
    rows: list[GenerationRow]
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class DynamicBatcher:
    """Gathers concurrent requests for ``wait_ms`` (up to ``max_batch_size`` rows) into one batch run.

    ``run_batch`` receives the rows of all gathered requests and fills in their results. Callers
    block in :meth:`submit` until their own rows are done; errors reach every request of the batch.
    """

    def __init__(self, run_batch: Callable[[list[GenerationRow]], None], max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                 wait_ms: float = DEFAULT_BATCH_WAIT_MS, name: str = "local-lm") -> None:
        if max_batch_size < 1:
            raise ConfigurationError("max_batch_size must be at least 1.")
        if wait_ms < 0:
            raise ConfigurationError("batch_wait_ms must be 0 or more.")
        self.run_batch = run_batch
        self.max_batch_size = int(max_batch_size)
        self.wait_s = float(wait_ms) / 1000.0
        self.batch_sizes: list[int] = []  # rows per run, for tests and benchmarks
        self._queue: queue.Queue[_Request] = queue.Queue()
        self._carry: _Request | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._name = name

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=f"{self._name}-batcher", daemon=True)
                self._thread.start()

    def submit(self, rows: list[GenerationRow]) -> list[GenerationRow]:
        """Run ``rows`` (together with whatever else arrives now) and return them filled in."""
        request = _Request(rows)
        self._ensure_worker()
        self._queue.put(request)
        request.done.wait()
        if request.error is not None:
            raise request.error
        return rows

    def _gather(self) -> list[_Request]:
        first = self._carry if self._carry is not None else self._queue.get()
        self._carry = None
        batch, count = [first], len(first.rows)
        deadline = time.monotonic() + self.wait_s
        while count < self.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                request = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if count + len(request.rows) > self.max_batch_size:
                self._carry = request
                break
            batch.append(request)
            count += len(request.rows)
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._gather()
            rows = [row for request in batch for row in request.rows]
            self.batch_sizes.append(len(rows))
            try:
                self.run_batch(rows)
            except BaseException as exc:  # hand the failure to the callers; keep serving
                logger.exception("Local LM batch of %d rows failed", len(rows))
                for request in batch:
                    request.error = exc if isinstance(exc, Exception) else LMError(f"Local generation stopped: {exc!r}")
            for request in batch:
                request.done.set()


# ---------------------------------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------------------------------
def _resolve_device(device: str | None) -> str:
    if device in (None, "", "auto"):
        return "cpu"
    if str(device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigurationError(f"device={device!r} was asked for but torch sees no CUDA GPU. Use device='cpu' "
                                     "or install a CUDA build of torch.")
    return str(device)


def _resolve_dtype(dtype: Any, device: str) -> Any:
    import torch

    if dtype is None or dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype).replace("torch.", ""), None)
    if not isinstance(resolved, torch.dtype):
        raise ConfigurationError(f"dtype={dtype!r} is not a torch dtype. Use 'float32', 'bfloat16' or 'float16'.")
    return resolved


class LocalBackend:
    """A loaded model + tokenizer, a constraint compiler and a dynamic batcher."""

    def __init__(self, model: Any, tokenizer: Any, source: ModelSource, device: str,
                 max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
                 load_seconds: float = 0.0) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        self.device = device
        self.load_seconds = load_seconds
        config = model.config
        limits = [v for v in (getattr(config, "max_position_embeddings", None),
                              getattr(tokenizer, "model_max_length", None)) if isinstance(v, int) and 0 < v < 10**7]
        self.context_length = min(limits) if limits else 2048
        self.stop_token_ids = self._stop_ids()
        pad = tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else self.stop_token_ids[0])
        vocab = int(getattr(config, "vocab_size", 0) or len(tokenizer))
        self.vocab_size = vocab
        self.constraints = ConstraintCompiler(tokenizer, vocab, self.stop_token_ids)
        # transformers 5 names the KV cache argument ``cache``; 4.x calls it ``past_key_values``.
        import inspect

        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self.batcher = DynamicBatcher(self.run_batch, max_batch_size, batch_wait_ms, name=os.path.basename(source.path))

    def _stop_ids(self) -> list[int]:
        ids: list[int] = []
        for value in (getattr(getattr(self.model, "generation_config", None), "eos_token_id", None),
                      self.tokenizer.eos_token_id):
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if item is not None and int(item) not in ids:
                    ids.append(int(item))
        if not ids:
            raise ModelLoadError("The model defines no end-of-sequence token (eos_token_id); set it in its "
                                 "generation_config.json or tokenizer_config.json.")
        return ids

    # -- prompts ------------------------------------------------------------------------------------
    def encode_messages(self, messages: Sequence[dict[str, Any]], model_type: str = "chat") -> list[int]:
        """Token ids of the prompt: the tokenizer's chat template for chat models, plain text otherwise."""
        flat = [{"role": str(m.get("role", "user")), "content": _text_of(m.get("content", ""))} for m in messages]
        if model_type == "chat" and getattr(self.tokenizer, "chat_template", None):
            encoded = self.tokenizer.apply_chat_template(flat, add_generation_prompt=True, tokenize=True)
            if isinstance(encoded, dict) or hasattr(encoded, "keys"):
                encoded = encoded["input_ids"]
            return [int(t) for t in encoded]
        if model_type == "chat":
            text = "".join(f"{m['role']}: {m['content']}\n" for m in flat) + "assistant: "
        else:
            text = "\n\n".join(m["content"] for m in flat)
        return [int(t) for t in self.tokenizer.encode(text)]

    def check_prompt(self, prompt_ids: list[int], max_new_tokens: int) -> int:
        """Validate the prompt length; return the token limit that fits the context."""
        if len(prompt_ids) >= self.context_length:
            raise ConfigurationError(
                f"The prompt has {len(prompt_ids)} tokens but {self.source.path!r} has a context of "
                f"{self.context_length} tokens. Shorten the prompt (fewer demos or shorter inputs).")
        return max(1, min(int(max_new_tokens), self.context_length - len(prompt_ids)))

    def generate(self, rows: list[GenerationRow]) -> list[GenerationRow]:
        """Run ``rows`` through the dynamic batcher (thread-safe); returns them with text filled in."""
        return self.batcher.submit(rows)

    # -- the decode loop ----------------------------------------------------------------------------
    def run_batch(self, rows: list[GenerationRow]) -> None:
        """Generate every row in ``rows`` as one left-padded batch (called from the batcher thread)."""
        import torch

        with torch.inference_mode():
            self._run(rows, torch)

    def _run(self, rows: list[GenerationRow], torch: Any) -> None:
        width = max(len(r.prompt_ids) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row.prompt_ids):] = torch.tensor(row.prompt_ids, dtype=torch.long)
            mask[i, width - len(row.prompt_ids):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
        cache = _cache_of(out)
        logits = out.logits[:, -1, :].float()
        next_pos = positions[:, -1:] + 1
        alive = list(range(len(rows)))
        while True:
            tokens = [self._pick(rows[r], logits[j:j + 1], torch) for j, r in enumerate(alive)]
            keep: list[int] = []
            for j, (r, token) in enumerate(zip(alive, tokens, strict=True)):
                if not self._step(rows[r], token):
                    keep.append(j)
            if not keep:
                break
            if len(keep) < len(alive):
                index = torch.tensor(keep, dtype=torch.long, device=mask.device)
                cache.batch_select_indices(index)
                mask, next_pos = mask[index], next_pos[index]
                alive = [alive[j] for j in keep]
                tokens = [tokens[j] for j in keep]
            step_ids = torch.tensor(tokens, dtype=torch.long, device=mask.device).unsqueeze(1)
            mask = torch.cat([mask, torch.ones_like(step_ids)], dim=1)
            out = self.model(input_ids=step_ids, attention_mask=mask, position_ids=next_pos, use_cache=True,
                             **{self._cache_arg: cache})
            cache = _cache_of(out)
            logits = out.logits[:, -1, :].float()
            next_pos = next_pos + 1
        for row in rows:
            row.text = _cut_at_stop(self.tokenizer.decode(row.token_ids, skip_special_tokens=True), row.stop)

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

    def _step(self, row: GenerationRow, token: int) -> bool:
        """Record ``token`` for ``row``; True when the row is finished."""
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


def _cache_of(output: Any) -> Any:
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: keep the text ones
        return "".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def _cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = len(text)
    for s in stop:
        at = text.find(s)
        if s and at != -1:
            cut = min(cut, at)
    return text[:cut]


# ---------------------------------------------------------------------------------------------------
# Loading and the process-wide registry
# ---------------------------------------------------------------------------------------------------
def load_model_and_tokenizer(source: ModelSource, device: str, dtype: Any, allow_download: bool = False) -> tuple[Any, Any]:
    """Load weights and tokenizer with transformers; wraps every failure in :class:`ModelLoadError`."""
    try:
        import transformers
    except ImportError:
        raise ModelLoadError("Local models need torch and transformers: `pip install textgrad_like[local]`.")
    if source.gguf_file:
        try:
            import gguf  # noqa: F401
        except ImportError:
            raise ModelLoadError("Loading a .gguf file needs the 'gguf' package: `pip install gguf`.")
    offline = not allow_download or os.environ.get("HF_HUB_OFFLINE", "") in ("1", "true", "True")
    common: dict[str, Any] = {"local_files_only": offline}
    if source.gguf_file:
        common["gguf_file"] = source.gguf_file
    where = os.path.join(source.path, source.gguf_file) if source.gguf_file else source.path
    try:
        tokenizer = _load_tokenizer(transformers, source, common)
        model = transformers.AutoModelForCausalLM.from_pretrained(source.path, dtype=dtype, **common)
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
    model.to(device)
    model.eval()
    return model, tokenizer


def gguf_tokenizer_cache_dir(gguf_path: str, transformers_version: str) -> str:
    """Where the tokenizer converted from ``gguf_path`` is kept: one folder per file (path, size,
    modification time) and transformers version, under the library's cache folder."""
    from .cache import default_cache_dir

    stat = os.stat(gguf_path)
    key = f"{os.path.abspath(gguf_path)}|{stat.st_size}|{stat.st_mtime_ns}|{transformers_version}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return os.path.join(default_cache_dir(), "gguf_tokenizers", digest)


def _load_tokenizer(transformers: Any, source: ModelSource, common: dict[str, Any]) -> Any:
    """The tokenizer; for a local GGUF, the converted one is saved once and read back on later loads
    (converting the GGUF vocabulary takes about 8 s for the embedded model; reading it back 0.2 s).
    ``TEXTGRAD_LIKE_GGUF_TOKENIZER_CACHE=0`` turns the cache off; a cache that cannot be written is
    skipped with a log line."""
    if not (source.gguf_file and source.is_local) or os.environ.get("TEXTGRAD_LIKE_GGUF_TOKENIZER_CACHE") == "0":
        return transformers.AutoTokenizer.from_pretrained(source.path, **common)
    folder = gguf_tokenizer_cache_dir(os.path.join(source.path, source.gguf_file), transformers.__version__)
    if os.path.isfile(os.path.join(folder, "tokenizer_config.json")):
        try:
            return transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        except Exception as exc:  # a damaged cache entry: convert again and overwrite it
            logger.warning("Ignoring the cached GGUF tokenizer in %s (%s: %s).", folder, type(exc).__name__, exc)
    tokenizer = transformers.AutoTokenizer.from_pretrained(source.path, **common)
    staging = f"{folder}.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        tokenizer.save_pretrained(staging)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    except OSError as exc:
        logger.info("Could not cache the converted GGUF tokenizer in %s (%s); it is converted on every load.",
                    folder, exc)
        shutil.rmtree(staging, ignore_errors=True)
    return tokenizer


_REGISTRY: dict[tuple[str, str | None, str, str], LocalBackend] = {}
_REGISTRY_LOCK = threading.Lock()
_KEY_LOCKS: dict[tuple[str, str | None, str, str], threading.Lock] = {}


def get_backend(source: ModelSource, device: str | None = None, dtype: Any = None,
                max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
                allow_download: bool = False) -> LocalBackend:
    """The process-wide backend for these weights, loading them on first use (thread-safe, loaded once)."""
    resolved_device = _resolve_device(device)
    resolved_dtype = _resolve_dtype(dtype, resolved_device)
    key = (source.path, source.gguf_file, resolved_device, str(resolved_dtype))
    with _REGISTRY_LOCK:
        backend = _REGISTRY.get(key)
        if backend is not None:
            return backend
        key_lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with key_lock:  # one loader per key; other keys load in parallel
        with _REGISTRY_LOCK:
            backend = _REGISTRY.get(key)
        if backend is not None:
            return backend
        started = time.perf_counter()
        model, tokenizer = load_model_and_tokenizer(source, resolved_device, resolved_dtype, allow_download)
        seconds = time.perf_counter() - started
        logger.info("Loaded local model %s%s on %s in %.1f s", source.path,
                    f" ({source.gguf_file})" if source.gguf_file else "", resolved_device, seconds)
        backend = LocalBackend(model, tokenizer, source, resolved_device, max_batch_size, batch_wait_ms, seconds)
        with _REGISTRY_LOCK:
            _REGISTRY[key] = backend
        return backend


def register_backend(backend: LocalBackend, device: str = "cpu", dtype: str = "torch.float32") -> None:
    """Put an already built backend in the registry (tests use it for tiny in-memory models)."""
    with _REGISTRY_LOCK:
        _REGISTRY[(backend.source.path, backend.source.gguf_file, device, dtype)] = backend
