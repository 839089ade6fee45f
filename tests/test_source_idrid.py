"""The IDRiD auxiliary set: masks to boxes, 1-bit palette TIFFs, missing masks."""
import os

import numpy as np
import pytest
from conftest import FIXTURES
from PIL import Image

from comcl.common.errors import DataError, ParamError
from comcl.common.params import Params
from comcl.data import fundus_fov, source_idrid, sources
from comcl.imaging.codec import decode_image, read_image_file
from comcl.imaging.lesion_classes import LESION_CLASSES

IDRID = FIXTURES / "idrid"
SEG = IDRID / "A. Segmentation"
GT = SEG / "2. All Segmentation Groundtruths" / "a. Training Set"
needs_fixtures = pytest.mark.skipif(
    not (SEG / "1. Original Images").is_dir(),
    reason=f"IDRiD fixtures not found at {IDRID} (they live beside the repository, not in it)")

FOLDERS = {"MA": "1. Microaneurysms", "HE": "2. Haemorrhages", "EX": "3. Hard Exudates",
           "SE": "4. Soft Exudates", "OD": "5. Optic Disc"}


def idrid_params(root, size=256, on_missing="error"):
    return Params({"data": {"image_size": size, "on_missing": on_missing,
                            "idrid": {"root": None if root is None else str(root)}}})


@needs_fixtures
def test_one_bit_palette_tiff_reads_as_lesion_pixels():
    path = GT / FOLDERS["MA"] / "IDRiD_01_MA.tif"
    with Image.open(path) as im:
        assert im.mode == "P" and im.tag_v2[258] == (1,)  # 1 bit per sample, palette
        raw = np.asarray(im)
    mask = source_idrid.read_mask(path, (2848, 4288))
    assert mask.dtype == bool and mask.shape == (2848, 4288)
    assert mask.sum() == (raw == 1).sum() > 0
    with pytest.raises(DataError, match=r"IDRiD_01_MA\.tif: mask is 4288x2848, its image 100x100"):
        source_idrid.read_mask(path, (100, 100))


@needs_fixtures
def test_fixture_boxes_cover_every_lesion_pixel():
    jobs, notes = source_idrid.plan(idrid_params(IDRID))
    assert [j.image_id for j in jobs] == [f"IDRiD_{i:02d}" for i in range(1, 11)] and not notes
    for job in jobs:
        res = source_idrid.render(job)
        has = {c for c, _ in job.masks}
        assert has == ({"MA", "HE", "EX", "SE"} if job.image_id in ("IDRiD_03", "IDRiD_08")
                       else {"MA", "HE", "EX"})  # SE missing: no SE lesion, no SE box
        got = {b["lesion_class"] for b in res["boxes"]}
        assert got == has
        bits = decode_image(res["lesion_mask"], grey=True)
        img = decode_image(res["image"])
        assert bits.shape == (256, 256) and img.shape == (256, 256, 3)
        # Every lesion pixel of the original masks, mapped to the stored size, lies in a
        # box of its class (and the stored mask has it).
        circle = fundus_fov.detect(read_image_file(job.path))
        x0, y0, side = circle.crop_square()
        k = 256 / side
        for cls, path in job.masks:
            ys, xs = np.nonzero(source_idrid.read_mask(path))
            ox = np.floor((xs - x0 + 0.5) * k).astype(int)
            oy = np.floor((ys - y0 + 0.5) * k).astype(int)
            assert ((bits[oy, ox] >> LESION_CLASSES.index(cls)) & 1).all()
            covered = np.zeros(len(xs), bool)
            for b in res["boxes"]:
                if b["lesion_class"] == cls:
                    covered |= (ox >= b["x0"]) & (ox < b["x1"]) & (oy >= b["y0"]) & (oy < b["y1"])
            assert covered.all(), (job.image_id, cls, int((~covered).sum()))


@needs_fixtures
def test_missing_images_and_unannotated_images_follow_on_missing(tmp_path):
    """A copy of the layout made of links: one image without masks, masks without image."""
    seg = tmp_path / "A. Segmentation"
    img_dir = seg / "1. Original Images" / "a. Training Set"
    img_dir.mkdir(parents=True)
    for i in (1, 2):
        os.symlink(SEG / "1. Original Images" / "a. Training Set" / f"IDRiD_{i:02d}.jpg",
                   img_dir / f"IDRiD_{i:02d}.jpg")
    for cls in ("MA", "EX", "OD"):
        d = seg / "2. All Segmentation Groundtruths" / "a. Training Set" / FOLDERS[cls]
        d.mkdir(parents=True)
        for i in (1, 3):
            name = f"IDRiD_{i:02d}_{cls}.tif"
            os.symlink(GT / FOLDERS[cls] / name, d / name)
    with pytest.raises(DataError) as err:
        sources.aux_source("idrid", idrid_params(tmp_path, 128))
    msg = str(err.value)
    assert "1 image listed in the masks" in msg and "IDRiD_03" in msg
    assert "not listed" in msg and "IDRiD_02" in msg
    aux = sources.aux_source("idrid", idrid_params(tmp_path, 128, "skip"))
    assert [j.image_id for j in aux.jobs] == ["IDRiD_01"] and len(aux.notes) == 2
    res = aux.render(aux.jobs[0])
    assert {b["lesion_class"] for b in res["boxes"]} == {"MA", "EX"}  # no HE, SE file here
    assert aux.classes == list(LESION_CLASSES)


def test_layout_and_param_errors(tmp_path):
    with pytest.raises(ParamError, match=r"`data\.idrid\.root` is not set"):
        sources.aux_source("idrid", idrid_params(None))
    with pytest.raises(DataError, match=r"no IDRiD segmentation layout here"):
        sources.aux_source("idrid", idrid_params(tmp_path))


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_corrupt_mask_names_the_file(tmp_path):
    path = tmp_path / "IDRiD_01_MA.tif"
    im = Image.new("1", (64, 48))
    im.save(path)
    assert source_idrid.read_mask(path, (48, 64)).sum() == 0
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match=r"IDRiD_01_MA\.tif: cannot read the mask"):
        source_idrid.read_mask(path)
