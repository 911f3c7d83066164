"""The shape of the house (docs/architecture.md), checked on every run.

* ``lint-imports`` keeps the contracts in ``[tool.importlinter]``: bot/, inference/ and training/
  stand on doppel/ and never import each other, no import cycles inside a package, and neither
  doppel/ nor bot/ loads a model library.
* The entry points that may compose all three packages (``doppel/cli.py``, ``doppel/demo.py``)
  import them only inside functions, so ``doppel --help`` and a bot host stay light.
* training/ stays a tree a newcomer can read: at most ten entries at its top level.
* Every module starts with a docstring; none is over 400 lines but the data tables.
* Tests mirror the tree: a module without ``tests/<its path>/test_<name>.py`` names in its
  docstring the tests that cover it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("doppel", "bot", "inference", "training")
ENTRY_POINTS = ("doppel/cli.py", "doppel/demo.py")
# Tables of words and phrases: data, not logic.
DATA_TABLES = {"training/sample_persona/phrases.py"}
MAX_LINES = 400


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 3 kept, 0 broken." in result.stdout


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_entry_points_import_the_packages_lazily(entry):
    tree = ast.parse((ROOT / entry).read_text(encoding="utf-8"))
    at_module_level = []
    for node in tree.body:
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        at_module_level += [n for n in names if n.split(".")[0] in ("bot", "inference", "training")]
    assert not at_module_level, f"{entry} imports {at_module_level} at module level"


def test_training_has_at_most_ten_top_level_entries():
    entries = sorted(p.name for p in (ROOT / "training").iterdir() if p.name != "__pycache__")
    assert len(entries) <= 10, entries


def test_every_module_starts_with_a_docstring():
    missing = [str(p.relative_to(ROOT)) for p in _modules()
               if ast.get_docstring(ast.parse(p.read_text(encoding="utf-8"))) is None]
    assert not missing, f"modules without a docstring: {missing}"


def test_no_module_is_over_400_lines_but_the_data_tables():
    long = {str(p.relative_to(ROOT)): n for p in _modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not set(long) - DATA_TABLES, f"modules over {MAX_LINES} lines: {long}"


def test_a_module_without_a_test_file_says_where_it_is_tested():
    silent = []
    for path in _modules():
        if path.name in ("__init__.py", "__main__.py"):
            continue
        relative = path.relative_to(ROOT)
        if (ROOT / "tests" / relative.parent / f"test_{path.stem}.py").exists():
            continue
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if "tests/" not in docstring and "Not tested on its own" not in docstring:
            silent.append(str(relative))
    assert not silent, f"modules with no test file of their own that do not say where they are tested: {silent}"
