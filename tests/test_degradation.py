"""The fundus degradation model does what each type says, only inside the FOV, per seed."""
import json

import cv2
import numpy as np
import pytest

from comcl.data import degradation_fundus as D
from comcl.data.synth_fundus import render_fundus

SIZE = 256


@pytest.fixture(scope="module")
def fundus():
    rgb, fov, mask, _ = render_fundus(np.random.default_rng(3), SIZE, 3)
    return rgb, fov


def laplacian_var(img, fov):
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64)
    lap = cv2.Laplacian(grey, cv2.CV_64F)
    inner = cv2.erode(fov.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    return lap[inner].var()


def mean_grey(img, fov):
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[fov].mean()


@pytest.mark.parametrize("seed", range(5))
def test_blur_lowers_laplacian_variance_inside_fov(fundus, seed):
    rgb, fov = fundus
    out, params = D.degrade(rgb, fov, np.random.default_rng(seed), types=["blur"])
    assert params["types"] == ["blur"]
    assert 5 * SIZE / 512 <= params["blur"]["sigma"] <= 15 * SIZE / 512
    assert laplacian_var(out, fov) < 0.2 * laplacian_var(rgb, fov)


def test_illumination_brightness_factor_scales_mean_brightness(fundus):
    rgb, fov = fundus
    params = D.sample(np.random.default_rng(0), SIZE, SIZE, fov, types=["illumination"])
    neutral = dict(params["illumination"], contrast=1.0, saturation=1.0, halo_strength=0.0,
                   hole_depth=0.0)
    for factor in (0.7, 0.85, 1.1):
        p = {"types": ["illumination"], "illumination": dict(neutral, brightness=factor)}
        out = D.apply(rgb, fov, p)
        # Saturation at 255 only matters for factors > 1 on bright pixels (the disc).
        assert mean_grey(out, fov) == pytest.approx(factor * mean_grey(rgb, fov), rel=0.02)


@pytest.mark.parametrize("seed", range(8))
def test_illumination_shifts_mean_brightness_or_evenness(fundus, seed):
    rgb, fov = fundus
    out, p = D.degrade(rgb, fov, np.random.default_rng(seed), types=["illumination"])
    grey_in = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[fov].astype(float)
    grey_out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)[fov].astype(float)
    # The hole darkens the centre and the halo lifts the rim: a large per-pixel change.
    assert np.abs(grey_out - grey_in).mean() > 8


def test_colour_matrix_matches_sequential_operations():
    rng = np.random.default_rng(0)
    img = rng.random((16, 16, 3)).astype(np.float32)
    b, c, s = 0.8, 1.3, 0.7
    w = np.array([0.299, 0.587, 0.114])
    mean = float((img @ w).mean())
    x = img * b
    m = float((x @ w).mean())
    x = (x - m) * c + m
    g = (x @ w)[..., None]
    expected = g + (x - g) * s
    got = cv2.transform(img, D._colour_matrix(b, c, s, mean))
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_spots_add_bright_blobs(fundus, seed):
    rgb, fov = fundus
    out, p = D.degrade(rgb, fov, np.random.default_rng(seed), types=["spots"])
    assert 5 <= len(p["spots"]) <= 10
    grey_in = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(int)
    grey_out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).astype(int)
    assert (grey_out >= grey_in - 1).all()  # spots only brighten
    brighter = 0
    for sp in p["spots"]:
        x, y = int(round(sp["x"])), int(round(sp["y"]))
        assert SIZE * 0.01 <= sp["radius"] <= SIZE * 0.05
        brighter += grey_out[y, x] - grey_in[y, x] > 15
    assert brighter >= len(p["spots"]) - 1  # a spot may sit on the bright disc already
    # Each blob is a connected bright region: count components of the brightened area.
    lifted = ((grey_out - grey_in) > 15).astype(np.uint8)
    n, _ = cv2.connectedComponents(lifted)
    assert 1 <= n - 1 <= len(p["spots"])


@pytest.mark.parametrize("types", [["illumination"], ["spots"], ["blur"],
                                   ["illumination", "spots", "blur"]])
def test_outside_fov_stays_black_and_inside_changes(fundus, types):
    rgb, fov = fundus
    out, _ = D.degrade(rgb, fov, np.random.default_rng(1), types=types)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert out[~fov].max() == 0
    assert (out[fov] != rgb[fov]).any()


def test_same_seed_same_output_and_recorded_params_replay(fundus):
    rgb, fov = fundus
    a, pa = D.degrade(rgb, fov, np.random.default_rng(42))
    b, pb = D.degrade(rgb, fov, np.random.default_rng(42))
    assert pa == pb and np.array_equal(a, b)
    replay = D.apply(rgb, fov, json.loads(json.dumps(pa)))
    assert np.array_equal(a, replay)
    c, pc = D.degrade(rgb, fov, np.random.default_rng(43))
    assert pc != pa


def test_every_nonempty_combination_is_drawn(fundus):
    rgb, fov = fundus
    seen = {tuple(D.sample(np.random.default_rng(i), SIZE, SIZE, fov)["types"])
            for i in range(200)}
    assert len(seen) == 7 and () not in seen


def test_allowed_types_restrict_the_draw(fundus):
    _, fov = fundus
    for i in range(30):
        p = D.sample(np.random.default_rng(i), SIZE, SIZE, fov, allowed=["blur", "spots"])
        assert p["types"] and set(p["types"]) <= {"blur", "spots"}


@pytest.mark.parametrize("sigma", [5.0, 8.0, 11.5, 15.0])
def test_fast_blur_matches_direct_gaussian_inside_fov(sigma):
    rgb, fov, _, _ = render_fundus(np.random.default_rng(5), 512, 4)
    x = rgb.astype(np.float32)
    m = fov.astype(np.float32)
    num = cv2.GaussianBlur(x * m[..., None], (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(m, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    direct = num / np.maximum(den, 1e-3)[..., None]
    fast = D._blur(x, fov, sigma)
    assert np.abs(direct - fast)[fov].max() < 0.5  # grey levels


def test_blur_scales_with_resolution():
    fov = np.ones((1024, 1024), bool)
    sig = [D.sample(np.random.default_rng(i), 1024, 1024, fov, types=["blur"])["blur"]["sigma"]
           for i in range(50)]
    assert 10 <= min(sig) and max(sig) <= 30
