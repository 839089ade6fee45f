"""Reading params.yaml with validation: every error names the dotted key at fault."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import yaml

from comcl.common.errors import ParamError

_MISSING = object()


class Params:
    """A read-only view on params.yaml; ``get("degrade.target_ratio")`` style access."""

    def __init__(self, data: dict, source: str = "params.yaml"):
        self.data = data
        self.source = source

    @classmethod
    def load(cls, path: str | Path = "params.yaml") -> "Params":
        path = Path(path)
        if not path.exists():
            raise ParamError(str(path), "file not found (run from the repository root)")
        with open(path) as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise ParamError(str(path), "is not a mapping")
        return cls(data, str(path))

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                if default is _MISSING:
                    raise ParamError(key, "is missing")
                return default
            node = node[part]
        return node

    def number(self, key: str, lo: float | None = None, hi: float | None = None,
               default: Any = _MISSING, allow_none: bool = False,
               lo_open: bool = False, hi_open: bool = False) -> float | None:
        value = self.raw(key, default)
        if value is None and allow_none:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise ParamError(key, f"must be a number, got {value!r}")
        _check_range(key, value, lo, hi, lo_open, hi_open)
        return float(value)

    def integer(self, key: str, lo: int | None = None, hi: int | None = None,
                default: Any = _MISSING, allow_none: bool = False) -> int | None:
        value = self.raw(key, default)
        if value is None and allow_none:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(key, f"must be an integer, got {value!r}")
        _check_range(key, value, lo, hi, False, False)
        return int(value)

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise ParamError(key, f"must be true or false, got {value!r}")
        return value

    def choice(self, key: str, choices: Iterable[str], default: Any = _MISSING) -> str:
        choices = list(choices)
        value = self.raw(key, default)
        if value not in choices:
            raise ParamError(key, f"must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value

    def string(self, key: str, default: Any = _MISSING, allow_none: bool = False) -> str | None:
        value = self.raw(key, default)
        if value is None and allow_none:
            return None
        if not isinstance(value, str) or not value:
            raise ParamError(key, f"must be a non-empty string, got {value!r}")
        return value

    def subset_list(self, key: str, allowed: Iterable[str], default: Any = _MISSING) -> list[str]:
        allowed = list(allowed)
        value = self.raw(key, default)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise ParamError(key, f"must be a non-empty list drawn from {allowed}, got {value!r}")
        bad = [v for v in value if v not in allowed]
        if bad:
            raise ParamError(key, f"has unknown entries {bad}; allowed: {allowed}")
        if len(set(value)) != len(value):
            raise ParamError(key, f"lists an entry twice: {value}")
        return list(value)

    def number_list(self, key: str, length: int | None = None, lo: float | None = None,
                    default: Any = _MISSING) -> list[float]:
        value = self.raw(key, default)
        if not isinstance(value, list) or (length is not None and len(value) != length):
            want = f"a list of {length} numbers" if length else "a list of numbers"
            raise ParamError(key, f"must be {want}, got {value!r}")
        for v in value:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ParamError(key, f"must hold numbers only, got {v!r}")
            if lo is not None and v < lo:
                raise ParamError(key, f"entries must be >= {lo}, got {v!r}")
        return [float(v) for v in value]


def _check_range(key, value, lo, hi, lo_open, hi_open):
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise ParamError(key, f"must be {'>' if lo_open else '>='} {lo}, got {value!r}")
    if hi is not None and (value > hi or (hi_open and value == hi)):
        raise ParamError(key, f"must be {'<' if hi_open else '<='} {hi}, got {value!r}")
