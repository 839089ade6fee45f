"""The synthetic fundus generator: grades follow the lesion load, masks are right."""
import cv2
import numpy as np
import pytest

from comcl.data.synth_fundus import LOAD_RANGES, grade_from_load, render_fundus, sample_load
from comcl.imaging.lesion_classes import LESION_CLASSES, class_mask
from comcl.imaging.mask_boxes import mask_boxes


def test_grade_rule():
    assert grade_from_load(0, 0, 0, 0) == 0
    assert grade_from_load(5, 0, 0, 0) == 1
    assert grade_from_load(0, 1, 0, 0) == 2
    assert grade_from_load(3, 0, 2, 0) == 2
    assert grade_from_load(3, 10, 0, 2) == 3
    assert grade_from_load(3, 10, 0, 3) == 4
    assert grade_from_load(3, 9, 3, 4) == 2


@pytest.mark.parametrize("grade", range(5))
def test_sampled_load_gives_its_grade(grade):
    rng = np.random.default_rng(grade)
    for _ in range(50):
        load = sample_load(rng, grade)
        assert grade_from_load(*load) == grade
        for value, (lo, hi) in zip(load, LOAD_RANGES[grade]):
            assert lo <= value <= hi


@pytest.mark.parametrize("grade", range(5))
def test_render_masks_match_the_load(grade):
    rgb, fov, mask, meta = render_fundus(np.random.default_rng(10 + grade), 256, grade)
    assert rgb.shape == (256, 256, 3) and rgb.dtype == np.uint8
    assert rgb[~fov].max() == 0 and mask[~fov].max() == 0
    present = {name: class_mask(mask, name).any() for name in LESION_CLASSES}
    assert present["MA"] == (meta["ma"] > 0)
    assert present["HE"] == (meta["he"] > 0)
    assert present["EX"] == (meta["ex_clusters"] > 0)
    assert present["SE"] == (meta["se"] > 0)
    assert (grade == 0) == (mask.max() == 0)
    # FOV is a disc of the stated radius.
    assert fov.sum() == pytest.approx(np.pi * meta["fov_radius"] ** 2, rel=0.02)


def test_render_is_deterministic_per_seed():
    a = render_fundus(np.random.default_rng(7), 128, 3)
    b = render_fundus(np.random.default_rng(7), 128, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a[:3], b[:3]))
    c = render_fundus(np.random.default_rng(8), 128, 3)
    assert not np.array_equal(a[0], c[0])


def test_lesions_are_small_and_subtle_at_512_and_mas_visible_at_272():
    areas = {name: [] for name in LESION_CLASSES}
    contrast = []
    for seed in range(4):
        rgb, fov, mask, _ = render_fundus(np.random.default_rng(seed), 512, 4)
        for box in mask_boxes(mask):
            areas[box["lesion_class"]].append(box["area"])
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(float)
        ma = class_mask(mask, "MA")
        ring = cv2.dilate(ma.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~ma & fov
        contrast.append(grey[ring].mean() - grey[ma].mean())
    assert 15 < np.median(areas["MA"]) < 35 and max(areas["MA"]) < 45  # px at 512
    assert np.median(areas["MA"]) < np.median(areas["HE"])
    assert np.median(areas["HE"]) < 250
    assert np.median(areas["EX"]) < 40
    assert 5 < np.mean(contrast) < 60   # visible, yet far from saturated
    # Blur of the degradation model (sigma >= 5) wipes microaneurysms out.
    rgb, fov, mask, _ = render_fundus(np.random.default_rng(0), 512, 1)
    blurred = cv2.GaussianBlur(rgb, (0, 0), 5)
    ma = class_mask(mask, "MA")
    ring = cv2.dilate(ma.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~ma & fov
    g0 = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(float)
    g1 = cv2.cvtColor(blurred, cv2.COLOR_RGB2GRAY).astype(float)
    assert (g1[ring].mean() - g1[ma].mean()) < 0.3 * (g0[ring].mean() - g0[ma].mean())
    # At the 272 px finetune (INTER_AREA), an MA's darkest pixel still stands out of its
    # surround: grade 1 (MAs only) is visible to the classifier.
    small = cv2.resize(g0.astype(np.float32), (272, 272), interpolation=cv2.INTER_AREA)
    n, lab = cv2.connectedComponents(ma.astype(np.uint8))
    for i in range(1, n):
        ys, xs = np.nonzero(lab == i)
        y, x = int(ys.mean() * 272 / 512), int(xs.mean() * 272 / 512)
        patch = small[y - 4:y + 5, x - 4:x + 5]
        assert np.median(patch) - small[y - 1:y + 2, x - 1:x + 2].min() > 15


def test_boxes_cover_every_lesion_pixel():
    rgb, fov, mask, _ = render_fundus(np.random.default_rng(1), 256, 4)
    for i, name in enumerate(LESION_CLASSES):
        covered = np.zeros(mask.shape, bool)
        for b in mask_boxes(mask):
            if b["lesion_class"] == name:
                covered[b["y0"]:b["y1"], b["x0"]:b["x1"]] = True
        assert not (class_mask(mask, name) & ~covered).any()
