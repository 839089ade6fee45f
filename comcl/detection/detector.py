"""The lesion detector: a torchvision Faster R-CNN, built from params, saved and loaded safely.

``detector.arch`` picks the backbone: ``mobilenet_v3`` (MobileNetV3-Large FPN, fast on a
CPU: the default), ``resnet18`` (ResNet-18 FPN at strides 4-32 + a max-pool level, 128
channels: the real-fundus recipe, docs/datasets.md) or ``resnet50`` (ResNet-50 FPN, as in
the public reference implementation). Nothing is downloaded: the weights are random, or read from a local
file named by ``detector.weights`` (a state dict of the whole detector or of its
backbone body). Small lesions need small anchors and a fine feature map: the MobileNet
FPN here starts at stride 8 (torchvision's default starts at 16) and is half as wide,
the box head is 512 wide instead of 1024 (together 3x faster training on a CPU), and the
anchor sizes come from ``detector.anchor_sizes``.

Microaneurysms and exudate specks are 2-6 px at 512 px: ``detector.finest_stride: 4``
adds a stride-4 level to the MobileNet FPN (levels at the ends of the stride-4, 8 and 16
stages and the last layer, + a max-pool level: five), and ``detector.anchors_per_level:
true`` splits ``detector.anchor_sizes`` in order into one equal group per level (one
size per level as torchvision does, or e.g. two: 4,6 | 8,12 | ... | 64,128) instead of
every size on every level. Both default to the earlier layout (stride 8, every size on
every level).

``detector.roi_context: N`` pools each box enlarged to at least N px (``context_roi``), so
the box head sees a lesion's size and surroundings (0: torchvision's pooling).

``detector.labels_per_box: top`` gives each proposal only its most probable class
(``top_label``); ``all`` is torchvision's output, a box per class above 0.01.

``detector.preprocess: local_contrast`` feeds the network the image minus its large
Gaussian blur (sigma = working size / 60; Graham's Kaggle preprocessing), which removes
the slow illumination gradients of real photographs and leaves lesions' local contrast;
zero (grey 128) outside the field of view. Given the FOV mask, the blur is a normalised
convolution over FOV pixels only, so the FOV edge gets no halo. ``detector.prepare_input``
applies it, the same in training and in ``detect``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torchvision.models import mobilenet_v3_large, resnet18
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN, resnet_fpn_backbone
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from comcl.common.errors import DataError, ParamError
from comcl.common.params import Params
from comcl.detection import top_label
from comcl.detection.context_roi import ContextRoIAlign

ARCHS = ("mobilenet_v3", "resnet18", "resnet50")
PREPROCESS = ("none", "local_contrast")
CONTRAST_SIGMA = 1 / 60  # local_contrast's Gaussian sigma, as a fraction of the working size
FINEST_STRIDES = (4, 8)  # MobileNet FPN's finest level
FPN_CHANNELS = 128   # MobileNet FPN width (torchvision uses 256; 128 halves the CPU cost)
BOX_HEAD_DIM = 512   # box head MLP width (torchvision: 1024)


@dataclass
class DetectorConfig:
    arch: str
    classes: list[str]
    image_size: int
    anchor_sizes: list[int]
    rpn_proposals_train: int
    rpn_proposals_test: int
    detections_per_image: int
    finest_stride: int = 8
    anchors_per_level: bool = False
    preprocess: str = "none"
    labels_per_box: str = "all"
    roi_context: int = 0

    @property
    def levels(self) -> int:
        """Feature levels of the FPN (max-pool level included)."""
        return 5 if self.arch != "mobilenet_v3" or self.finest_stride == 4 else 4

    def anchors(self) -> tuple[tuple[int, ...], ...]:
        """Anchor sizes per FPN level."""
        sizes = tuple(self.anchor_sizes)
        if not self.anchors_per_level:
            return (sizes,) * self.levels
        k = len(sizes) // self.levels
        return tuple(sizes[i * k:(i + 1) * k] for i in range(self.levels))

    @classmethod
    def from_params(cls, p: Params, classes: list[str]) -> "DetectorConfig":
        sizes = p.number_list("detector.anchor_sizes", lo=2)
        if sorted(sizes) != sizes or len(sizes) < 1:
            raise ParamError("detector.anchor_sizes", f"must be increasing, got {sizes}")
        cfg = cls(
            arch=p.choice("detector.arch", ARCHS),
            classes=list(classes),
            image_size=p.integer("detector.image_size", lo=64, hi=4096),
            anchor_sizes=[int(s) for s in sizes],
            rpn_proposals_train=p.integer("detector.rpn_proposals_train", lo=16),
            rpn_proposals_test=p.integer("detector.rpn_proposals_test", lo=16),
            detections_per_image=p.integer("detector.detections_per_image", lo=1),
            finest_stride=p.integer("detector.finest_stride", default=8),
            anchors_per_level=p.boolean("detector.anchors_per_level", default=False),
            preprocess=p.choice("detector.preprocess", PREPROCESS, default="none"),
            labels_per_box=p.choice("detector.labels_per_box", top_label.LABELS_PER_BOX,
                                    default="all"),
            roi_context=p.integer("detector.roi_context", lo=0, hi=1024, default=0),
        )
        if cfg.finest_stride not in FINEST_STRIDES:
            raise ParamError("detector.finest_stride",
                             f"must be one of {FINEST_STRIDES}, got {cfg.finest_stride}")
        if cfg.anchors_per_level and len(sizes) % cfg.levels:
            raise ParamError("detector.anchor_sizes",
                             f"with anchors_per_level, needs the same number of sizes per "
                             f"FPN level: a multiple of {cfg.levels} for {cfg.arch} at "
                             f"finest_stride {cfg.finest_stride}, got {len(sizes)}")
        return cfg


def build(cfg: DetectorConfig) -> FasterRCNN:
    """A randomly initialised Faster R-CNN for ``cfg.classes`` (+ background)."""
    if cfg.arch == "mobilenet_v3":
        # MobileNetV3-Large stages at strides 8, 16 and 32 (+ a max-pool level) into a slim
        # FPN; trainable BatchNorm since the weights start random.
        features = mobilenet_v3_large(weights=None, norm_layer=nn.BatchNorm2d).features
        if cfg.finest_stride == 4:
            layers, widths = {"3": "0", "6": "1", "12": "2", "16": "3"}, [24, 40, 112, 960]
        else:
            layers, widths = {"4": "0", "7": "1", "16": "2"}, [40, 80, 960]
        backbone = BackboneWithFPN(features, layers, widths, FPN_CHANNELS,
                                   extra_blocks=LastLevelMaxPool(), norm_layer=nn.BatchNorm2d)
    elif cfg.arch == "resnet18":
        # ResNet-18 stages at strides 4, 8, 16, 32 (+ max-pool level) into a slim FPN.
        body = resnet18(weights=None, norm_layer=nn.BatchNorm2d)
        backbone = BackboneWithFPN(body, {"layer1": "0", "layer2": "1", "layer3": "2",
                                          "layer4": "3"}, [64, 128, 256, 512], FPN_CHANNELS,
                                   extra_blocks=LastLevelMaxPool(), norm_layer=nn.BatchNorm2d)
    else:
        backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None,
                                       norm_layer=nn.BatchNorm2d, trainable_layers=5)
    levels = cfg.levels
    anchors = AnchorGenerator(cfg.anchors(), ((0.5, 1.0, 2.0),) * levels)
    channels = backbone.out_channels
    model = FasterRCNN(
        backbone, num_classes=None, rpn_anchor_generator=anchors,
        box_roi_pool=ContextRoIAlign(cfg.roi_context) if cfg.roi_context else None,
        box_head=TwoMLPHead(channels * 7 * 7, BOX_HEAD_DIM),
        box_predictor=FastRCNNPredictor(BOX_HEAD_DIM, len(cfg.classes) + 1),
        min_size=cfg.image_size, max_size=cfg.image_size,
        rpn_pre_nms_top_n_train=cfg.rpn_proposals_train,
        rpn_post_nms_top_n_train=cfg.rpn_proposals_train,
        rpn_pre_nms_top_n_test=cfg.rpn_proposals_test,
        rpn_post_nms_top_n_test=cfg.rpn_proposals_test,
        rpn_batch_size_per_image=128, box_batch_size_per_image=64,
        box_detections_per_img=cfg.detections_per_image, box_score_thresh=0.01,
    )
    top_label.apply(model, cfg.labels_per_box)
    return model


def set_input_size(model: FasterRCNN, size: int) -> None:
    """Make the model's transform keep ``size`` x ``size`` inputs at their size (training
    crops are smaller than the working resolution; torchvision would upsample them)."""
    model.transform.min_size = (size,)
    model.transform.max_size = size


def load_initial_weights(model: FasterRCNN, path: str | Path) -> None:
    """Initialise from a local state dict (whole detector, or its backbone body)."""
    path = Path(path)
    if not path.exists():
        raise ParamError("detector.weights", f"file not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    target = model if any(k.startswith("backbone.") for k in state) else model.backbone.body
    missing, unexpected = target.load_state_dict(state, strict=False)
    if len(unexpected) == len(state):
        raise DataError(f"{path}: no tensor matches the {type(target).__name__} layout")


def save(model: FasterRCNN, cfg: DetectorConfig, path: str | Path) -> None:
    from comcl.common.atomic import atomic_file

    with atomic_file(path) as tmp:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save({"config": asdict(cfg), "state_dict": state}, tmp)


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def load(path: str | Path, device: torch.device | str = "cpu") -> tuple[FasterRCNN, DetectorConfig]:
    """The saved detector in eval mode on ``device``."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: detector not found; run `train_detector` first")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    cfg = DetectorConfig(**blob["config"])
    model = build(cfg)
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval(), cfg


