"""Field-of-view detection and crop of real fundus photographs (comcl.data.fundus_fov)."""
import cv2
import numpy as np
import pytest
from conftest import FIXTURES

from comcl.data import fundus_fov
from comcl.imaging.codec import read_image_file

EYEQ_IMAGES = FIXTURES / "eyeq" / "images"
needs_fixtures = pytest.mark.skipif(
    not EYEQ_IMAGES.is_dir(),
    reason=f"real-data fixtures not found at {EYEQ_IMAGES} (they live beside the repository, "
           "not in it)")


def ring_levels(image, circle, inner=0.96, outer=1.04):
    """Median channel maximum just inside and just outside the detected circle (in-image)."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h:4, 0:w:4]
    d = np.hypot(xx - circle.cx, yy - circle.cy) / circle.radius
    v = image[::4, ::4].max(axis=2)
    return (float(np.median(v[(d > inner - 0.02) & (d < inner)])),
            float(np.median(v[(d > outer) & (d < outer + 0.02)])))


def synthetic_dark_fundus(h=900, w=1300, cx=640.0, cy=455.0, r=520.0, seed=0):
    """An under-exposed fundus photograph: retina 2-14 grey levels (darker to one side),
    a clipped disc (top and bottom), a notch marker, a near-black JPEG-noisy frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.hypot(xx - cx, yy - cy)
    level = 3.0 + 9.0 * (xx - (cx - r)) / (2 * r) + rng.normal(0, 0.8, (h, w))
    img = np.zeros((h, w, 3), np.float32)
    inside = d <= r
    img[inside] = np.stack([level, 0.45 * level, 0.2 * level], -1)[inside]
    cv2.rectangle(img, (int(cx + 0.62 * r), int(cy - 0.83 * r)),
                  (int(cx + 0.62 * r) + 25, int(cy - 0.83 * r) - 25), (10, 5, 2), -1)
    img = np.clip(img + rng.normal(0, 0.6, img.shape), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED), (cx, cy, r)


def test_synthetic_underexposed_image_where_a_plain_threshold_fails():
    img, (cx, cy, r) = synthetic_dark_fundus()
    c = fundus_fov.detect(img)
    assert c.method == "fit"
    assert abs(c.cx - cx) < 0.01 * r and abs(c.cy - cy) < 0.01 * r
    assert abs(c.radius - r) < 0.01 * r
    # The classic fixed threshold finds only the brighter half of the retina.
    plain = img.max(axis=2) > 10
    xs = np.nonzero(plain.any(axis=0))[0]
    assert xs.min() > cx - 0.5 * r
    out, fov, _ = fundus_fov.preprocess(img, 256)
    assert out.shape == (256, 256, 3) and fov.dtype == bool
    assert out[~fov].max() == 0
    # Clipped top and bottom: the mask is the disc minus the rows outside the photograph.
    rm = r * 0.995  # the stored mask keeps off the soft rim by 0.5% of the radius

    def segment(d):  # area of the disc beyond a chord at distance d from the centre
        return rm * rm * np.arccos(d / rm) - d * np.sqrt(rm * rm - d * d)
    expected = (np.pi * rm * rm - segment(cy) - segment(900 - cy)) / (2 * r) ** 2
    assert fov.mean() == pytest.approx(expected, abs=0.005)


def test_no_frame_means_the_whole_image():
    img = np.full((300, 400, 3), 120, np.uint8)
    c = fundus_fov.detect(img)
    assert c.method == "full"
    out, fov, _ = fundus_fov.preprocess(img, 128)
    assert fov.mean() == pytest.approx(0.75, abs=0.02)  # 400x300 centred on a square


@needs_fixtures
@pytest.mark.parametrize("name", ["172_left", "670_left", "374_right"])
def test_dark_fixture_photographs(name):
    """EyePACS photographs with mean grey 25-28 (the darkest fixtures)."""
    img = read_image_file(EYEQ_IMAGES / f"{name}.jpeg")
    assert img.mean() < 30
    c = fundus_fov.detect(img)
    assert c.method == "fit"
    inside, outside = ring_levels(img, c)
    assert outside <= 6 and inside > outside + 8, (inside, outside)
    assert 0.45 < c.radius / img.shape[0] < 0.5  # the disc fills the frame height
    # Darkened ten times more, the same circle (a plain threshold crop breaks down here).
    darker = (img.astype(np.float32) * 0.1).astype(np.uint8)
    d = fundus_fov.detect(darker)
    assert np.hypot(d.cx - c.cx, d.cy - c.cy) < 0.01 * c.radius
    assert abs(d.radius - c.radius) < 0.01 * c.radius
    yy, xx = np.mgrid[0:img.shape[0]:4, 0:img.shape[1]:4]
    disc = np.hypot(xx - c.cx, yy - c.cy) < c.radius
    assert (darker[::4, ::4].max(axis=2) > 10)[disc].mean() < 0.6  # plain threshold: lost
    out, fov, _ = fundus_fov.preprocess(img, 256)
    assert out.shape == (256, 256, 3) and out[~fov].max() == 0
    assert fov.mean() == pytest.approx(np.pi / 4, abs=0.02)


@needs_fixtures
def test_every_fixture_photograph_gets_a_fitted_circle():
    for path in sorted(EYEQ_IMAGES.glob("*.jpeg")):
        img = read_image_file(path)
        c = fundus_fov.detect(img)
        inside, outside = ring_levels(img, c)
        assert c.method == "fit", path.name
        assert outside <= 8 and inside > outside + 8, (path.name, inside, outside)
