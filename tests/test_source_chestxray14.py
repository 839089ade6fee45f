"""The NIH ChestX-ray14 adapter: Data_Entry variants, official split, images, boxes."""
import json

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES, write_params

from comcl.common import manifest
from comcl.common.errors import DataError, ParamError
from comcl.common.params import Params
from comcl.data import degrade, prepare, sources, split
from comcl.data import source_chestxray14 as cx
from comcl.data import source_chestxray14_boxes as cxb
from comcl.imaging.codec import decode_image
from comcl.imaging.lesion_classes import CHEST_DISEASES

CXR = FIXTURES / "chestxray14"
needs_fixtures = pytest.mark.skipif(
    not (CXR / "Data_Entry_2017.csv").is_file(),
    reason=f"ChestX-ray14 fixtures not found at {CXR} (they live beside the repository, "
           "not in it)")

HEADER_2017 = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
               "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")
HEADER_2020 = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Sex,"
               "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]")
ROWS = [("00000001_000.png", "Cardiomegaly", 0, 1),
        ("00000001_001.png", "Cardiomegaly|Emphysema", 1, 1),
        ("00000002_000.png", "No Finding", 0, 2), ("00000003_000.png", "Hernia", 0, 3),
        ("00000004_000.png", "Mass|Nodule|Infiltration", 0, 4)]


def entry_text(header, trailing):
    lines = [header]
    for name, finding, follow, patient in ROWS:
        lines.append(f"{name},{finding},{follow},{patient},58,M,PA,2682,2749,0.143,0.143"
                     + ("," if trailing else ""))
    return "\n".join(lines) + "\n"


def chest_params(root, **data):
    c = {"root": str(root), "images": "images", "data_entry": "Data_Entry_2017.csv",
         "train_list": "train_val_list.txt", "test_list": "test_list.txt",
         "bbox_csv": "BBox_List_2017.csv"}
    c.update(data.pop("chestxray14", {}))
    base = {"source": "chestxray14", "aux_source": "chestxray14_boxes", "image_size": 64,
            "on_missing": "error", "quality_csv": None, "chestxray14": c}
    base.update(data)
    return Params({"data": base})


@pytest.mark.parametrize("header,trailing", [(HEADER_2017, True), (HEADER_2017, False),
                                             (HEADER_2020, False), (HEADER_2020, True)])
def test_data_entry_variants(tmp_path, header, trailing):
    path = tmp_path / "Data_Entry_2017.csv"
    path.write_text(entry_text(header, trailing))
    df = cx.read_data_entry(path)
    assert df["image"].tolist() == [r[0] for r in ROWS]
    assert df["patient"].tolist() == ["1", "1", "2", "3", "4"]
    assert df["labels"].tolist() == [["Cardiomegaly"], ["Cardiomegaly"], [], [],
                                     ["Infiltration", "Mass", "Nodule"]]


def test_data_entry_errors_name_file_and_column(tmp_path):
    path = tmp_path / "Data_Entry_2017.csv"
    path.write_text("Image Index,Finding Labels,Follow-up #\n00000001_000.png,Mass,0\n")
    with pytest.raises(DataError, match=r"Data_Entry_2017\.csv: missing column 'Patient ID'"):
        cx.read_data_entry(path)
    path.write_text(HEADER_2017 + "\n00000001_000.png,Mass|Pnemonia,0,1,58,M,PA,1,1,1,1,\n")
    with pytest.raises(DataError, match=r"column 'Finding Labels' has the unknown finding "
                                        r"'Pnemonia' \(00000001_000\.png"):
        cx.read_data_entry(path)


def small_tree(tmp_path, train, test, present, sizes=None):
    import cv2
    (tmp_path / "images").mkdir()
    (tmp_path / "Data_Entry_2017.csv").write_text(entry_text(HEADER_2017, True))
    (tmp_path / "train_val_list.txt").write_text("\n".join(train) + "\n")
    (tmp_path / "test_list.txt").write_text("\n".join(test) + "\n")
    rng = np.random.default_rng(0)
    for name in present:
        size = (sizes or {}).get(name, 48)
        cv2.imwrite(str(tmp_path / "images" / name), rng.integers(0, 255, (size, size), np.uint8))
    return tmp_path


