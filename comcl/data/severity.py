"""``degrade.severity``: one strength multiplier per degradation type (1: the model as
drawn, 0: none), shared by the synthetic data's native low quality (``prepare``), the
``degrade`` stage and pretraining's quality view (recorded in ``dataset.json`` as
``degradation_severity``). Defaults and their calibration against real EyeQ photographs:
``docs/quality.md``."""
from __future__ import annotations

from comcl.common.params import Params

FUNDUS_TYPES = ("illumination", "spots", "blur")
XRAY_TYPES = ("contrast", "blur", "noise")
KEY = "degrade.severity"
MIN_VISIBLE_SIGMA = 0.5   # px: the least blur a severity above 0 gives
INFO_KEY = "degradation_severity"


def severity_of(severity: float | dict | None, types) -> dict:
    """{type: multiplier} from one number, a partial mapping or None (all 1)."""
    if severity is None:
        return dict.fromkeys(types, 1.0)
    if isinstance(severity, dict):
        return {t: float(severity.get(t, 1.0)) for t in types}
    return dict.fromkeys(types, float(severity))


def scaled_sigma(sigma: float, k: float) -> float:
    """A blur sigma scaled by ``k``, at least ``MIN_VISIBLE_SIGMA`` unless ``k`` is 0: an
    image drawn as blurred must not come out unchanged (small images, mild severities)."""
    return 0.0 if k == 0 else max(sigma * k, MIN_VISIBLE_SIGMA)


def read(p: Params) -> dict:
    """``degrade.severity`` as {type: multiplier in [0, 2]}; absent: every type 1."""
    raw = p.raw(KEY, None)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise p.error(KEY, f"must map degradation types to numbers, got {raw!r}")
    known = sorted(set(FUNDUS_TYPES) | set(XRAY_TYPES))
    bad = [k for k in raw if k not in known]
    if bad:
        raise p.error(KEY, f"has unknown types {bad}; known: {known}")
    return {k: p.number(f"{KEY}.{k}", 0.0, 2.0) for k in raw}
