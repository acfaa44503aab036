"""Which files of the package a stage script imports, directly or through other modules.

dvc.yaml lists, for every stage, exactly the library files its script
imports, so editing one module re-runs only the stages that can see it. This
reads the import statements (top-level and inside functions: a lazy import is
still a dependency; only a package's `__getattr__`, which imports on attribute
access, is not) without running anything; `tests/test_pipeline.py`
checks dvc.yaml against it, and `python -m aebench.common.imports stages/x.py`
prints the list to paste.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "aebench"


def _module_file(name: str, source_root: Path) -> Path | None:
    base = source_root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    # A module-level __getattr__ imports on attribute access (`aebench.load_model`), not on import.
    tree.body = [node for node in tree.body if not (isinstance(node, ast.FunctionDef) and node.name == "__getattr__")]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {name for name in names if name == PACKAGE or name.startswith(f"{PACKAGE}.")}


def _with_parents(name: str) -> list[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py first."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def package_files(script: str | Path, source_root: str | Path = "src") -> list[Path]:
    """Every file of the package that `script` imports, transitively, sorted (paths under source_root)."""
    source_root = Path(source_root)
    seen: set[Path] = set()
    pending = [Path(script)]
    while pending:
        path = pending.pop()
        for name in _imported_names(path):
            for module in _with_parents(name):
                found = _module_file(module, source_root)
                if found is not None and found not in seen:
                    seen.add(found)
                    pending.append(found)
    return sorted(seen)


if __name__ == "__main__":
    for script in sys.argv[1:]:
        print(f"# {script}")
        for path in package_files(script):
            print(f"- {path.as_posix()}")
