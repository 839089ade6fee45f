"""Presets: partial params files (nested like ``params.yaml``) as ``dvc exp run -S`` overrides.

Used by ``scripts/run_preset.py`` (one experiment) and ``paper_tables queue --preset`` (a
grid run on a profile such as ``presets/bench.yaml``).
"""
from __future__ import annotations

import json
from pathlib import Path

import click
import yaml


def flatten(tree: dict, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted key, leaf value) pairs; lists and scalars are leaves."""
    out = []
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.extend(flatten(value, name + "."))
        else:
            out.append((name, value))
    return out


def override(key: str, value) -> str:
    """One ``-S`` argument; values in JSON syntax (null, true, [1, 2], "text")."""
    if isinstance(value, str):
        return f"{key}={value}"
    return f"{key}={json.dumps(value, separators=(',', ':'))}"


def overrides(preset: Path) -> list[str]:
    """The preset file's ``key=value`` overrides, in file order."""
    tree = yaml.safe_load(Path(preset).read_text()) or {}
    if not isinstance(tree, dict):
        raise click.BadParameter(f"{preset}: a preset must be a mapping of params sections")
    return [override(key, value) for key, value in flatten(tree)]


def check_sets(items) -> None:
    """``-S`` arguments given on a command line must read ``key=value``."""
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"-S {item}: expected key=value")
