"""Resumable training checkpoints: what a run depends on, atomic save, matching resume.

A checkpoint carries a fingerprint of the config, the input files and the code of the
stage that wrote it (its import closure, ``comcl.common.code_deps``: the same files DVC
tracks); a checkpoint from anything else is ignored, not resumed.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

import torch

from comcl.common import code_deps
from comcl.common.atomic import atomic_file

NAME = "last.pt"


def fingerprint(config: dict, inputs: Iterable[Path], stage_module: str, extra: str = "") -> str:
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for path in inputs:
        h.update(Path(path).read_bytes())
    for rel in code_deps.closure(stage_module):
        h.update(rel.encode())
        h.update((code_deps.ROOT / rel).read_bytes())
    h.update(extra.encode())
    return h.hexdigest()[:16]


def save(path: str | Path, fp: str, state: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        torch.save({"fingerprint": fp, **state}, tmp)


def load_matching(path: str | Path, fp: str, who: str, verbose: bool = True) -> dict | None:
    """The checkpoint's state when it matches ``fp``; None (and a line saying why) else."""
    path = Path(path)
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("fingerprint") != fp:
        if verbose:
            print(f"{who}: {path} is from other params, inputs or code; starting afresh")
        return None
    return state
