"""Reading params.yaml with validation: every error names the params file and the dotted
key at fault. Numbers written like ``1e-3`` (a string to YAML 1.1, which wants ``1.0e-3``)
are read as numbers."""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Iterable

import yaml

from comcl.common.errors import ParamError, PipelineError

_MISSING = object()
# A plain decimal float literal (no inf/nan, no underscores): "1e-3", "-2.5E+4", ".5".
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def as_number(value: Any) -> Any:
    """A string holding a float literal as a float (an int when it has no decimal point
    and an integral value, like ``2e3``); any other value unchanged."""
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        number = float(value)
        integral = "." not in value and number.is_integer() and abs(number) < 2 ** 53
        return int(number) if integral else number
    return value


class Params:
    """A read-only view on params.yaml; ``get("degrade.target_ratio")`` style access."""

    def __init__(self, data: dict, source: str = "params.yaml"):
        self.data = data
        self.source = source

    @classmethod
    def load(cls, path: str | Path = "params.yaml") -> "Params":
        path = Path(path)
        if not path.exists():
            raise PipelineError(f"{path}: params file not found (run from the repository "
                                "root, or pass --params)")
        with open(path) as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise PipelineError(f"{path}: params file is not a mapping")
        return cls(data, str(path))

    def error(self, key: str, problem: str) -> ParamError:
        """A ParamError naming this params file."""
        return ParamError(key, problem, self.source)

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                if default is _MISSING:
                    raise self.error(key, "is missing")
                return default
            node = node[part]
        return node

    def number(self, key: str, lo: float | None = None, hi: float | None = None,
               default: Any = _MISSING, allow_none: bool = False,
               lo_open: bool = False, hi_open: bool = False) -> float | None:
        value = as_number(self.raw(key, default))
        if value is None and allow_none:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise self.error(key, f"must be a number, got {value!r}")
        self._check_range(key, value, lo, hi, lo_open, hi_open)
        return float(value)

    def integer(self, key: str, lo: int | None = None, hi: int | None = None,
                default: Any = _MISSING, allow_none: bool = False) -> int | None:
        value = as_number(self.raw(key, default))
        if value is None and allow_none:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer, got {value!r}")
        self._check_range(key, value, lo, hi, False, False)
        return int(value)

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def choice(self, key: str, choices: Iterable[str], default: Any = _MISSING) -> str:
        choices = list(choices)
        value = self.raw(key, default)
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value

    def string(self, key: str, default: Any = _MISSING, allow_none: bool = False) -> str | None:
        value = self.raw(key, default)
        if value is None and allow_none:
            return None
        if not isinstance(value, str) or not value:
            raise self.error(key, f"must be a non-empty string, got {value!r}")
        return value

    def subset_list(self, key: str, allowed: Iterable[str], default: Any = _MISSING) -> list[str]:
        allowed = list(allowed)
        value = self.raw(key, default)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.error(key, f"must be a non-empty list drawn from {allowed}, got {value!r}")
        bad = [v for v in value if v not in allowed]
        if bad:
            raise self.error(key, f"has unknown entries {bad}; allowed: {allowed}")
        if len(set(value)) != len(value):
            raise self.error(key, f"lists an entry twice: {value}")
        return list(value)

    def number_list(self, key: str, length: int | None = None, lo: float | None = None,
                    default: Any = _MISSING, hi: float | None = None) -> list[float]:
        value = self.raw(key, default)
        if isinstance(value, list):
            value = [as_number(v) for v in value]
        if not isinstance(value, list) or (length is not None and len(value) != length):
            want = f"a list of {length} numbers" if length else "a list of numbers"
            raise self.error(key, f"must be {want}, got {value!r}")
        for v in value:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise self.error(key, f"must hold numbers only, got {v!r}")
            if lo is not None and v < lo:
                raise self.error(key, f"entries must be >= {lo}, got {v!r}")
            if hi is not None and v > hi:
                raise self.error(key, f"entries must be <= {hi}, got {v!r}")
        return [float(v) for v in value]

    def _check_range(self, key, value, lo, hi, lo_open, hi_open):
        if lo is not None and (value < lo or (lo_open and value == lo)):
            raise self.error(key, f"must be {'>' if lo_open else '>='} {lo}, got {value!r}")
        if hi is not None and (value > hi or (hi_open and value == hi)):
            raise self.error(key, f"must be {'<' if hi_open else '<='} {hi}, got {value!r}")
