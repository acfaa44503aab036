"""Which files of the package a stage script imports, directly or through other modules.

dvc.yaml lists, for every stage, exactly the library files its script
imports, so editing one module re-runs only the stages that can see it. This
reads the import statements (top-level and inside functions: a lazy import is
still a dependency; only a package's `__getattr__`, which imports on attribute
access, is not) without running anything.

`python -m aebench.common.imports --write` rewrites the `src/` entries of every
stage's deps in the three pipelines from the scripts' imports (the other
entries, scripts and data, are kept in place); `--check` says which stages
differ, and `tests/test_pipeline.py` runs it. `python -m
aebench.common.imports stages/x.py` prints one script's list.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

PACKAGE = "aebench"
PIPELINES = ("dvc.yaml", "sweep/dvc.yaml", "replicate/dvc.yaml")
_SCRIPT = re.compile(r"python (stages/\w+\.py)")
_DEPS = re.compile(r"^(\s*)deps:\s*$")
_ITEM = re.compile(r"^(\s*)- (\S+)\s*$")


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


def with_generated_deps(text: str, repo: Path) -> str:
    """A dvc.yaml's text with each stage's `src/` deps replaced by its script's import closure.

    A stage's script is the `python stages/<x>.py` of its cmd, which comes before its deps; the
    generated entries go right after the last `stages/` entry, so a block reads script, bootstrap,
    library, data.
    """
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    script: str | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        out.append(line)
        index += 1
        if found := _SCRIPT.search(line):
            script = found.group(1)
        if not (_DEPS.match(line) and script):
            continue
        block: list[str] = []
        while index < len(lines) and (_ITEM.match(lines[index]) or lines[index].lstrip().startswith("#")):
            block.append(lines[index])
            index += 1
        kept = [entry for entry in block if not (_ITEM.match(entry) and _ITEM.match(entry).group(2).startswith("src/"))]
        items = [entry for entry in kept if _ITEM.match(entry)]
        indent = _ITEM.match(items[0]).group(1) if items else _DEPS.match(line).group(1) + "  "
        generated = [
            f"{indent}- {path.relative_to(repo).as_posix()}\n" for path in package_files(repo / script, repo / "src")
        ]
        last_script = max((i for i, entry in enumerate(kept) if "- stages/" in entry), default=-1)
        out.extend(kept[: last_script + 1] + generated + kept[last_script + 1 :])
        script = None
    return "".join(out)


def stale_pipelines(repo: Path, *, write: bool) -> list[str]:
    """The pipelines whose deps differ from the generated ones (rewritten in place when `write`)."""
    stale = []
    for name in PIPELINES:
        path = repo / name
        text = path.read_text()
        generated = with_generated_deps(text, repo)
        if generated != text:
            stale.append(name)
            if write:
                path.write_text(generated)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Stage scripts' library imports, as dvc.yaml deps.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the src/ deps of the three pipelines")
    mode.add_argument("--check", action="store_true", help="exit 1 naming the pipelines whose deps are stale")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the repository root")
    parser.add_argument("scripts", nargs="*", help="print these scripts' lists instead")
    args = parser.parse_args(argv)
    if args.write or args.check:
        stale = stale_pipelines(args.repo, write=args.write)
        verb = "rewrote" if args.write else "stale deps in"
        print(f"{verb}: {', '.join(stale)}" if stale else "deps: every pipeline matches its scripts' imports")
        return 1 if stale and args.check else 0
    for script in args.scripts:
        print(f"# {script}")
        for path in package_files(script, args.repo / "src"):
            print(f"- {path.as_posix()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
