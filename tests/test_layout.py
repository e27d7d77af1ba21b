"""The shape of the package: the folder tree is the pipeline, one home per concept, small functions.

These read the source (ast) and run import-linter's contract from pyproject.toml; each fails with the place
that broke the rule.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from locations import REPO

PACKAGE = REPO / "bespoke"
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400
# cli/ imports heavy libraries inside its commands so that `bespoke --help` stays fast; nowhere else may
LOCAL_IMPORTS_ALLOWED = ("cli",)


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_arrows_point_down_the_pipeline():
    """import-linter's layers contract (pyproject.toml): cli > demo > pipeline > review > run > kohya|pixels >
    dataset > foundation. It also rules out import cycles between the packages."""
    done = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
                           "sys.exit(lint_imports())"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout


def test_no_long_functions_or_modules():
    long = []
    for path in _modules():
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            long.append(f"{path.relative_to(REPO)}: {lines} lines")
        for node in _functions(ast.parse(text)):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            if size > MAX_FUNCTION_LINES:
                long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {size} lines")
    assert not long, "\n".join(long)


def test_imports_are_module_level_outside_the_cli():
    local = []
    for path in _modules():
        if path.relative_to(PACKAGE).parts[0] in LOCAL_IMPORTS_ALLOWED:
            continue
        for function in _functions(ast.parse(path.read_text(encoding="utf-8"))):
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    local.append(f"{path.relative_to(REPO)}:{node.lineno} in {function.name}")
    assert not local, "\n".join(local)


def _defined(name: str) -> list[str]:
    pattern = re.compile(rf"^def {re.escape(name)}\(", re.M)
    return [str(p.relative_to(REPO)) for p in _modules() if pattern.search(p.read_text(encoding="utf-8"))]


def test_one_home_per_concept():
    """One checkpoint discovery, one run resolver, one dataset resolver, one sample-name parser, one loss parser."""
    homes = {
        "find_checkpoints": "bespoke/kohya/checkpoints.py",
        "resolve_run": "bespoke/run/paths.py",
        "resolve_dataset": "bespoke/run/paths.py",
        "parse_sample_name": "bespoke/kohya/naming.py",
        "epoch_from_filename": "bespoke/kohya/naming.py",
        "parse_line": "bespoke/kohya/output.py",
        "loss_points": "bespoke/kohya/output.py",
        "load_manifest": "bespoke/run/manifest.py",
        "recorded_baseline": "bespoke/review/baseline.py",
    }
    for name, home in homes.items():
        assert _defined(name) == [home], f"{name}: {_defined(name)}"
    # nobody else reads sd-scripts' progress bar or globs for checkpoint files
    for path in _modules():
        text = path.read_text(encoding="utf-8")
        rel = str(path.relative_to(REPO))
        if rel != "bespoke/kohya/output.py":
            assert not re.search(r"avr_loss\s*=\s*\(", text), rel
        assert not re.search(r"glob\(f[\"'].*\.safetensors", text), rel


def test_cli_has_one_module_per_command_named_for_it():
    from bespoke.cli import main

    keywords = {"import": "import_"}  # a command named for a Python keyword lives in <keyword>_.py
    modules = {p.stem for p in (PACKAGE / "cli").glob("*.py")} - {"__init__", "common", "display"}  # shared by every command
    assert modules == {keywords.get(n, n) for n in main.commands}, modules ^ set(main.commands)
    for name, command in main.commands.items():
        module = f"bespoke.cli.{keywords.get(name, name)}"
        assert command.callback.__module__ == module, (name, command.callback.__module__)


def test_ruff_and_the_type_checker_are_clean():
    """`ruff check` and `mypy` (both configured in pyproject.toml) pass on the package, as CI requires."""
    ruff = subprocess.run([sys.executable, "-m", "ruff", "check", "bespoke", "tests"], cwd=REPO, capture_output=True,
                          text=True)
    assert ruff.returncode == 0, ruff.stdout[-3000:]
    mypy = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True)
    assert mypy.returncode == 0, mypy.stdout[-3000:]
