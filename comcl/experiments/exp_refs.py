"""The local DVC experiments as git refs: {name: commit}, the newest run of each name.

DVC stores each finished experiment as ``refs/exps/<baseline[:2]>/<baseline[2:]>/<name>``;
the queue keeps its own refs under ``refs/exps/celery/`` (not experiments). These refs are
local to the clone that ran them (``paper_tables export`` keeps what they hold).
"""
from __future__ import annotations

import subprocess
from pathlib import Path


def experiment_refs(cwd: Path = Path(".")) -> dict[str, str]:
    """{experiment name: commit} of the local DVC experiments (the newest of each name);
    empty outside a git repository."""
    out = subprocess.run(["git", "for-each-ref", "--sort=creatordate",
                          "--format=%(refname) %(objectname)", "refs/exps"], cwd=cwd,
                         capture_output=True, text=True).stdout
    refs = {}
    for line in out.splitlines():
        ref, rev = line.split()
        parts = ref.split("/")
        if len(parts) != 5 or parts[2] == "celery":
            continue   # the queue's own refs (refs/exps/celery/stash, ...)
        refs[parts[-1]] = rev   # sorted oldest first: the newest wins
    return refs
