"""The project's own source files a module runs: its import closure (DVC deps, fingerprints).

Static: every ``import`` / ``from ... import`` anywhere in a module (deferred imports
inside functions too) that names a module of this repository is followed; third-party
modules are not. Package ``__init__`` files hold only a docstring and are left out.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("comcl", "stages")


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The file of the project module ``name`` (dotted), or None when it is not ours."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def direct_imports(path: Path, root: Path = ROOT) -> set[str]:
    """Dotted names of the project modules ``path`` imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(path, root)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if module_file(name, root) is not None:
                out.add(name)
    return out


def closure(module: str, root: Path = ROOT) -> list[str]:
    """Repo-relative paths (sorted) of ``module`` and every project module it imports,
    transitively; package ``__init__.py`` files are left out."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_file(name, root)
        if path is None:
            raise ValueError(f"{name} is not a module of this project")
        seen[name] = path
        todo.extend(direct_imports(path, root) - seen.keys())
    return sorted(p.relative_to(root).as_posix() for p in seen.values()
                  if p.name != "__init__.py")


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Every project module and the project modules it imports."""
    graph = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            graph[_module_name(path, root)] = direct_imports(path, root)
    return graph
