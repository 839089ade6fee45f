"""prepare -> degrade -> split on tiny synthetic data: contracts, ratios, determinism, errors."""
import json
import shutil

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import tree_digest, write_params

from comcl.common import manifest
from comcl.common.errors import DataError, ParamError
from comcl.common.params import Params
from comcl.data import degrade, prepare, split
from comcl.imaging.imagestore import ImageStore


def load_params(tmp_path, *overrides):
    return Params.load(write_params(tmp_path / "params.yaml", *overrides))


def test_prepare_writes_the_contract(tiny_data):
    df = manifest.read(tiny_data / "prepared" / "manifest.parquet", splits=("train", "test"))
    assert df.groupby("split").size().to_dict() == {"test": 20, "train": 40}
    for split_name, n in (("train", 40), ("test", 20)):
        low = (df[df["split"] == split_name]["quality"] == "low").sum()
        assert low == round(0.33 * n)
    assert set(df["label"]) <= set(range(5))
    assert (df["lesion"] == (df["label"] > 0)).all()
    native = df[df["quality"] == "low"]["native_degradation"].map(json.loads)
    assert all(p["types"] for p in native)
    info = json.loads((tiny_data / "prepared" / "dataset.json").read_text())
    assert info["task"] == "grading" and info["num_classes"] == 5
    store = ImageStore(tiny_data / "prepared" / "images")
    rec = store.record(df["image_id"].iloc[0])
    assert rec.image.shape == (128, 128, 3) and rec.fov.dtype == bool
    assert rec.lesion_mask is not None
    aux = pd.read_parquet(tiny_data / "prepared" / "aux" / "manifest.parquet")
    boxes = pd.read_parquet(tiny_data / "prepared" / "aux" / "boxes.parquet")
    assert len(aux) == 8 and set(boxes["image_id"]) == set(aux["image_id"])
    assert (boxes["x1"] > boxes["x0"]).all() and (boxes["y1"] > boxes["y0"]).all()


def test_prepare_does_not_depend_on_worker_count(tmp_path, tiny_data):
    params = load_params(tmp_path)
    prepare.run(params, tmp_path / "p2", workers=2, progress=False)
    assert tree_digest(tmp_path / "p2") == tree_digest(tiny_data / "prepared")


@pytest.mark.parametrize("target", [0.5, 0.7, 1.0])
def test_degrade_reaches_the_target_ratio_per_split(tmp_path, tiny_data, target):
    params = load_params(tmp_path, {"degrade": {"target_ratio": target}})
    degrade.run(params, tiny_data / "prepared", tmp_path / "deg", None, workers=1,
                progress=False)
    df = pd.read_parquet(tmp_path / "deg" / "manifest.parquet")
    for _, part in df.groupby("split"):
        assert abs((part["quality"] == "low").sum() - target * len(part)) <= 1
    prepared = pd.read_parquet(tiny_data / "prepared" / "manifest.parquet")
    assert (df["degraded"] == ((df["quality"] == "low") & (prepared["quality"] == "high"))).all()
    src, out = ImageStore(tiny_data / "prepared" / "images"), ImageStore(tmp_path / "deg" / "images")
    for row in df.itertuples():
        same = src.raw(row.image_id)["image"] == out.raw(row.image_id)["image"]
        assert same != row.degraded
        if row.degraded:
            p = json.loads(row.degradation)
            assert p["types"] and set(p["types"]) <= {"illumination", "spots", "blur"}
        else:
            assert row.degradation == ""


def test_native_target_copies_everything(tiny_data):
    df = pd.read_parquet(tiny_data / "degraded" / "manifest.parquet")
    assert not df["degraded"].any()
    a = ImageStore(tiny_data / "prepared" / "images")
    b = ImageStore(tiny_data / "degraded" / "images")
    assert all(a.raw(i)["image"] == b.raw(i)["image"] for i in df["image_id"])


