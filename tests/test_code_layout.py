"""The code layout contract: DVC deps equal each stage's import closure, no import circle,
stages are leaves, package ``__init__`` files hold no code."""
import ast
from pathlib import Path

import yaml

from comcl.common import code_deps

REPO = Path(__file__).resolve().parents[1]


def _code_deps(stage: dict) -> set[str]:
    return {d for d in stage["deps"] if d.endswith(".py")}


def test_dvc_code_deps_equal_each_stage_import_closure():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    wrong = []
    for name, stage in stages.items():
        need = set(code_deps.closure(f"stages.{name}"))
        listed = _code_deps(stage)
        if listed != need:
            wrong.append(f"{name}: missing {sorted(need - listed)}, "
                         f"not imported {sorted(listed - need)}")
    assert not wrong, "dvc.yaml code deps disagree with the imports:\n" + "\n".join(wrong)


def test_closure_follows_deferred_and_from_imports(tmp_path):
    (tmp_path / "comcl").mkdir()
    (tmp_path / "stages").mkdir()
    for pkg in ("comcl", "stages"):
        (tmp_path / pkg / "__init__.py").write_text('"""pkg"""\n')
    (tmp_path / "comcl" / "a.py").write_text("import os\nfrom comcl import b\n")
    (tmp_path / "comcl" / "b.py").write_text("def f():\n    from comcl.c import g\n")
    (tmp_path / "comcl" / "c.py").write_text("g = 1\n")
    (tmp_path / "comcl" / "unused.py").write_text("")
    (tmp_path / "stages" / "s.py").write_text("from comcl.a import *\n")
    assert code_deps.closure("stages.s", tmp_path) == [
        "comcl/a.py", "comcl/b.py", "comcl/c.py", "stages/s.py"]


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_project_import_graph_has_no_circle():
    graph = code_deps.import_graph()
    # a package's own __init__ is imported by its members; that is not a circle
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    assert _cycle(graph) is None


def test_stages_are_leaves_and_library_never_imports_a_stage():
    graph = code_deps.import_graph()
    for module, deps in graph.items():
        bad = {d for d in deps if d.startswith("stages.") and d != "stages.options"}
        assert not bad, f"{module} imports the stage modules {sorted(bad)}"
        if module.startswith("comcl"):
            assert not any(d.startswith("stages") for d in deps), module


def test_package_inits_hold_only_a_docstring():
    for init in REPO.glob("comcl/**/__init__.py"):
        body = ast.parse(init.read_text()).body
        assert all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
                   for n in body), init


def test_no_library_module_imports_a_stage_entry_module():
    """Each stage's ``run`` module is a leaf of the library: shared code lives elsewhere."""
    graph = code_deps.import_graph()
    entries = {d for m, deps in graph.items() if m.startswith("stages.") for d in deps
               if d.startswith("comcl.")
               and "\ndef run(" in code_deps.module_file(d).read_text()}
    assert "comcl.pretraining.pretrain" in entries and "comcl.diagnosis.finetune" in entries
    for module, deps in graph.items():
        if module.startswith("comcl."):
            assert not deps & entries, f"{module} imports {sorted(deps & entries)}"
