"""The detector's optional stride-4 level and one anchor size per level."""
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
    with pytest.raises(ParamError, match="one size per FPN level: 5"):
        _cfg(finest_stride=4, anchors_per_level=True)
    with pytest.raises(ParamError, match="finest_stride"):
        _cfg(finest_stride=16)
