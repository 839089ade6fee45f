"""Rewrite the ``.py`` deps of every stage in ``dvc.yaml`` from its import closure.

    python scripts/sync_dvc_deps.py          # after changing imports; then review the diff

Data deps, params and outputs are kept; only the code lines under each ``deps:`` are
replaced by ``comcl.common.code_deps.closure("stages.<name>")``. ``tests/test_code_layout.py``
fails until the two agree.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from comcl.common import code_deps  # noqa: E402


def sync(text: str) -> str:
    out, stage, in_deps = [], None, False
    for line in text.split("\n"):
        m = re.match(r"^  ([a-z_]+):\s*$", line)
        if m:
            stage = m.group(1)
        if re.match(r"^    deps:\s*$", line):
            in_deps = True
            out.append(line)
            continue
        if in_deps:
            if re.match(r"^      - ", line):
                if not line.strip()[2:].endswith(".py"):
                    out.append(line)
                continue
            out.extend(f"      - {f}" for f in code_deps.closure(f"stages.{stage}"))
            in_deps = False
        out.append(line)
    return "\n".join(out)


if __name__ == "__main__":
    path = ROOT / "dvc.yaml"
    path.write_text(sync(path.read_text()))
