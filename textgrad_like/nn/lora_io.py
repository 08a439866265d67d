"""LoRA weights on disk: ``.safetensors`` files with a sha256 over the weights, read and written here only.

Kept apart from the :class:`~textgrad_like.nn.lora.LoRA` parameter: the parameter owns the live
tensors; this module turns a ``{key: tensor}`` dict into a file and back, checking the digest.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from ..errors import StateDictError

WEIGHTS_FORMAT = "textgrad_like.lora/1"


def tensors_digest(tensors: dict[str, Any]) -> str:
    """sha256 over the keys, dtypes, shapes and raw bytes of ``tensors`` (in key order)."""
    import torch

    digest = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().to("cpu").contiguous()
        digest.update(key.encode("utf-8"))
        digest.update(str(t.dtype).encode("utf-8"))
        digest.update(str(tuple(t.shape)).encode("utf-8"))
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_weights(path: str | os.PathLike[str], tensors: dict[str, Any], metadata: dict[str, str]) -> str:
    """Write CPU ``tensors`` to a ``.safetensors`` file; returns their sha256 (also in the file's metadata)."""
    from safetensors.torch import save_file

    digest = tensors_digest(tensors)
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
    save_file(tensors, os.fspath(path), metadata={"format": WEIGHTS_FORMAT, "sha256": digest, **metadata})
    return digest


def load_weights(path: str | os.PathLike[str], expected_sha256: str | None = None) -> dict[str, Any]:
    """Read a weights file written by :func:`save_weights`; with ``expected_sha256`` the weights must match
    it bit for bit. A missing, unreadable or changed file is a :class:`StateDictError`."""
    from safetensors.torch import load_file

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise StateDictError(f"LoRA weights file {path!r} is missing. Keep the .safetensors files next to the "
                             "saved JSON (Module.save writes them there).")
    try:
        tensors = load_file(path)
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise StateDictError(f"Cannot read LoRA weights from {path!r}: {type(exc).__name__}: {exc}") from None
    if expected_sha256 and tensors_digest(tensors) != expected_sha256:
        raise StateDictError(f"LoRA weights in {path!r} do not match the sha256 recorded in the saved state; the "
                             "file was changed or belongs to another save. Save the program again.")
    return tensors


def weights_file_name(stem: str, param_name: str) -> str:
    """``program.json`` + ``predict.lora`` → ``program.predict_lora.safetensors``."""
    import re

    base = os.path.basename(stem)
    for ext in (".json", ".pkl"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    safe = re.sub(r"[^A-Za-z0-9_]+", "_", param_name).strip("_") or "lora"
    return f"{base}.{safe}.safetensors"
