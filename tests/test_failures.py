"""Bad inputs fail at the stage that causes them: one `Error: ...` line naming the file or
param, exit status 1, and no output (not even a temporary one) left behind."""
import json
import struct

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import write_params

from comcl.common.errors import CorruptImageError
from comcl.common.params import Params
from comcl.common.text import plural
from comcl.data.source_files import check_files
from comcl.data.synth_fundus import render_fundus
from comcl.imaging.codec import decode_image


def invoke(command, *args):
    """A stage command in-process; returns the click result."""
    return CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, *parts):
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("Error: ")]
    assert len(lines) == 1, result.output
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


def assert_nothing_written(*paths):
    for path in paths:
        assert not path.exists(), f"{path} was written"
        leftovers = list(path.parent.glob(f".{path.name}.*"))
        assert not leftovers, f"temporary outputs left behind: {leftovers}"


# --- 3a: corrupt image data -----------------------------------------------------------

def photo(seed: int) -> np.ndarray:
    rgb, _, _, _ = render_fundus(np.random.default_rng(seed), 96, 0)
    canvas = np.zeros((96, 140, 3), np.uint8)
    canvas[:, 22:118] = rgb
    return canvas


def encoded(image: np.ndarray, ext: str) -> bytes:
    return cv2.imencode(ext, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()


def jpeg_with_garbage(data: bytes) -> bytes:
    """Bytes in the middle of the entropy-coded data replaced: header and EOI intact."""
    mid = len(data) // 2
    junk = np.random.default_rng(0).integers(0, 256, 400).astype(np.uint8).tobytes()
    return data[:mid] + junk + data[mid + len(junk):]


def png_with_bad_idat(data: bytes) -> bytes:
    """Bytes inside the first IDAT chunk overwritten (its CRC now fails)."""
    pos = 8
    while data[pos + 4:pos + 8] != b"IDAT":
        pos += 12 + struct.unpack(">I", data[pos:pos + 4])[0]
    start = pos + 8 + 20
    return data[:start] + b"\x13" * 40 + data[start + 40:]


def fake_eyeq(root, broken: dict[str, bytes]):
    """An EyeQ tree of four images (two per split); ``broken`` replaces files' bytes."""
    (root / "images").mkdir(parents=True)
    names = {"train": ["1_left.jpeg", "1_right.png"], "test": ["2_left.jpeg", "2_right.jpeg"]}
    for split, files in names.items():
        pd.DataFrame([(f, 0, 1) for f in files], columns=["image", "quality", "DR_grade"]) \
            .to_csv(root / f"Label_EyeQ_{split}.csv")
        for i, name in enumerate(files):
            data = encoded(photo(i + 10 * (split == "test")), ".png" if name.endswith(".png")
                           else ".jpg")
            (root / "images" / name).write_bytes(broken.get(name, data))
    return root


def eyeq_params(tmp_path, root, **data):
    return write_params(tmp_path / "params.yaml", {"data": {
        "source": "eyeq", "image_size": 64, "eyeq": {"root": str(root)}, **data}})


@pytest.mark.parametrize("name, damage, message", [
    ("1_left.jpeg", jpeg_with_garbage, "Corrupt JPEG data"),
    ("1_right.png", png_with_bad_idat, "IDAT chunk at byte 33 fails its CRC check"),
])
def test_prepare_names_a_corrupt_image_and_skips_it_on_request(tmp_path, name, damage,
                                                              message):
    from stages.prepare import main
    good = encoded(photo(0 if name.endswith("jpeg") else 1),
                   ".jpg" if name.endswith("jpeg") else ".png")
    root = fake_eyeq(tmp_path / "eyeq", {name: damage(good)})
    out = tmp_path / "prepared"
    res = invoke(main, "--params", eyeq_params(tmp_path, root), "--out", out, "--workers", 1)
    assert_one_line_error(res, f"images/{name}: corrupt", message, "data.on_corrupt: skip")
    assert_nothing_written(out)
    # skip: the other images go on; the skipped one is printed and listed in dataset.json
    res = invoke(main, "--params", eyeq_params(tmp_path, root, on_corrupt="skip"),
                 "--out", out, "--workers", 1)
    assert res.exit_code == 0, res.output
    assert "skipped: 1 corrupt image (data.on_corrupt: skip" in res.output
    info = json.loads((out / "dataset.json").read_text())
    assert len(info["skipped_corrupt"]) == 1 and name in info["skipped_corrupt"][0]
    ids = set(pd.read_parquet(out / "manifest.parquet")["image_id"])
    assert ids == {"1_left", "1_right", "2_left", "2_right"} - {name.split(".")[0]}


def test_strict_decoding_leaves_valid_images_unchanged():
    image = photo(3)
    for ext in (".jpg", ".png"):
        data = encoded(image, ext)
        assert np.array_equal(decode_image(data, strict=True), decode_image(data))
    assert np.array_equal(decode_image(encoded(image, ".png"), strict=True), image)
    with pytest.raises(CorruptImageError, match="x.jpeg: corrupt image data"):
        decode_image(jpeg_with_garbage(encoded(image, ".jpg")), "x.jpeg", strict=True)


# --- 3b, 3c: detect -------------------------------------------------------------------

def detect_args(root, tmp_path, params):
    return ["--params", params, "--splits", root / "splits", "--degraded", root / "degraded",
            "--model", root / "detector.pt", "--out", tmp_path / "out" / "lesion_boxes.parquet",
            "--metrics", tmp_path / "out" / "detect.json",
            "--figure", tmp_path / "out" / "windows.png"]


def detect_outputs(tmp_path):
    return [tmp_path / "out" / n for n in ("lesion_boxes.parquet", "detect.json", "windows.png")]


def test_detect_without_a_kept_box_names_detect_conf_and_the_best_score(tmp_path,
                                                                        tiny_patches):
    from stages.detect import main
    params = write_params(tmp_path / "params.yaml", {"detect": {"conf": 0.999}})
    line = assert_one_line_error(invoke(main, *detect_args(tiny_patches, tmp_path, params)),
                                 f"{params}: `detect.conf` = 0.999 kept no box on the 16 "
                                 "HL/LL images: the best score seen is 0.")
    best = float(line.split("best score seen is ")[1].split(";")[0])
    assert 0 < best < 0.999
    assert_nothing_written(*detect_outputs(tmp_path))


def test_patch_size_larger_than_the_image_is_named_in_detect_and_crop_healthy(tmp_path,
                                                                            tiny_patches):
    from stages.crop_healthy import main as crop_main
    from stages.detect import main
    params = write_params(tmp_path / "params.yaml", {"patches": {"size": 200}})
    assert_one_line_error(invoke(main, *detect_args(tiny_patches, tmp_path, params)),
                          "`patches.size` = 200 px is larger than the 128x128 px image")
    assert_nothing_written(*detect_outputs(tmp_path))
    out = tmp_path / "out" / "healthy_boxes.parquet"
    assert_one_line_error(invoke(crop_main, "--params", params, "--splits",
                                 tiny_patches / "splits", "--degraded",
                                 tiny_patches / "degraded", "--out", out),
                          "`patches.size` = 200 px is larger than the 128x128 px image")
    assert_nothing_written(out)


# --- 3d, 3e, 3f: params and messages --------------------------------------------------

def test_numbers_written_like_1e_minus_3_are_numbers(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("pretrain:\n  lr: 1e-3\n  steps: 2e3\n  epochs: 2.0e0\n  weights: [1e-1, 1]\n"
                    "  bad: 1e-3x\n  nan: nan\n")
    params = Params.load(path)
    assert params.raw("pretrain.lr") == "1e-3"  # YAML 1.1 reads it as a string
    assert params.number("pretrain.lr") == 0.001
    assert params.integer("pretrain.steps") == 2000
    assert params.number("pretrain.epochs") == 2.0  # "2.0e0": YAML 1.1 wants "2.0e+0"
    with pytest.raises(Exception, match="`pretrain.epochs` must be an integer, got 2.0"):
        params.integer("pretrain.epochs")
    assert params.number_list("pretrain.weights") == [0.1, 1.0]
    for key in ("pretrain.bad", "pretrain.nan"):
        with pytest.raises(Exception, match=f"{path}: `{key}` must be a number"):
            params.number(key)
    with pytest.raises(Exception, match="`pretrain.lr` must be an integer, got 0.001"):
        params.integer("pretrain.lr")


def test_param_errors_name_the_params_file_used(tmp_path):
    from stages.prepare import main as prepare_main
    from stages.split import main as split_main
    other = write_params(tmp_path / "other.yaml", {"split": {"val_fraction": 2}})
    out = tmp_path / "splits"
    assert_one_line_error(invoke(split_main, "--params", other, "--manifest", other,
                                 "--out", out, "--metrics", tmp_path / "data.json"),
                          f"Error: {other}: `split.val_fraction` must be")
    assert_nothing_written(out, tmp_path / "data.json")
    # raised in the library without the Params at hand: the stage names the file
    other = write_params(tmp_path / "other.yaml", {"data": {"source": "eyeq"}})
    out = tmp_path / "prepared"
    assert_one_line_error(invoke(prepare_main, "--params", other, "--out", out),
                          f"Error: {other}: `data.eyeq.root` is not set")
    assert_nothing_written(out)


def test_counts_have_the_right_plural(tmp_path):
    assert (plural(1, "image"), plural(2, "image"), plural(0, "image")) == \
        ("1 image", "2 images", "0 images")
    assert plural(1, "patch", "patches") == "1 patch" and plural(3, "box", "boxes") == "3 boxes"
    notes = []
    check_files(["a.png"], ["b.png", "c.png"], "list.csv", tmp_path, "skip", notes)
    assert notes == [f"skipped: 1 image listed in list.csv is missing from {tmp_path} (a.png)",
                     f"skipped: 2 images in {tmp_path} are not listed in list.csv "
                     "(b.png, c.png)"]


# --- 4: figures -----------------------------------------------------------------------

def test_patch_grid_has_a_row_per_pool_and_labels_an_empty_one(tmp_path, tiny_patches):
    from comcl.detection.patch_store import build, grid_figure
    healthy = pd.read_parquet(tiny_patches / "healthy_boxes.parquet")
    healthy[healthy["subset"] != "LH"].to_parquet(tmp_path / "healthy.parquet")
    build(tiny_patches / "lesion_boxes.parquet", tmp_path / "healthy.parquet",
          tiny_patches / "degraded", tmp_path / "store", tmp_path / "grid.png", progress=False)
    assert (tmp_path / "grid.png").stat().st_size > 0
    fig = grid_figure(tmp_path / "store")
    axes = np.array(fig.axes).reshape(4, -1)
    labels = [row[0].get_ylabel() for row in axes]
    assert [lb.split(":")[0] for lb in labels] == ["HL", "LL", "HH", "LH"]
    assert labels[3].endswith("0 patches")
    assert [t.get_text() for t in axes[3][0].texts] == ["(empty)"]
    assert all(not row[0].texts for row in axes[:3])


def test_detect_panel_says_when_no_box_passed_the_threshold():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from comcl.detection.box_figure import add_legend, class_colors, draw_boxes_panel
    colors = class_colors(["MA", "HE"])
    fig, (a, b) = plt.subplots(1, 2, layout="constrained")
    image = np.zeros((64, 64, 3), np.uint8)
    draw_boxes_panel(a, image, colors, truth=[(5, 5, 20, 20, "MA")], conf=0.5, best=0.31)
    draw_boxes_panel(b, image, colors, predicted=[(5, 5, 20, 20, "HE", 0.9)], conf=0.5)
    add_legend(fig, colors, windows=True)
    assert [t.get_text() for t in a.texts] == ["no box above 0.5 (best score 0.31)"]
    assert [t.get_text() for t in b.texts] == ["HE 0.90"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["MA", "HE", "ground truth", "detector box", "patch window"]
    plt.close(fig)


def test_gradcam_has_a_panel_per_requested_image_with_true_and_predicted_class():
    from comcl.diagnosis.classifier import ClassifierConfig
    from comcl.diagnosis.evaluate import gradcam_rows
    test = pd.DataFrame({"image_id": [f"i{k}" for k in range(6)],
                         "lesion": [True, True, True, False, False, True],
                         "quality": ["high", "high", "high", "low", "low", "high"],
                         "label": [1, 2, 3, 0, 0, 4]})
    cfg = ClassifierConfig("resnet18", "grading", ["0", "1", "2", "3", "4"], "ce", 32, "none")
    y, pred = test["label"].to_numpy(), np.array([1, 1, 1, 0, 2, 0])
    rows = gradcam_rows(test, 5, cfg, y, pred)  # no low-quality lesion image: high fills in
    assert [r["image_id"] for r in rows] == ["i0", "i1", "i2", "i5", "i3"]
    assert [(r["true_text"], r["pred_text"]) for r in rows][3] == ("grade 4", "grade 0")
    assert len(gradcam_rows(test, 10, cfg, y, pred)) == 6
