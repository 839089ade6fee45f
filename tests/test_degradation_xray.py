"""The X-ray degradation model: each type does what it says, seeded, replayable."""
import json

import cv2
import numpy as np
import pytest

from comcl.data import degradation_xray as dx
from comcl.data.degrade import model_for
from comcl.data.synth_chest import render_chest


@pytest.fixture(scope="module")
def chest():
    grey, fov, _, _ = render_chest(np.random.default_rng(0), 256, ["Mass"])
    return grey, fov


def high_freq_var(img):
    f = img.astype(np.float32)
    return float((f - cv2.GaussianBlur(f, (0, 0), 1.5)).var())


def laplacian_var(img):
    return float(cv2.Laplacian(img.astype(np.float32), cv2.CV_32F).var())


def test_model_for_xray():
    assert model_for("xray") is dx and dx.TYPES == ("noise", "blur", "contrast")


@pytest.mark.parametrize("seed", range(5))
def test_each_type_does_what_it_says(chest, seed):
    grey, fov = chest
    noisy, p = dx.degrade(grey, fov, np.random.default_rng(seed), types=["noise"])
    assert p["types"] == ["noise"] and 0.02 <= p["noise"]["sigma"] <= 0.06
    assert high_freq_var(noisy) > 3 * high_freq_var(grey)
    assert abs(float(noisy.mean()) - float(grey.mean())) < 2
    blurred, p = dx.degrade(grey, fov, np.random.default_rng(seed), types=["blur"])
    assert 1.5 * 0.5 <= p["blur"]["sigma"] <= 4.0 * 0.5  # 256 px: half the 512 px range
    assert laplacian_var(blurred) < 0.5 * laplacian_var(grey)
    flat, p = dx.degrade(grey, fov, np.random.default_rng(seed), types=["contrast"])
    assert flat.std() < 0.8 * grey.std()
    assert flat.std() == pytest.approx(p["contrast"]["factor"] * grey.std(), rel=0.05)


def test_deterministic_per_seed_and_json_replayable(chest):
    grey, fov = chest
    a, pa = dx.degrade(grey, fov, np.random.default_rng(7))
    b, pb = dx.degrade(grey, fov, np.random.default_rng(7))
    assert pa == pb and np.array_equal(a, b)
    c, pc = dx.degrade(grey, fov, np.random.default_rng(8), types=list(dx.TYPES))
    replay = dx.apply(grey, fov, json.loads(json.dumps(pc, sort_keys=True)))
    assert np.array_equal(replay, c) and replay.dtype == np.uint8 and replay.shape == grey.shape
    d, _ = dx.degrade(grey, fov, np.random.default_rng(9), types=list(dx.TYPES))
    assert not np.array_equal(c, d)


def test_random_combinations_respect_allowed(chest):
    grey, fov = chest
    seen = set()
    for s in range(40):
        p = dx.sample(np.random.default_rng(s), 256, 256, fov, allowed=["noise", "blur"])
        assert p["types"] and set(p["types"]) <= {"noise", "blur"}
        seen.add(tuple(p["types"]))
    assert seen == {("noise",), ("blur",), ("noise", "blur")}
    with pytest.raises(ValueError, match="unknown degradation types"):
        dx.sample(np.random.default_rng(0), 256, 256, fov, types=["spots"])


def test_outside_the_fov_stays_black():
    img = np.full((64, 64), 120, np.uint8)
    fov = np.zeros((64, 64), bool)
    fov[8:56, 8:56] = True
    img[~fov] = 0
    out, _ = dx.degrade(img, fov, np.random.default_rng(0), types=list(dx.TYPES))
    assert out[~fov].max() == 0
    # Blur normalised by the FOV: no dark bleed from the black border into the image.
    blurred, _ = dx.degrade(img, fov, np.random.default_rng(0), types=["blur"])
    assert abs(int(blurred[fov].min()) - 120) <= 1
