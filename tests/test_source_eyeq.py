"""The EyeQ adapter: label CSVs, file matching, on_missing, preprocessing, errors."""
import json

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES, write_params

from comcl.common import manifest
from comcl.common.errors import DataError, ParamError
from comcl.common.params import Params
from comcl.data import prepare, source_eyeq, sources
from comcl.data.synth_fundus import render_fundus
from comcl.imaging.codec import decode_image
from comcl.imaging.imagestore import ImageStore

EYEQ = FIXTURES / "eyeq"
needs_fixtures = pytest.mark.skipif(
    not (EYEQ / "Label_EyeQ_train.csv").is_file(),
    reason=f"EyeQ fixtures not found at {EYEQ} (they live beside the repository, not in it)")


def eyeq_params(root, **data):
    eyeq = {"root": str(root), "train_csv": "Label_EyeQ_train.csv",
            "test_csv": "Label_EyeQ_test.csv", "images": "images", "test_holdout": 0.2}
    eyeq.update(data.pop("eyeq", {}))
    base = {"source": "eyeq", "aux_source": "synthetic", "image_size": 64,
            "on_missing": "error", "quality_csv": None, "eyeq": eyeq}
    base.update(data)
    return Params({"data": base})


def fake_eyeq(tmp_path, train, test, files, broken=()):
    """A small EyeQ tree: label CSVs (rows: name, quality, grade) and synthetic JPEGs."""
    (tmp_path / "images").mkdir()
    for name, rows in (("train", train), ("test", test)):
        df = pd.DataFrame(rows, columns=["image", "quality", "DR_grade"])
        df.to_csv(tmp_path / f"Label_EyeQ_{name}.csv")  # with the unnamed index column
    for i, name in enumerate(files):
        rgb, _, _, _ = render_fundus(np.random.default_rng(i), 96, 0)
        canvas = np.zeros((96, 140, 3), np.uint8)
        canvas[:, 22:118] = rgb
        ext = ".png" if name.endswith(".png") else ".jpg"
        ok, buf = cv2.imencode(ext, cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
        data = buf.tobytes()
        (tmp_path / "images" / name).write_bytes(data[:300] if name in broken else data)
    return tmp_path


@needs_fixtures
def test_fixture_label_counts():
    train = source_eyeq.read_labels(EYEQ / "Label_EyeQ_train.csv")
    test = source_eyeq.read_labels(EYEQ / "Label_EyeQ_test.csv")
    s = source_eyeq.summarize(train)
    assert s["rows"] == 12543 and s["low_quality"] == 4196
    assert round(100 * s["low_quality_fraction"], 2) == 33.45
    assert s["by_code"] == {0: 8347, 1: 1876, 2: 2320}
    assert len(test) == 16249
    assert set(train["label"]) == {0, 1, 2, 3, 4}


@needs_fixtures
def test_fixture_images_with_skip_give_exactly_those_ten(capsys):
    params = eyeq_params(EYEQ, on_missing="skip")
    jobs, notes = source_eyeq.plan(source_eyeq.EyeQConfig.from_params(params))
    names = sorted(p.stem for p in (EYEQ / "images").glob("*.jpeg"))
    assert len(names) == 10 and sorted(j.image_id for j in jobs) == names
    assert len(notes) == 1 and "28782 images listed" in notes[0] and "missing" in notes[0]
    labels = source_eyeq.read_labels(EYEQ / "Label_EyeQ_train.csv").set_index("image")
    for job in jobs:
        row = source_eyeq.render(job)
        truth = labels.loc[f"{job.image_id}.jpeg"]
        assert row["split"] == "train"
        assert row["label"] == truth["label"] and row["lesion"] == (truth["label"] > 0)
        assert row["quality_code"] == truth["quality_code"]
        assert row["quality"] == ("high" if truth["quality_code"] == 0 else "low")
        assert row["group"] == job.image_id.split("_")[0]
        assert row["source"] == f"images/{job.image_id}.jpeg"
        img = decode_image(row["image"])
        fov = decode_image(row["fov"], grey=True) > 0
        assert img.shape == (64, 64, 3) and img[~fov].max() == 0
        assert 0.6 < fov.mean() < 0.8 and row["lesion_mask"] is None
    # The same with on_missing: error names the missing files.
    with pytest.raises(DataError, match=r"28782 images listed in .*missing .*10001_right\.jpeg"):
        source_eyeq.plan(source_eyeq.EyeQConfig.from_params(eyeq_params(EYEQ)))


@needs_fixtures
def test_fixture_prepare_manifest(tmp_path):
    """prepare on the fixtures (test split held out of the training CSV: all 10 images
    are training rows): a manifest of exactly the 10 images, labels and quality as listed."""
    params = Params.load(write_params(tmp_path / "params.yaml", {"data": {
        "source": "eyeq", "image_size": 64, "on_missing": "skip",
        "eyeq": {"root": str(EYEQ), "test_csv": None}}}))
    info = prepare.run(params, tmp_path / "prepared", workers=1, progress=False)
    assert info["modality"] == "fundus" and info["task"] == "grading"
    assert info["channels"] == 3 and info["image_size"] == 64 and not info["lesion_masks"]
    df = manifest.read(tmp_path / "prepared" / "manifest.parquet", splits=("train", "test"))
    labels = source_eyeq.read_labels(EYEQ / "Label_EyeQ_train.csv").set_index("image")
    assert len(df) == 10 and info["counts"]["test"] >= 1
    truth = labels.loc[df["image_id"] + ".jpeg"]
    assert df["label"].tolist() == truth["label"].tolist()
    assert df["quality_code"].tolist() == truth["quality_code"].tolist()
    assert (df["quality"] == np.where(truth["quality_code"] == 0, "high", "low")).all()
    assert (df["quality"] == "low").sum() == 5
    store = ImageStore(tmp_path / "prepared" / "images")
    assert store.record("172_left").image.shape == (64, 64, 3)


def test_on_missing_error_and_skip_name_the_files(tmp_path):
    root = fake_eyeq(tmp_path, train=[("1_left.jpeg", 0, 0), ("1_right.jpeg", 1, 2),
                                      ("2_left.jpeg", 2, 1)],
                     test=[("3_left.jpeg", 0, 3)],
                     files=["1_left.jpeg", "3_left.png", "9_left.jpeg"])
    with pytest.raises(DataError) as err:
        source_eyeq.plan(source_eyeq.EyeQConfig.from_params(eyeq_params(root)))
    msg = str(err.value)
    assert "2 images listed in" in msg and "1_right.jpeg, 2_left.jpeg" in msg
    assert "1 image in" in msg and "not listed" in msg and "9_left.jpeg" in msg
    assert "data.on_missing: skip" in msg
    jobs, notes = source_eyeq.plan(source_eyeq.EyeQConfig.from_params(
        eyeq_params(root, on_missing="skip")))
    assert [(j.image_id, j.split, j.label, j.quality_code) for j in jobs] == \
        [("1_left", "train", 0, 0), ("3_left", "test", 3, 0)]  # .png of the same stem
    assert len(notes) == 2 and all(n.startswith("skipped:") for n in notes)
    rows = [source_eyeq.render(j) for j in jobs]
    assert rows[1]["source"] == "images/3_left.png"


def test_main_source_and_holdout(tmp_path):
    rows = [(f"{p}_{e}.jpeg", p % 3, p % 5) for p in range(1, 11) for e in ("left", "right")]
    root = fake_eyeq(tmp_path, train=rows, test=[], files=[r[0] for r in rows])
    with pytest.raises(DataError, match="test split is empty.*test_csv: null"):
        sources.main_source("eyeq", eyeq_params(root))
    src = sources.main_source("eyeq", eyeq_params(root, eyeq={"test_csv": None}))
    test = [j for j in src.jobs if j.split == "test"]
    assert len(test) == 4 and len({j.group for j in test}) == 2  # both eyes of 2 patients
    assert not {j.group for j in test} & {j.group for j in src.jobs if j.split == "train"}
    assert src.info["num_classes"] == 5 and src.info["modality"] == "fundus"
    again = sources.main_source("eyeq", eyeq_params(root, eyeq={"test_csv": None}))
    assert again.jobs == src.jobs


def test_missing_root_is_a_param_error(tmp_path):
    with pytest.raises(ParamError, match=r"`data\.eyeq\.root` is not set"):
        sources.main_source("eyeq", eyeq_params(None, eyeq={"root": None}))
    with pytest.raises(ParamError, match=r"`data\.eyeq\.root` = .* is not a folder"):
        sources.main_source("eyeq", eyeq_params(tmp_path / "nowhere"))
    with pytest.raises(ParamError, match=r"`data\.quality_csv` applies to data\.source: "
                                         r"chestxray14 only"):
        sources.main_source("eyeq", eyeq_params(tmp_path, quality_csv="q.csv"))


def test_missing_column_and_bad_values_name_file_and_column(tmp_path):
    path = tmp_path / "Label_EyeQ_train.csv"
    path.write_text(",image,quality\n0,1_left.jpeg,0\n")
    with pytest.raises(DataError, match=r"Label_EyeQ_train\.csv: missing column 'DR_grade'"):
        source_eyeq.read_labels(path)
    path.write_text(",image,quality,DR_grade\n0,1_left.jpeg,0,0\n1,1_right.jpeg,3,0\n")
    with pytest.raises(DataError, match=r"Label_EyeQ_train\.csv: column 'quality' must be one "
                                        r"of \[0, 1, 2\], got '3' for 1_right\.jpeg"):
        source_eyeq.read_labels(path)
    # Without the unnamed index column the file still reads.
    path.write_text("image,quality,DR_grade\n1_left.jpeg,1,4\n")
    assert source_eyeq.read_labels(path).to_dict("records") == \
        [{"image": "1_left.jpeg", "quality_code": 1, "label": 4}]


def test_path_escape_is_rejected(tmp_path):
    root = fake_eyeq(tmp_path, train=[("../secret.jpeg", 0, 0)], test=[("1_left.jpeg", 0, 0)],
                     files=["1_left.jpeg"])
    with pytest.raises(DataError, match=r"Label_EyeQ_train\.csv: column 'image': file name "
                                        r"'\.\./secret\.jpeg' leaves the dataset folder"):
        source_eyeq.plan(source_eyeq.EyeQConfig.from_params(eyeq_params(root)))


def test_corrupt_image_names_the_file(tmp_path):
    root = fake_eyeq(tmp_path, train=[("1_left.jpeg", 0, 0)], test=[("2_left.jpeg", 0, 1)],
                     files=["1_left.jpeg", "2_left.jpeg"], broken={"2_left.jpeg"})
    jobs, _ = source_eyeq.plan(source_eyeq.EyeQConfig.from_params(eyeq_params(root)))
    assert json.loads(source_eyeq.render(jobs[0])["meta"])["fov"]["method"] in ("fit", "enclosing")
    with pytest.raises(DataError, match=r"images/2_left\.jpeg: truncated JPEG"):
        source_eyeq.render(jobs[1])


@needs_fixtures
def test_reduced_jpeg_decode_matches_the_full_decode():
    from comcl.data import fundus_fov
    from comcl.imaging.codec import read_image_file

    path = EYEQ / "images" / "129_left.jpeg"  # 4752 x 3168
    small, factor, shape = source_eyeq.read_photo(path, 512)
    assert factor == 4 and shape == (3168, 4752) and small.shape == (792, 1188, 3)
    a, fa, ca = fundus_fov.preprocess(small, 512)
    b, fb, cb = fundus_fov.preprocess(read_image_file(path), 512)
    assert abs(ca.radius * 4 - cb.radius) < 0.005 * cb.radius
    both = fa & fb
    assert both.sum() > 0.99 * fb.sum()
    assert np.abs(a[both].astype(int) - b[both].astype(int)).mean() < 2.0
    assert source_eyeq.read_photo(path, 1200)[1] == 1  # no reduction below 1.5x the size
