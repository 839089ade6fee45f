"""The detector's optional stride-4 level, anchor groups per level, the ResNet-18 FPN of the
real-fundus recipe and its local-contrast input."""
import cv2
import numpy as np
import pytest
import torch

from comcl.common.errors import ParamError
from comcl.common.params import Params
from comcl.detection import detector as det

BASE = {"arch": "mobilenet_v3", "image_size": 64, "anchor_sizes": [8, 16, 32, 64],
        "rpn_proposals_train": 32, "rpn_proposals_test": 16, "detections_per_image": 5}


def _cfg(**extra):
    return det.DetectorConfig.from_params(Params({"detector": {**BASE, **extra}}),
                                          ["MA", "HE"])


def test_defaults_keep_the_stride_8_layout_with_every_size_on_every_level():
    cfg = _cfg()
    assert (cfg.finest_stride, cfg.anchors_per_level, cfg.levels) == (8, False, 4)
    anchors = det.build(cfg).rpn.anchor_generator
    assert anchors.num_anchors_per_location() == [12] * 4


def test_stride_4_level_with_one_anchor_size_per_level_detects_at_stride_4():
    cfg = _cfg(finest_stride=4, anchors_per_level=True, anchor_sizes=[4, 8, 16, 32, 64])
    model = det.build(cfg).eval()
    assert model.rpn.anchor_generator.sizes == ((4,), (8,), (16,), (32,), (64,))
    feats = model.backbone(torch.zeros(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats.values()] == [16, 8, 4, 2, 1]
    with torch.inference_mode():
        assert len(model([torch.zeros(3, 64, 64)])) == 1


def test_anchors_per_level_needs_one_size_per_level():
    with pytest.raises(ParamError, match="a multiple of 5"):
        _cfg(finest_stride=4, anchors_per_level=True)
    with pytest.raises(ParamError, match="finest_stride"):
        _cfg(finest_stride=16)


def test_resnet18_fpn_splits_anchor_sizes_into_equal_consecutive_groups_per_level():
    cfg = _cfg(arch="resnet18", anchors_per_level=True,
               anchor_sizes=[4, 6, 8, 12, 16, 24, 32, 48, 64, 128])
    model = det.build(cfg).eval()
    assert cfg.levels == 5
    assert model.rpn.anchor_generator.sizes == ((4, 6), (8, 12), (16, 24), (32, 48), (64, 128))
    assert model.rpn.anchor_generator.num_anchors_per_location() == [6] * 5
    feats = model.backbone(torch.zeros(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats.values()] == [16, 8, 4, 2, 1]
    with pytest.raises(ParamError, match="a multiple of 5.*got 7"):
        _cfg(arch="resnet18", anchors_per_level=True, anchor_sizes=[4, 6, 8, 12, 16, 24, 32])


def test_local_contrast_removes_illumination_keeps_a_dot_and_greys_outside_the_fov():
    cfg = _cfg(preprocess="local_contrast", image_size=120)
    yy, xx = np.mgrid[:120, :120]
    image = np.repeat((40 + xx)[..., None], 3, 2).astype(np.uint8)  # a slow gradient
    image[60:62, 60:62] = 0                                            # a 2 px dark lesion
    fov = (yy - 60) ** 2 + (xx - 60) ** 2 < 50 ** 2
    out = det.prepare_input(image, cfg, fov)
    assert out.shape == (120, 120, 3) and out.dtype == np.uint8
    assert abs(int(out[60, 30, 0]) - 128) <= 3 and abs(int(out[60, 90, 0]) - 128) <= 3
    assert out[60, 60, 0] < 40                         # the lesion stands out
    assert (out[~fov] == 128).all() and (out[0, 0] == 128).all()
    plain = det.prepare_input(image, _cfg(image_size=64))
    assert plain.shape == (64, 64, 3)
    with pytest.raises(ParamError, match="detector.preprocess"):
        _cfg(preprocess="clahe")


def test_local_contrast_leaves_no_halo_at_the_fov_edge():
    """A uniform retina inside a black surround: with the FOV mask, the normalised blur
    gives grey (no edge) right up to the FOV border; a plain blur would make a bright ring."""
    size = 240
    cfg = _cfg(preprocess="local_contrast", image_size=size)
    yy, xx = np.mgrid[:size, :size]
    fov = (yy - 120) ** 2 + (xx - 120) ** 2 < 110 ** 2
    image = np.where(fov[..., None], np.uint8(150), np.uint8(0)).repeat(3, 2)
    out = det.prepare_input(image, cfg, fov)
    assert np.abs(out[fov].astype(int) - 128).max() <= 1
    plain = np.clip(4.0 * (image.astype(np.float32) - cv2.GaussianBlur(
        image.astype(np.float32), (0, 0), sigmaX=size / 60)) + 128, 0, 255)
    ring = fov & ((yy - 120) ** 2 + (xx - 120) ** 2 > 105 ** 2)
    assert plain[ring].max() > 200                   # what the halo was


def test_top_label_keeps_each_proposals_best_class_at_its_probability():
    from comcl.detection import top_label

    logits = torch.tensor([[0.0, 2.0, 1.0, -1.0],    # MA first, HE second
                           [3.0, 0.0, 0.5, 0.2]])    # background first, HE best lesion class
    p = torch.softmax(logits, -1)
    q = torch.softmax(top_label.top_class_logits(logits), -1)
    assert torch.allclose(q.sum(1), torch.ones(2))
    assert torch.allclose(q[0, 1], p[0, 1]) and torch.allclose(q[1, 2], p[1, 2])
    assert q[0, 2] < 1e-20 and q[0, 3] < 1e-20 and q[1, 1] < 1e-20 and q[1, 3] < 1e-20
    assert torch.allclose(q[0, 0], p[0, 0] + p[0, 2] + p[0, 3])
    assert torch.allclose(q[1, 0], p[1, 0] + p[1, 1] + p[1, 3])


def test_labels_per_box_top_returns_one_box_per_proposal_with_the_same_weights():
    torch.manual_seed(0)
    every = det.build(_cfg(detections_per_image=500)).eval()
    top = det.build(_cfg(detections_per_image=500, labels_per_box="top")).eval()
    top.load_state_dict(every.state_dict())
    for model in (every, top):
        model.roi_heads.nms_thresh = 1.0   # no suppression: "top" must return a subset
    image = torch.rand(3, 64, 64)
    with torch.inference_mode():
        a, b = every([image])[0], top([image])[0]
    assert len(b["boxes"]) < len(a["boxes"])   # random weights: two classes pass 0.01 per box
    # every box "top" keeps is one "all" returned, with the same label and score
    for box, lab, s in zip(b["boxes"], b["labels"], b["scores"]):
        same = (a["labels"] == lab) & torch.isclose(a["scores"], s) \
            & torch.isclose(a["boxes"], box).all(1)
        assert same.any()
    with pytest.raises(ParamError, match="detector.labels_per_box"):
        _cfg(labels_per_box="two")


def test_roi_context_pools_a_small_box_as_its_enlarged_window_and_leaves_large_ones():
    from comcl.detection.context_roi import ContextRoIAlign, expand_to_min_side
    from torchvision.ops import MultiScaleRoIAlign

    boxes = torch.tensor([[10.0, 10.0, 14.0, 16.0], [0.0, 0.0, 40.0, 40.0]])
    grown = expand_to_min_side(boxes, 16)
    assert grown.tolist() == [[4.0, 5.0, 20.0, 21.0], [0.0, 0.0, 40.0, 40.0]]
    assert torch.equal(expand_to_min_side(boxes, 0), boxes)
    feats = {"0": torch.randn(1, 8, 16, 16), "1": torch.randn(1, 8, 8, 8)}
    pool, plain = ContextRoIAlign(16), MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    assert torch.allclose(pool(feats, [boxes], [(64, 64)]), plain(feats, [grown], [(64, 64)]))
    assert type(det.build(_cfg()).roi_heads.box_roi_pool) is MultiScaleRoIAlign
    model = det.build(_cfg(roi_context=24)).eval()
    assert model.roi_heads.box_roi_pool.min_side == 24
    with torch.inference_mode():
        assert len(model([torch.zeros(3, 64, 64)])) == 1
    with pytest.raises(ParamError, match="roi_context"):
        _cfg(roi_context=-1)