def prepare_input(image: np.ndarray, cfg: DetectorConfig,
                  fov: np.ndarray | None = None) -> np.ndarray:
    """The image resized to the working size, preprocessed as ``cfg.preprocess`` says."""
    size = cfg.image_size
    if image.shape[:2] != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    if cfg.preprocess == "none":
        return image
    img = image.astype(np.float32)
    sigma = CONTRAST_SIGMA * size
    if fov is None:
        return _stretch(img, cv2.GaussianBlur(img, (0, 0), sigmaX=sigma))
    if fov.shape[:2] != (size, size):
        fov = cv2.resize(fov.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    inside = (fov > 0).astype(np.float32)
    # Normalised convolution: the blur averages field-of-view pixels only, so the black
    # background does not darken it near the FOV edge (a bright halo that drew boxes).
    weight = cv2.GaussianBlur(inside, (0, 0), sigmaX=sigma)
    blur = cv2.GaussianBlur(img * inside[..., None], (0, 0), sigmaX=sigma)
    out = _stretch(img, blur / np.maximum(weight, 1e-3)[..., None])
    # a 1-2 px margin inside the FOV edge, where resizing mixes in the background
    inner = cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8),
                      iterations=max(1, size // 768)) > 0
    out[~inner] = 128
    return out


def _stretch(img: np.ndarray, blur: np.ndarray) -> np.ndarray:
    """The local contrast, x4 around grey 128, as uint8."""
    return np.clip(4.0 * (img - blur) + 128.0, 0, 255).astype(np.uint8)


def to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 HxWx3 (or HxW grey) to float CxHxW in [0, 1], three channels, on ``device``."""
    t = torch.from_numpy(np.ascontiguousarray(image)).to(device)
    if t.ndim == 2:
        t = t.unsqueeze(-1).expand(-1, -1, 3)
    return t.permute(2, 0, 1).float().div_(255.0)