def test_degrade_twice_is_byte_identical(tmp_path, tiny_data):
    params = load_params(tmp_path, {"degrade": {"target_ratio": 0.8}})
    degrade.run(params, tiny_data / "prepared", tmp_path / "a", tmp_path / "a.png", workers=1,
                progress=False)
    degrade.run(params, tiny_data / "prepared", tmp_path / "b", tmp_path / "b.png", workers=2,
                progress=False)
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    params = load_params(tmp_path, {"degrade": {"target_ratio": 0.8, "seed": 1}})
    degrade.run(params, tiny_data / "prepared", tmp_path / "c", None, workers=1, progress=False)
    assert tree_digest(tmp_path / "a") != tree_digest(tmp_path / "c")


def test_preview_figure_is_written(tiny_data):
    img = cv2.imread(str(tiny_data / "preview.png"))
    assert img is not None and img.shape[1] > img.shape[0]  # 5 columns, 3 rows


def test_target_below_current_fraction_states_it(tmp_path, tiny_data):
    params = load_params(tmp_path, {"degrade": {"target_ratio": 0.1}})
    with pytest.raises(ParamError, match=r"degrade.target_ratio.*current low-quality fraction "
                                         r"0\.3\d+ \(\d+ of \d+ images\)"):
        degrade.run(params, tiny_data / "prepared", tmp_path / "out", None, workers=1,
                    progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bad", [-0.1, 1.5, "high", True])
def test_target_out_of_range_names_the_key(tmp_path, tiny_data, bad):
    params = load_params(tmp_path, {"degrade": {"target_ratio": bad}})
    with pytest.raises(ParamError, match=r"`degrade.target_ratio`"):
        degrade.run(params, tiny_data / "prepared", tmp_path / "out", None, workers=1,
                    progress=False)


def copy_prepared(tiny_data, tmp_path):
    dst = tmp_path / "prepared"
    shutil.copytree(tiny_data / "prepared", dst)
    return dst


def test_missing_column_names_the_column(tmp_path, tiny_data):
    prepared = copy_prepared(tiny_data, tmp_path)
    df = pd.read_parquet(prepared / "manifest.parquet").drop(columns=["quality"])
    df.to_parquet(prepared / "manifest.parquet")
    with pytest.raises(DataError, match=r"manifest.parquet: missing required column 'quality'"):
        degrade.run(load_params(tmp_path), prepared, tmp_path / "out", None, workers=1,
                    progress=False)
    assert not (tmp_path / "out").exists()


def test_corrupt_image_names_it_and_leaves_nothing(tmp_path, tiny_data):
    prepared = copy_prepared(tiny_data, tmp_path)
    shard = sorted((prepared / "images").glob("part-*.parquet"))[0]
    table = pq.read_table(shard).to_pylist()
    victim = table[3]["image_id"]
    table[3]["image"] = table[3]["image"][:200]  # truncated PNG
    pq.write_table(pa.Table.from_pylist(table, schema=pq.read_schema(shard)), shard)
    params = load_params(tmp_path, {"degrade": {"target_ratio": 1.0}})
    with pytest.raises(DataError, match=rf"image {victim}: truncated PNG"):
        degrade.run(params, prepared, tmp_path / "out", None, workers=2, progress=False)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_empty_split_is_an_error(tmp_path, tiny_data):
    prepared = copy_prepared(tiny_data, tmp_path)
    df = pd.read_parquet(prepared / "manifest.parquet")
    df[df["split"] == "train"].to_parquet(prepared / "manifest.parquet")
    with pytest.raises(DataError, match="the test split is empty"):
        degrade.run(load_params(tmp_path), prepared, tmp_path / "out", None, workers=1,
                    progress=False)
    deg = tmp_path / "deg.parquet"
    df[df["split"] == "test"].to_parquet(deg)
    with pytest.raises(DataError, match="the train split is empty"):
        split.run(load_params(tmp_path), deg, tmp_path / "splits", None)


def test_split_partitions_training_with_stratified_validation(tiny_data):
    deg = pd.read_parquet(tiny_data / "degraded" / "manifest.parquet")
    parts = {n: pd.read_parquet(tiny_data / "splits" / f"{n}.parquet")
             for n in ("HL", "LL", "HH", "LH", "val", "test")}
    train_ids = set(deg.loc[deg["split"] == "train", "image_id"])
    subset_ids = [set(parts[n]["image_id"]) for n in ("HL", "LL", "HH", "LH")]
    val_ids = set(parts["val"]["image_id"])
    assert set().union(*subset_ids) | val_ids == train_ids
    assert sum(map(len, subset_ids)) + len(val_ids) == len(train_ids)
    assert len(val_ids) == round(0.2 * len(train_ids))
    assert (parts["HL"]["quality"] == "high").all() and parts["HL"]["lesion"].all()
    assert (parts["LH"]["quality"] == "low").all() and not parts["LH"]["lesion"].any()
    # Stratified: each (grade, quality) stratum gives 20% to validation, +-1 image.
    train = deg[deg["split"] == "train"]
    for (label, quality), g in train.groupby(["label", "quality"]):
        n_val = g["image_id"].isin(val_ids).sum()
        assert abs(n_val - 0.2 * len(g)) < 1
    assert set(parts["test"]["image_id"]) == set(deg.loc[deg["split"] == "test", "image_id"])
    summary = json.loads((tiny_data / "data.json").read_text())
    assert summary["val"]["images"] == len(val_ids)
    assert sum(summary["subsets"].values()) == len(train_ids) - len(val_ids)


def test_split_keeps_patients_whole(tmp_path, tiny_data):
    deg = pd.read_parquet(tiny_data / "degraded" / "manifest.parquet")
    deg["group"] = [f"patient{i // 3}" for i in range(len(deg))]
    path = tmp_path / "deg.parquet"
    deg.to_parquet(path)
    split.run(load_params(tmp_path), path, tmp_path / "splits", None)
    val = pd.read_parquet(tmp_path / "splits" / "val.parquet")
    rest = pd.concat([pd.read_parquet(tmp_path / "splits" / f"{n}.parquet")
                      for n in ("HL", "LL", "HH", "LH")])
    assert not set(val["group"]) & set(rest["group"])
    assert 0.1 * 40 <= len(val) <= 0.3 * 40


@pytest.mark.parametrize("bad", [0, 1, 1.2, None])
def test_split_fraction_out_of_range_names_the_key(tmp_path, tiny_data, bad):
    params = load_params(tmp_path, {"split": {"val_fraction": bad}})
    with pytest.raises(ParamError, match=r"`split.val_fraction`"):
        split.run(params, tiny_data / "degraded" / "manifest.parquet", tmp_path / "s", None)


@pytest.mark.parametrize("stage", ["prepare", "degrade", "split"])
def test_stage_help_explains_it(stage):
    mod = __import__(f"stages.{stage}", fromlist=["main"])
    res = CliRunner().invoke(mod.main, ["--help"])
    assert res.exit_code == 0 and "Reads params" in res.output


def test_cli_reports_bad_params_without_traceback(tmp_path, tiny_data):
    from stages.degrade import main
    write_params(tmp_path / "p.yaml", {"degrade": {"target_ratio": 2}})
    res = CliRunner().invoke(main, ["--params", str(tmp_path / "p.yaml"), "--prepared",
                                    str(tiny_data / "prepared"), "--out", str(tmp_path / "o"),
                                    "--preview", "", "--workers", "1"])
    assert res.exit_code == 1
    assert (f"Error: {tmp_path / 'p.yaml'}: `degrade.target_ratio` must be <= 1.0, got 2"
            in res.output)
    assert "Traceback" not in res.output


@pytest.mark.parametrize("suffix,cut", [(".jpeg", 0.5), (".png", 0.6)])
def test_truncated_image_file_names_the_file(tmp_path, suffix, cut):
    from comcl.imaging.codec import read_image_file
    img = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    path = tmp_path / f"broken{suffix}"
    cv2.imwrite(str(path), img)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(DataError, match=rf"broken\{suffix}"):
        read_image_file(path)