def test_split_errors(tmp_path):
    names = [r[0] for r in ROWS]
    root = small_tree(tmp_path, names[:2] + names[3:], names[2:4], names)
    with pytest.raises(DataError, match=r"test_list\.txt: 1 image also in .*train_val_list"):
        cx.plan(cx.ChestConfig.from_params(chest_params(root)))
    (root / "test_list.txt").write_text("00000001_001.png\n00000002_000.png\n00000003_000.png\n")
    (root / "train_val_list.txt").write_text("00000001_000.png\n00000004_000.png\n")
    with pytest.raises(DataError, match=r"1 patient with images in both splits, e\.g\. "
                                        r"Patient ID 1"):
        cx.plan(cx.ChestConfig.from_params(chest_params(root)))
    (root / "test_list.txt").write_text("00000002_000.png\n00000003_000.png\n")
    with pytest.raises(DataError, match=r"Data_Entry_2017\.csv: 1 image in neither"):
        cx.plan(cx.ChestConfig.from_params(chest_params(root)))


def test_on_missing_and_quality_csv(tmp_path):
    names = [r[0] for r in ROWS]
    root = small_tree(tmp_path, names[:2] + names[4:], names[2:4],
                      names[:3] + ["99999999_000.png"], sizes={names[0]: 100})
    with pytest.raises(DataError) as err:
        cx.plan(cx.ChestConfig.from_params(chest_params(root)))
    msg = str(err.value)
    assert "2 images listed in" in msg and "00000003_000.png, 00000004_000.png" in msg
    assert "1 image in" in msg and "99999999_000.png" in msg
    (root / "q.csv").write_text("Image Index,quality\n" + "".join(
        f"{n},{q}\n" for n, q in zip(names, ["high", "low", "2", "0", "high"])))
    jobs, notes, counts = cx.plan(cx.ChestConfig.from_params(
        chest_params(root, on_missing="skip", quality_csv="q.csv")))
    assert counts == {"rows": 5, "split": {"train": 3, "test": 2}}
    assert [(j.image_id, j.split, j.quality_code) for j in jobs] == \
        [("00000001_000", "train", 0), ("00000001_001", "train", 1), ("00000002_000", "test", 2)]
    rows = [cx.render(j) for j in jobs]
    assert [r["quality"] for r in rows] == ["high", "low", "low"]
    img = decode_image(rows[0]["image"])
    assert img.shape == (64, 64) and decode_image(rows[0]["fov"], grey=True).min() == 255
    (root / "q.csv").write_text("image,quality\n00000001_000.png,high\n")
    with pytest.raises(DataError, match=r"q\.csv: no quality for 4 images"):
        cx.plan(cx.ChestConfig.from_params(chest_params(root, on_missing="skip",
                                                        quality_csv="q.csv")))


def test_missing_root_is_a_param_error():
    with pytest.raises(ParamError, match=r"`data\.chestxray14\.root` is not set"):
        sources.main_source("chestxray14", chest_params(None, chestxray14={"root": None}))
    with pytest.raises(ParamError, match=r"`data\.chestxray14\.root` is not set"):
        sources.aux_source("chestxray14_boxes", chest_params(None, chestxray14={"root": None}))


def test_non_square_image_is_centred():
    img = np.full((50, 100), 200, np.uint8)
    out, fov, (kx, ky, ox, oy) = cx.fit_square(img, 64)
    assert out.shape == (64, 64) and (ox, oy) == (0, 16) and fov.sum() == 64 * 32
    assert out[~fov].max() == 0 and out[fov].min() == 200


@needs_fixtures
def test_fixture_metadata_parses_fully():
    entries = cx.read_data_entry(CXR / "Data_Entry_2017.csv")
    assert len(entries) == 112120
    train, test = cx.read_list(CXR / "train_val_list.txt"), cx.read_list(CXR / "test_list.txt")
    assert (len(train), len(test)) == (86524, 25596)
    where = {"entries": "Data_Entry", "train": "train", "test": "test"}
    splits = cx.assign_splits(entries, train, test, where)
    assert splits.value_counts().to_dict() == {"train": 86524, "test": 25596}
    per_patient = pd.DataFrame({"p": entries["patient"], "s": splits}).groupby("p")["s"].nunique()
    assert (per_patient == 1).all()  # no patient in two splits
    lesion = entries["labels"].map(len) > 0
    assert lesion.sum() == 46649  # images with any of the 8 ChestX-ray8 diseases
    boxes = cxb.read_boxes(CXR / "BBox_List_2017.csv")
    assert len(boxes) == 984 and set(boxes["disease"]) == set(CHEST_DISEASES)
    assert (boxes["disease"] == "Infiltration").sum() == 123  # "Infiltrate" in the file


