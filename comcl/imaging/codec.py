"""Lossless image encoding: PNG bytes <-> numpy arrays (RGB or single channel, uint8).

Arrays are RGB in this project; OpenCV's BGR order stays inside this module.
"""
from __future__ import annotations

import cv2
import numpy as np

from comcl.common.errors import DataError

# zlib level 1 with the RLE strategy and the SUB filter: 2.5x faster to encode than the
# OpenCV defaults on fundus images, and 10% smaller (measured at 512 px: 13 ms, 236 KB).
PNG_OPTIONS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY,
               cv2.IMWRITE_PNG_STRATEGY_RLE, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]


def encode_png(array: np.ndarray) -> bytes:
    if array.dtype != np.uint8:
        raise TypeError(f"encode_png wants uint8, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", array, PNG_OPTIONS)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def decode_image(data: bytes, what: str = "image", grey: bool = False) -> np.ndarray:
    """Decode PNG/JPEG bytes to RGB (or single-channel when ``grey`` or the file is grey)."""
    check_encoded(data, what)
    buf = np.frombuffer(data, dtype=np.uint8)
    flag = cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_UNCHANGED
    img = cv2.imdecode(buf, flag) if buf.size else None
    if img is None:
        raise DataError(f"{what}: cannot decode image (corrupt or truncated file)")
    if img.dtype != np.uint8:
        img = _to_uint8(img)
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
        else:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def _to_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint16:
        return (img >> 8).astype(np.uint8)
    if img.dtype == bool:
        return img.astype(np.uint8) * 255
    return np.clip(img, 0, 255).astype(np.uint8)


def read_image_file(path, grey: bool = False) -> np.ndarray:
    """Read an image file strictly: a corrupt or truncated file is a DataError naming it."""
    try:
        data = open(path, "rb").read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    return decode_image(data, str(path), grey=grey)


def check_encoded(data: bytes | None, what: str = "image") -> None:
    """Cheap structural check of encoded bytes, without decoding.

    OpenCV's JPEG and PNG decoders accept some truncated files and fill the missing part
    with grey; a missing end-of-image marker catches those.
    """
    if not data:
        raise DataError(f"{what}: empty image data")
    if data[:2] == b"\xff\xd8":
        if b"\xff\xd9" not in data[-64:]:
            raise DataError(f"{what}: truncated JPEG (no end-of-image marker)")
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        if b"IEND" not in data[-16:]:
            raise DataError(f"{what}: truncated PNG (no IEND chunk)")
