"""Typed public API: ``mypy --strict`` on a user program sees real types (tests/typing/user_program.py),
and the type checkers' view of the lazy top-level names (``textgrad_like/_exports.py``) mirrors ``_PUBLIC``."""

from __future__ import annotations

import ast
import importlib.util
import pathlib
import subprocess
import sys
import tempfile

import pytest

import textgrad_like

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_exports_mirror_the_public_names() -> None:
    tree = ast.parse((ROOT / "textgrad_like" / "_exports.py").read_text(encoding="utf-8"))
    imported = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            for alias in node.names:
                assert alias.asname == alias.name, f"{alias.name}: write 'import X as X' (an explicit re-export)"
                imported[alias.name] = "." * node.level + (node.module or "")
    assert imported == textgrad_like._PUBLIC, "update textgrad_like/_exports.py to match _PUBLIC in __init__.py"


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed (pip install mypy)")
def test_user_program_type_checks_strict() -> None:
    # --follow-imports=silent: errors inside the package are not the user's (as for an installed package)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--cache-dir",
         str(pathlib.Path(tempfile.gettempdir()) / "textgrad_like_mypy_cache"), "tests/typing/user_program.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
