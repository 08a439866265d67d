"""The layer table of docs/architecture.md is enforced by import-linter (pyproject.toml contracts)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("importlinter")


def _lint(project: Path) -> subprocess.CompletedProcess[str]:
    # Run import-linter on the copy only: its package must win over the installed one.
    code = ("import sys; sys.path.insert(0, '.'); from importlinter.cli import lint_imports_command; "
            "lint_imports_command()")
    return subprocess.run([sys.executable, "-c", code, "--no-cache"], cwd=project, capture_output=True,
                          text=True, timeout=300)


def _copy_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    shutil.copytree(ROOT / "textgrad_like", project / "textgrad_like",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "data", "*.json", "*.jsonl"))
    return project


def test_the_package_keeps_its_layers(tmp_path: Path) -> None:
    result = _lint(_copy_project(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("lower", "upper"), [
    ("textgrad_like/signatures/_upward.py", "from textgrad_like.predict import Predict"),
    ("textgrad_like/nn/_upward.py", "from textgrad_like.optim import TextualGradientDescent"),
    ("textgrad_like/lm/_upward.py", "from textgrad_like.datasets import DataLoader"),
])
def test_an_upward_import_breaks_the_contract(tmp_path: Path, lower: str, upper: str) -> None:
    project = _copy_project(tmp_path)
    (project / lower).write_text(f"{upper}  # an upward import\n")
    result = _lint(project)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
