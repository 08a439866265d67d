"""Setting the sandbox up: the Deno binary, the local Pyodide files, and the command line.

Pyodide is not on PyPI; it is installed from the npm registry into a local cache by an
explicit step, and runs offline afterwards::

    python -m textgrad_like.tools.python_interpreter --setup --check

The Deno binary comes from the ``deno`` PyPI package. ``TEXTGRAD_LIKE_SANDBOX_DIR``
overrides the cache directory (default ``~/.cache/textgrad_like/sandbox``).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from textgrad_like.errors import InterpreterError

from .errors import SandboxSetupError

__all__ = ["PYODIDE_VERSION", "RUNNER_PATH", "find_deno", "main", "pyodide_dir", "pyodide_ready", "sandbox_cache_dir",
           "setup_sandbox"]

logger = logging.getLogger(__name__)

PYODIDE_VERSION = "0.29.4"
RUNNER_PATH = Path(__file__).resolve().parent / "runner.js"
_PYODIDE_FILES = ("pyodide.mjs", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json")


def sandbox_cache_dir() -> Path:
    """Directory that holds the sandbox's local files (``TEXTGRAD_LIKE_SANDBOX_DIR`` overrides)."""
    env = os.environ.get("TEXTGRAD_LIKE_SANDBOX_DIR")
    if env:
        return Path(env).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base).resolve() / "textgrad_like" / "sandbox"


def pyodide_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the pinned Pyodide release lives once :func:`setup_sandbox` has run."""
    root = Path(cache_dir).expanduser().resolve() if cache_dir else sandbox_cache_dir()
    return root / f"pyodide-{PYODIDE_VERSION}" / "node_modules" / "pyodide"


def pyodide_ready(path: Path) -> bool:
    """True when every file the runner loads is present under ``path``."""
    return all((path / name).is_file() for name in _PYODIDE_FILES)


def setup_sandbox(cache_dir: str | os.PathLike[str] | None = None, *, force: bool = False) -> Path:
    """Install Pyodide from the npm registry into the local cache (needs ``npm``); returns its path.

    This is the only step that uses the network; the sandbox runs offline afterwards.
    """
    target = pyodide_dir(cache_dir)
    if pyodide_ready(target) and not force:
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise SandboxSetupError(
            "npm was not found. Install Node.js/npm (e.g. `apt-get install -y npm`), then run "
            "`python -m textgrad_like.tools.python_interpreter --setup`."
        )
    prefix = target.parent.parent
    prefix.mkdir(parents=True, exist_ok=True)
    cmd = [
        npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--ignore-scripts",
        "--no-save", "--loglevel=error", f"pyodide@{PYODIDE_VERSION}",
    ]
    logger.info("Installing Pyodide %s into %s", PYODIDE_VERSION, prefix)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0 or not pyodide_ready(target):
        raise SandboxSetupError(
            f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}\n"
            "Check that the npm registry is reachable, then run the setup again."
        )
    return target


def find_deno() -> str:
    """Path of the Deno binary (from the ``deno`` PyPI package, else ``PATH``)."""
    try:
        from deno import find_deno_bin

        return str(find_deno_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("deno")
        if found:
            return found
    raise SandboxSetupError("Deno was not found. Install it with `pip install deno` (the PyPI package ships the binary).")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m textgrad_like.tools.python_interpreter --setup [--check]``."""
    parser = argparse.ArgumentParser(prog="python -m textgrad_like.tools.python_interpreter")
    parser.add_argument("--setup", action="store_true", help=f"install Pyodide {PYODIDE_VERSION} from npm into the cache")
    parser.add_argument("--force", action="store_true", help="reinstall even if present")
    parser.add_argument("--check", action="store_true", help="start a sandbox and run a one-line program")
    parser.add_argument("--cache-dir", default=None, help="cache directory (default: TEXTGRAD_LIKE_SANDBOX_DIR or ~/.cache)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not (args.setup or args.check):
        parser.print_help(sys.stderr)
        return 2
    try:
        if args.setup:
            path = setup_sandbox(args.cache_dir, force=args.force)
            logger.info("Pyodide %s is ready in %s", PYODIDE_VERSION, path)
        if args.check:
            from ..python_interpreter import PythonInterpreter  # the CLI sits above the interpreter

            with PythonInterpreter(cache_dir=args.cache_dir) as interp:
                value = interp.execute("import sys; sys.version.split()[0]")
                logger.info("Sandbox OK: Python %s started in %.2f s", value, interp.startup_seconds or 0.0)
    except InterpreterError as exc:
        logger.error("%s", exc)
        return 1
    return 0
