"""The pixel scale contract between pretraining and fine-tuning.

A lesion of d stored pixels appears as d x scale pixels to the network. Pretraining sees
patches (cut at the stored resolution) through random resized crops of an area fraction
U(a, b) resized to ``pretrain.input_size``: scale = input_size / (patch side x E[sqrt
area]). Fine-tuning sees whole images resized from the stored size to
``finetune.image_size``: scale = image_size / stored size. ``encoder.pt`` records its
``pixel_scale``; ``finetune`` compares and, when the two differ by more than
``MAX_RATIO``, warns or fails (``finetune.scale_mismatch: warn | error | ignore``): the
encoder's filters were tuned to lesions of another apparent size.
"""
from __future__ import annotations

import math

from comcl.common.errors import ParamError

MAX_RATIO = 1.5
MODES = ("warn", "error", "ignore")


def mean_side(crop_scale: tuple[float, float]) -> float:
    """E[sqrt(A)] for A ~ U(a, b): the mean side of a crop, as a fraction of the patch's."""
    a, b = crop_scale
    if b - a < 1e-9:
        return math.sqrt(a)
    return (2.0 / 3.0) * (b ** 1.5 - a ** 1.5) / (b - a)


def patch_scale(input_size: int, patch_side: int, crop_scale: tuple[float, float]) -> float:
    return input_size / (patch_side * mean_side(crop_scale))


def check(encoder_scale: float | None, image_size: int, stored_size: int,
          mode: str) -> str | None:
    """None when the scales agree (or the encoder records none); else the message, which
    is raised as a ParamError on ``finetune.image_size`` under ``mode == "error"``."""
    if encoder_scale is None or mode == "ignore":
        return None
    whole = image_size / stored_size
    ratio = max(whole / encoder_scale, encoder_scale / whole)
    if ratio <= MAX_RATIO:
        return None
    match = round(encoder_scale * stored_size)
    text = (f"= {image_size} shows lesions at {whole:.2f}x their stored size, the encoder "
            f"was pretrained at {encoder_scale:.2f}x ({ratio:.1f}x apart, more than "
            f"{MAX_RATIO}x); an image_size near {match} matches it "
            "(finetune.scale_mismatch: warn | error | ignore)")
    if mode == "error":
        raise ParamError("finetune.image_size", text)
    return f"finetune: warning: finetune.image_size {text}"
