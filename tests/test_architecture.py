"""The architecture as tests: the import-linter contracts in pyproject.toml (dependencies
point one way, see DESIGN.md) and the size budget of STYLE.md (functions under ~60 lines)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO_ROOT

PACKAGES = ("assistant", "cim_backend")
MAX_FUNCTION_LINES = 60
LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")


def test_import_contracts_hold():
    result = subprocess.run([sys.executable, "-c", LINT], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"import-linter contracts broken:\n{result.stdout}\n{result.stderr}"


def function_lengths(path: Path) -> list[tuple[str, int, int]]:
    """(qualified name, first line, lines) of every function in ``path``; a function's lines
    run from its ``def`` to its last line (decorators not counted)."""
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((prefix + child.name, child.lineno, child.end_lineno - child.lineno + 1))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(), filename=str(path)), "")
    return found


def test_functions_are_at_most_60_lines():
    too_long = [f"{path.relative_to(REPO_ROOT)}:{line} {name} ({length} lines)"
                for package in PACKAGES for path in sorted((REPO_ROOT / package).rglob("*.py"))
                for name, line, length in function_lengths(path) if length > MAX_FUNCTION_LINES]
    assert not too_long, "functions over the size budget (STYLE.md):\n" + "\n".join(too_long)
