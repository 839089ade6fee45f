"""The encoder: a torchvision ResNet without its pooling-free fc, plus the projection head.

``pretrain.backbone``: ``resnet50`` as in the paper (2048 features), ``resnet18`` (512) for
the CPU default. The projection head is (features)-2048-128 and its output is
L2-normalised. Weights start random or come from a local file (``pretrain.weights``: a
torchvision-style ResNet state dict, ``fc.*`` ignored); nothing is downloaded. Greyscale
inputs are repeated to three channels, so the same backbone serves fundus and X-ray data.

``models/encoder.pt`` holds ``{"backbone", "method", "state_dict"}`` (the backbone only);
it is read with ``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models

from comcl.common.errors import DataError, ParamError

BACKBONES = {"resnet18": (models.resnet18, 512), "resnet34": (models.resnet34, 512),
             "resnet50": (models.resnet50, 2048)}


def build_backbone(name: str, weights: str | Path | None = None, key: str = "pretrain.weights"):
    """A ResNet whose ``fc`` is the identity: images -> globally pooled features."""
    if name not in BACKBONES:
        raise ParamError(key.replace("weights", "backbone"),
                         f"must be one of {', '.join(BACKBONES)}, got {name!r}")
    ctor, dim = BACKBONES[name]
    net = ctor(weights=None)
    net.fc = nn.Identity()
    if weights:
        path = Path(weights)
        if not path.exists():
            raise ParamError(key, f"file not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = net.load_state_dict(state, strict=False)
        if len(missing) == len(net.state_dict()):
            raise DataError(f"{path}: no tensor matches a {name}")
    net.feature_dim = dim
    return net


class ContrastiveModel(nn.Module):
    """Backbone + projection head; ``forward`` gives L2-normalised embeddings."""

    def __init__(self, backbone: nn.Module, hidden: int = 2048, out: int = 128,
                 out_bn: bool = False):
        super().__init__()
        self.backbone = backbone
        # BatchNorm in the head (as SimCLR v2 / MoCo v3) keeps the embeddings from
        # collapsing onto one point in the first steps, when the features of a randomly
        # initialised ResNet are all alike.
        self.head = nn.Sequential(nn.Linear(backbone.feature_dim, hidden, bias=False),
                                  nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, out))
        if out_bn:
            # Centred outputs (MoCo v3's last BN, no affine): the final layer's shared
            # component (its bias, the ReLU's positive mean) otherwise makes every
            # embedding alike, and the class-level terms (L2, L3) sat at chance.
            self.head.append(nn.BatchNorm1d(out, affine=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.backbone(x)).float(), dim=1)


def save_encoder(backbone: nn.Module | None, name: str, method: str, path: str | Path,
                 extra: dict | None = None) -> None:
    from comcl.common.atomic import atomic_file

    blob = {"backbone": name, "method": method, **(extra or {})}
    if backbone is not None:
        blob["state_dict"] = {k: v.detach().cpu() for k, v in backbone.state_dict().items()}
    with atomic_file(path) as tmp:
        torch.save(blob, tmp)


def load_encoder(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: encoder not found; run `pretrain` first")
    return torch.load(path, map_location="cpu", weights_only=True)
