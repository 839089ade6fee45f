"""What a data source gives ``prepare`` (the contract is described in ``comcl.data.sources``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Source:
    jobs: list
    render: Callable[[object], dict]
    info: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. files skipped, printed by prepare


@dataclass
class AuxSource:
    jobs: list
    render: Callable[[object], dict]
    classes: list[str]
    notes: list[str] = field(default_factory=list)
