"""The shape of the package: the folder tree is the pipeline, one home per concept, small functions.

These read the source (ast) and run import-linter's contract from pyproject.toml; each fails with the place
that broke the rule.
"""

from __future__ import annotations

import ast
import json
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
    """One checkpoint discovery, one run resolver, one dataset resolver, one sample-name parser, one loss parser,
    one probe of the trainer's environment."""
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
        # the trainer's environment: one probe (its trainer side is kohya/envprobe.py), one cleaning of it
        "trainer_facts": "bespoke/run/facts.py",
        "trainer_env": "bespoke/kohya/launch.py",
        "device": "bespoke/kohya/envprobe.py",
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


# run in the TRAINER's Python (another venv, without bespoke or its dependencies): the standard library only at
# module level; sd-scripts, torch and friends are imported by name inside functions (they are the trainer's)
TRAINER_SIDE = ("kohya/probe.py", "kohya/gate.py", "kohya/envprobe.py")


def _module_level_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, top-level module) of every import not inside a function or class body."""
    found: list[tuple[int, str]] = []

    def visit(nodes):
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if isinstance(node, ast.Import):
                found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                found.append((node.lineno, "." if node.level else str(node.module).split(".")[0]))
            for field in ("body", "orelse", "finalbody", "handlers"):
                visit(getattr(node, field, []))

    visit(tree.body)
    return found


def test_the_trainer_side_scripts_import_only_the_standard_library():
    allowed = set(sys.stdlib_module_names) | {"__future__"}
    bad = [f"{name}:{line} imports {module}" for name in TRAINER_SIDE
           for line, module in _module_level_imports(ast.parse((PACKAGE / name).read_text(encoding="utf-8")))
           if module not in allowed]
    assert not bad, "\n".join(bad)


def _isolated(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run a trainer-side script with no site-packages, no PYTHONPATH and not even its own folder on sys.path."""
    return subprocess.run([sys.executable, "-I", "-S", *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def _marker_line(stdout: str, marker: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith(marker + " ")]
    assert lines, stdout
    return json.loads(lines[-1][len(marker) + 1:])


def test_the_trainer_side_scripts_run_in_a_bare_interpreter(tmp_path):
    """Far enough to have executed every module-level line and to answer: each stops at the first import of the
    trainer's own (sd-scripts, torch), which this bare interpreter does not have, and says so."""
    empty = tmp_path / "sd-scripts"
    empty.mkdir()
    probe = _isolated(str(PACKAGE / "kohya" / "probe.py"), str(empty), "[]", cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    answer = _marker_line(probe.stdout, "BESPOKE_PREFLIGHT")
    assert "cannot import sd-scripts" in answer["error"] and "train_network" in answer["error"]
    report = tmp_path / "preflight.json"
    gate = _isolated(str(PACKAGE / "kohya" / "gate.py"), str(report), str(empty / "train_network.py"), cwd=tmp_path)
    assert gate.returncode == 1 and "bespoke preflight: the trainer would stop: cannot import sd-scripts" in gate.stderr
    assert json.loads(report.read_text())["gate"] is True
    environment = _isolated(str(PACKAGE / "kohya" / "envprobe.py"), "xformers", cwd=tmp_path)
    assert environment.returncode == 0, environment.stderr
    facts = _marker_line(environment.stdout, "BESPOKE_ENVIRONMENT")
    assert facts["python"] == sys.version.split()[0] and facts["torch"] is None
    assert facts["errors"]["torch"] == "not installed" and facts["modules"]["xformers"]["error"] == "not installed"


MAX_PARAMETERS = 7
# Signatures the other helpers of issue 19 are changing on their branches (training options and event observer;
# the review's typed report; the lead's pipeline package): each name leaves this list when its branch merges.
# The test fails for a function missing here AND for one listed here that no longer has too many parameters.
AWAITING_MERGE_PARAMETERS = {
    "bespoke/run/runner.py:run_logged",
}
AWAITING_MERGE_RICH: set[str] = set()
RICH_ALLOWED = ("cli",)  # and bespoke/console.py: the display side of bespoke.progress


def _parameters(function: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> int:
    """Every parameter a caller can pass (*args and **kwargs count one each), self/cls not counted."""
    args = function.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    if method and names and names[0] in ("self", "cls"):
        names = names[1:]
    return len(names) + (args.vararg is not None) + (args.kwarg is not None)


def _is_click_command(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(re.search(r"(^|\.)(command|group)\(", ast.unparse(d)) for d in function.decorator_list)


def _too_many_parameters() -> dict[str, int]:
    found: dict[str, int] = {}

    def visit(node: ast.AST, rel: str, in_class: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                count = _parameters(child, in_class)
                if count > MAX_PARAMETERS and not _is_click_command(child):
                    found[f"{rel}:{child.name}"] = count
                visit(child, rel, False)
            else:
                visit(child, rel, isinstance(child, ast.ClassDef) or in_class)

    for path in _modules():
        visit(ast.parse(path.read_text(encoding="utf-8")), str(path.relative_to(REPO)), False)
    return found


def test_no_function_takes_more_than_seven_parameters():
    """More than 7 parameters: bundle the related ones in a small frozen dataclass. Click command callbacks are
    exempt: click maps each command-line option to one parameter of its callback, so the signature is the
    command's flags, declared once in the decorators above it."""
    found = _too_many_parameters()
    new = {name: count for name, count in found.items() if name not in AWAITING_MERGE_PARAMETERS}
    fixed = sorted(AWAITING_MERGE_PARAMETERS - set(found))
    assert not new, "more than 7 parameters: " + ", ".join(f"{n} ({c})" for n, c in sorted(new.items()))
    assert not fixed, "no longer over 7 parameters, remove from AWAITING_MERGE_PARAMETERS: " + ", ".join(fixed)


def _imports_rich(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "rich" for a in node.names):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and not node.level and str(node.module).split(".")[0] == "rich":
            lines.append(node.lineno)
    return lines


def test_rich_is_imported_only_by_the_cli_and_the_console():
    """Library code reports through bespoke.progress (task, say); how that looks is the command line's."""
    found = {}
    for path in _modules():
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in RICH_ALLOWED or str(rel) == "console.py":
            continue
        lines = _imports_rich(ast.parse(path.read_text(encoding="utf-8")))
        if lines:
            found[str(path.relative_to(REPO))] = lines
    new = {name: lines for name, lines in found.items() if name not in AWAITING_MERGE_RICH}
    fixed = sorted(AWAITING_MERGE_RICH - set(found))
    assert not new, "rich imported outside bespoke/cli/ and console.py: " + ", ".join(
        f"{n}:{','.join(map(str, lines))}" for n, lines in sorted(new.items()))
    assert not fixed, "no longer imports rich, remove from AWAITING_MERGE_RICH: " + ", ".join(fixed)