@needs_fixtures
def test_fixture_images_load_at_1024_and_256():
    params = chest_params(CXR, on_missing="skip")
    jobs, notes, counts = cx.plan(cx.ChestConfig.from_params(params))
    assert counts["split"] == {"train": 86524, "test": 25596}
    assert len(jobs) == 10 and "112110 images listed" in notes[0]
    sizes = set()
    for job in jobs:
        row = cx.render(job)
        img = decode_image(row["image"])
        assert img.shape == (64, 64) and img.std() > 10
        sizes.add(json.loads(row["meta"])["orig_width"])
        assert row["lesion"] == bool(row["labels"])
    assert sizes == {1024, 256}
    by_id = {j.image_id: j for j in jobs}
    assert by_id["00000001_002"].labels == ("Cardiomegaly", "Effusion")
    assert by_id["00000013_033"].split == "test" and by_id["00000013_033"].group == "13"


@needs_fixtures
def test_fixture_boxes_scale_from_the_1024_frame(tmp_path):
    """Two fixture images (1024 and 256 px) with boxes given in the 1024 frame."""
    (tmp_path / "BBox_List_2017.csv").write_text(
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
        "00000001_000.png,Cardiomegaly,100,200,300,400\n"
        "00000003_000.png,Infiltrate,100,200,300,400\n"
        "00000003_000.png,Mass,500.5,500.5,10,10\n"
        "00000099_000.png,Nodule,1,1,5,5\n")
    params = chest_params(tmp_path, image_size=256, chestxray14={
        "images": str(CXR / "images"), "train_list": str(CXR / "train_val_list.txt"),
        "test_list": str(CXR / "test_list.txt")})
    with pytest.raises(DataError, match=r"1 box image listed in .*00000099_000\.png"):
        sources.aux_source("chestxray14_boxes", params)
    params = chest_params(tmp_path, image_size=256, on_missing="skip", chestxray14={
        "images": str(CXR / "images"), "train_list": str(CXR / "train_val_list.txt"),
        "test_list": str(CXR / "test_list.txt")})
    aux = sources.aux_source("chestxray14_boxes", params)
    assert aux.classes == list(CHEST_DISEASES)
    res = [aux.render(j) for j in aux.jobs]
    assert [r["split"] for r in res] == ["train", "test"]
    big = res[0]["boxes"]
    assert big == [{"lesion_class": "Cardiomegaly", "x0": 25, "y0": 50, "x1": 100, "y1": 150,
                    "area": 7500}]
    small = {b["lesion_class"]: b for b in res[1]["boxes"]}
    assert (small["Infiltration"]["x0"], small["Infiltration"]["x1"]) == (25, 100)
    assert (small["Mass"]["x0"], small["Mass"]["y0"], small["Mass"]["x1"]) == (125, 125, 128)
    assert res[1]["source"].endswith("00000003_000.png")


@needs_fixtures
def test_fixture_pipeline_in_process(tmp_path):
    """prepare -> degrade (X-ray model) -> split on the 10 fixture images."""
    params = Params.load(write_params(tmp_path / "params.yaml", {
        "data": {"source": "chestxray14", "image_size": 64, "on_missing": "skip",
                 "chestxray14": {"root": str(CXR)}},
        "synthetic": {"profile": "chest", "image_size": 64, "n_aux": 4},
        "degrade": {"types": ["noise", "blur", "contrast"], "target_ratio": 0.5},
        "split": {"val_fraction": 0.3}}))
    info = prepare.run(params, tmp_path / "prepared", workers=1, progress=False)
    assert info["modality"] == "xray" and info["task"] == "multilabel"
    assert info["channels"] == 1 and info["classes"] == list(CHEST_DISEASES)
    assert info["counts"] == {"train": 6, "test": 4}
    degrade.run(params, tmp_path / "prepared", tmp_path / "degraded", tmp_path / "preview.png",
                workers=1, progress=False)
    split.run(params, tmp_path / "degraded" / "manifest.parquet", tmp_path / "splits", None)
    deg = manifest.read(tmp_path / "degraded" / "manifest.parquet", splits=("train", "test"))
    assert deg["degraded"].sum() == 5 and (tmp_path / "preview.png").stat().st_size > 0
    parts = {n: pd.read_parquet(tmp_path / "splits" / f"{n}.parquet")
             for n in ("HL", "LL", "HH", "LH", "val", "test")}
    groups = {n: set(p["group"]) for n, p in parts.items()}
    train_groups = groups["HL"] | groups["LL"] | groups["HH"] | groups["LH"]
    assert not train_groups & groups["val"] and not train_groups & groups["test"]
    assert not groups["val"] & groups["test"] and groups["val"]
    assert isinstance(parts["test"]["labels"].iloc[0], (list, np.ndarray))
