"""degrade.severity: per-type strength, deterministic, read by prepare, degrade and pretrain."""
import numpy as np
import pytest

from comcl.common.errors import ParamError
from comcl.common.params import Params
from comcl.data import degradation_fundus, degradation_xray, severity
from comcl.data.quality_stats import image_stats
from comcl.data.synth_fundus import render_fundus
from comcl.common.seeding import rng_for


def _image():
    rgb, fov, _, _ = render_fundus(rng_for(0, "fundus", "sev"), 256, 2)
    return rgb, fov


def test_severity_scales_each_type_and_keeps_the_draws():
    rng = np.random.default_rng(3)
    p = degradation_fundus.sample(rng, 512, 512, None, geometry=(256, 256, 236))
    q = degradation_fundus.with_severity(p, {"blur": 0.1, "spots": 0.5})
    assert q["types"] == p["types"]
    if "blur" in p:
        assert q["blur"]["sigma"] == pytest.approx(0.1 * p["blur"]["sigma"])
    if "illumination" in p:
        assert q["illumination"] == p["illumination"]   # not named: unchanged
    if "spots" in p:
        assert [s["strength"] for s in q["spots"]] == pytest.approx(
            [min(0.5 * s["strength"], 0.95) for s in p["spots"]])
    assert degradation_fundus.with_severity(p, 1.0) is p
    x = degradation_xray.sample(rng, 256, 256, np.ones((256, 256), bool))
    assert degradation_xray.with_severity(x, 0.0).get("blur", {"sigma": 0.0})["sigma"] == 0.0


def test_milder_blur_keeps_more_sharpness_and_is_deterministic():
    rgb, fov = _image()
    sharp = image_stats(rgb, fov)["sharpness"]
    out = {}
    for sev in (0.1, 1.0):
        a, _ = degradation_fundus.degrade(rgb, fov, np.random.default_rng(5), types=["blur"],
                                          severity={"blur": sev})
        b, _ = degradation_fundus.degrade(rgb, fov, np.random.default_rng(5), types=["blur"],
                                          severity={"blur": sev})
        assert np.array_equal(a, b)
        out[sev] = image_stats(a, fov)["sharpness"]
    assert sharp > out[0.1] > out[1.0]
    none, _ = degradation_fundus.degrade(rgb, fov, np.random.default_rng(5), types=["blur"],
                                         severity={"blur": 0.0})
    assert np.array_equal(none, rgb)


def test_severity_param_is_validated(tmp_path):
    assert severity.read(Params({"degrade": {}})) == {}
    assert severity.read(Params({"degrade": {"severity": {"blur": "1e-1"}}})) == {"blur": 0.1}
    with pytest.raises(ParamError, match="degrade.severity.*unknown types"):
        severity.read(Params({"degrade": {"severity": {"blurr": 0.1}}}))
    with pytest.raises(ParamError, match="degrade.severity.blur.*<= 2"):
        severity.read(Params({"degrade": {"severity": {"blur": 3}}}))
