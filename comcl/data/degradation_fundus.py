"""The fundus degradation model (Shen et al., TMI 2020, the paper's [19]); DESIGN §3.

Three types, applied inside the field of view (FOV) only, in any non-empty combination:

- ``illumination``: brightness U(0.7, 1.2), contrast U(0.6, 1.4) and saturation
  U(0.6, 1.4) factors; a blurred bright halo ring near the FOV rim; a darkening "hole"
  disc of diameter U(0.4w, 0.7w) near the centre.
- ``spots``: 5-10 bright blurred discs of radius U(0.01h, 0.05h).
- ``blur``: Gaussian blur with sigma U(5, 15) at 512 px (scaled with the image size).
  The kernel follows sigma (OpenCV ``ksize=(0, 0)``), and the blur is normalised by the
  blurred FOV mask so that the black background does not bleed into the rim.

``sample`` draws every parameter (a JSON-able dict, recorded per image in the manifests);
``apply`` is a pure function of (image, FOV, parameters). The smooth illumination fields
(halo, hole) are evaluated on a coarse grid (every ``FIELD_STEP`` px) and interpolated,
and each spot is drawn in a small window with a closed-form blurred-disc profile: this is
what makes the model several times faster than the public reference, which spends most
of its time in huge Gaussian kernels over the full image.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from comcl.data.severity import scaled_sigma, severity_of

TYPES = ("illumination", "spots", "blur")
REFERENCE_SIZE = 512.0
FIELD_STEP = 8  # coarse grid step (px) for the smooth illumination fields
MIN_SIGMA = 0.3  # a blur below this is no blur (OpenCV needs sigma > 0)


def fov_geometry(fov: np.ndarray) -> tuple[float, float, float]:
    """Centre (x, y) and radius of the field of view, from its mask's moments."""
    m = cv2.moments(fov.astype(np.uint8), binaryImage=True)
    if m["m00"] <= 0:
        h, w = fov.shape
        return w / 2.0, h / 2.0, min(h, w) / 2.0
    return m["m10"] / m["m00"], m["m01"] / m["m00"], math.sqrt(m["m00"] / math.pi)


def choose_types(rng: np.random.Generator, known: tuple[str, ...], types, allowed) -> list[str]:
    """``types`` in the model's order, or a random non-empty subset of ``allowed`` (each of
    the 2^k - 1 combinations equally likely). Shared by the fundus and X-ray models."""
    if types is None:
        allowed = [t for t in known if t in allowed]
        while True:
            chosen = [t for t in allowed if rng.random() < 0.5]
            if chosen:
                return chosen
    unknown = [t for t in types if t not in known]
    if unknown:
        raise ValueError(f"unknown degradation types {unknown}; known: {list(known)}")
    return [t for t in known if t in types]


def sample(rng: np.random.Generator, height: int, width: int, fov: np.ndarray | None,
           types: list[str] | None = None, allowed: tuple[str, ...] | list[str] = TYPES,
           geometry: tuple[float, float, float] | None = None) -> dict:
    """Draw degradation parameters; ``types`` fixes the combination, else a random
    non-empty subset of ``allowed`` (each of the 2^k - 1 combinations equally likely).

    ``geometry`` (centre x, centre y, radius of the FOV) replaces the FOV mask, for
    degrading a patch as part of a virtual image of ``height`` x ``width``."""
    chosen = choose_types(rng, TYPES, types, allowed)
    scale = min(height, width) / REFERENCE_SIZE
    cx, cy, radius = geometry if geometry is not None else fov_geometry(fov)
    params: dict = {"types": chosen}
    if "illumination" in chosen:
        params["illumination"] = {
            "brightness": float(rng.uniform(0.7, 1.2)),
            "contrast": float(rng.uniform(0.6, 1.4)),
            "saturation": float(rng.uniform(0.6, 1.4)),
            "halo_center": [float(cx + rng.uniform(-0.1, 0.1) * radius),
                            float(cy + rng.uniform(-0.1, 0.1) * radius)],
            "halo_radius": float(rng.uniform(0.75, 1.0) * radius),
            "halo_width": float(rng.uniform(0.05, 0.15) * radius),
            "halo_strength": float(rng.uniform(0.1, 0.35)),
            "hole_center": [float(width / 2 + rng.uniform(-0.1, 0.1) * width),
                            float(height / 2 + rng.uniform(-0.1, 0.1) * height)],
            "hole_diameter": float(rng.uniform(0.4, 0.7) * width),
            "hole_softness": float(rng.uniform(0.1, 0.25)),
            "hole_depth": float(rng.uniform(0.25, 0.55)),
        }
    if "spots" in chosen:
        spots = []
        for _ in range(int(rng.integers(5, 11))):
            r = math.sqrt(rng.uniform(0, 0.85 ** 2)) * radius
            t = rng.uniform(0, 2 * math.pi)
            spots.append({
                "x": float(cx + r * math.cos(t)), "y": float(cy + r * math.sin(t)),
                "radius": float(rng.uniform(0.01, 0.05) * height),
                "softness": float(rng.uniform(0.3, 0.8)),
                "strength": float(rng.uniform(0.25, 0.6)),
            })
        params["spots"] = spots
    if "blur" in chosen:
        params["blur"] = {"sigma": float(rng.uniform(5.0, 15.0) * scale)}
    return params


def with_severity(params: dict, severity: float | dict | None) -> dict:
    """``params`` with each degradation's strength scaled by its severity (1: unchanged,
    0: none): blur sigma, the illumination factors' distance from 1, halo strength, hole
    depth and spot strength. ``severity``: one number for every type, or a mapping type
    -> number (a missing type: 1). Applied after ``sample``, so the random draws are the
    same at any severity."""
    sev = severity_of(severity, TYPES)
    if all(v == 1.0 for v in sev.values()):
        return params
    out = {**params}
    if "blur" in out:
        out["blur"] = {"sigma": scaled_sigma(out["blur"]["sigma"], sev["blur"])}
    if "illumination" in out:
        ill, k = dict(out["illumination"]), sev["illumination"]
        for key in ("brightness", "contrast", "saturation"):
            ill[key] = 1.0 + (ill[key] - 1.0) * k
        for key in ("halo_strength", "hole_depth"):
            ill[key] = min(ill[key] * k, 0.95)
        out["illumination"] = ill
    if "spots" in out:
        out["spots"] = [{**sp, "strength": min(sp["strength"] * sev["spots"], 0.95)}
                        for sp in out["spots"]]
    return out


def _coarse_grid(height: int, width: int, step: int):
    gh, gw = -(-height // step) + 1, -(-width // step) + 1
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
    return xx * step, yy * step


GREY = np.array([0.299, 0.587, 0.114], np.float32)


def _colour_matrix(brightness: float, contrast: float, saturation: float,
                   mean_grey: float) -> np.ndarray:
    """Brightness, contrast (about the mean grey level) and saturation as one 3x4 affine map.

    brightness: x -> b x;  contrast: x -> c (x - m) + m with m the mean grey after
    brightness;  saturation: x -> g + s (x - g) with g the grey level of x.
    """
    eye = np.eye(3, dtype=np.float64)
    grey = np.tile(GREY.astype(np.float64), (3, 1))  # row i: grey weights
    m = brightness * mean_grey
    lin = saturation * eye + (1 - saturation) * grey  # saturation
    lin = lin @ (contrast * brightness * eye)
    offset = (1 - contrast) * m * (saturation * np.ones(3) + (1 - saturation) * grey.sum(1))
    return np.hstack([lin, offset[:, None]]).astype(np.float32)


def _illumination(img: np.ndarray, fov: np.ndarray, p: dict,
                  offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    mean_grey = float(np.dot(cv2.mean(img, mask=fov.astype(np.uint8))[:3], GREY))
    img = cv2.transform(img, _colour_matrix(p["brightness"], p["contrast"], p["saturation"],
                                            mean_grey))
    # Smooth fields on a coarse grid: halo ring (brightening) and hole (darkening).
    h, w = fov.shape
    xx, yy = _coarse_grid(h, w, FIELD_STEP)
    xx, yy = xx + offset[0], yy + offset[1]
    hx, hy = p["halo_center"]
    dist = np.sqrt((xx - hx) ** 2 + (yy - hy) ** 2)
    halo = p["halo_strength"] * np.exp(-(((dist - p["halo_radius"]) / p["halo_width"]) ** 2))
    ox, oy = p["hole_center"]
    rad = p["hole_diameter"] / 2
    dist = np.sqrt((xx - ox) ** 2 + (yy - oy) ** 2)
    hole = p["hole_depth"] / (1 + np.exp((dist - rad) / (p["hole_softness"] * rad)))
    # x -> x (1 - hole), then a halo pulling towards white: y -> y + halo (1 - y).
    gain = _upsample_exact((1 - hole) * (1 - halo), h, w)
    lift = _upsample_exact(halo, h, w)
    img *= gain[..., None]
    img += lift[..., None]
    return img


def _upsample_exact(field: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear interpolation of a field sampled at (i*step, j*step) onto every pixel."""
    m = np.array([[1.0 / FIELD_STEP, 0, 0], [0, 1.0 / FIELD_STEP, 0]], np.float32)
    return cv2.warpAffine(field.astype(np.float32), m, (width, height),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _spots(img: np.ndarray, spots: list[dict], offset=(0.0, 0.0)) -> np.ndarray:
    h, w = img.shape[:2]
    color = np.array([1.0, 0.97, 0.88], np.float32)
    for sp in spots:
        sp = dict(sp, x=sp["x"] - offset[0], y=sp["y"] - offset[1])
        r, soft = sp["radius"], sp["softness"] * sp["radius"]
        reach = r + 3 * soft + 1
        x0, x1 = max(int(sp["x"] - reach), 0), min(int(sp["x"] + reach) + 1, w)
        y0, y1 = max(int(sp["y"] - reach), 0), min(int(sp["y"] + reach) + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dist = np.sqrt((xx - sp["x"]) ** 2 + (yy - sp["y"]) ** 2)
        # A disc blurred with a Gaussian of std ``soft``: smooth logistic edge profile.
        alpha = sp["strength"] / (1 + np.exp((dist - r) / (0.6 * soft + 1e-3)))
        a = alpha[..., None]
        img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - a) + a * color
    return img


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur whose kernel follows sigma, computed at half size when sigma >= 8.

    For large sigma the image goes one Gaussian-pyramid level down (``cv2.pyrDown``: a
    5-tap binomial anti-aliasing filter of variance 1), is blurred there, and is bilinearly
    upsampled (about 4/6 of variance); the blur at half size is shrunk so that the
    variances add up to sigma^2. This is 3-4x faster than the direct blur and differs
    from it by well under one grey level (``tests/test_degradation.py``).
    """
    if sigma < 8:
        return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    h, w = img.shape[:2]
    # Pad so that the half-size grid (even pixels) reaches past the last row and column.
    padded = cv2.copyMakeBorder(img, 0, 2, 0, 2, cv2.BORDER_REFLECT)
    small = cv2.pyrDown(padded, borderType=cv2.BORDER_REFLECT)
    rest = sigma ** 2 - 1.0 - 4.0 / 6.0
    small = cv2.GaussianBlur(small, (0, 0), math.sqrt(rest) / 2, borderType=cv2.BORDER_REFLECT)
    # pyrDown keeps the even pixels' positions: full-res x sits at x / 2 at half size.
    m = np.array([[0.5, 0, 0], [0, 0.5, 0]], np.float32)
    return cv2.warpAffine(small, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def _blur(img: np.ndarray, fov: np.ndarray, sigma: float) -> np.ndarray:
    if sigma < MIN_SIGMA:
        return img
    m = fov.astype(np.float32)
    num = gaussian_blur(img * m[..., None], sigma)
    den = gaussian_blur(m, sigma)
    return num / np.maximum(den, 1e-3)[..., None]


def apply(image: np.ndarray, fov: np.ndarray, params: dict,
          offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Degrade an RGB uint8 image inside its FOV with the given parameters (pure).

    ``offset``: position of ``image``'s top-left pixel in the image the parameters were
    drawn for (a patch cut from a larger, virtual image)."""
    grey_input = image.ndim == 2
    img = image.astype(np.float32) * (1.0 / 255.0)
    if grey_input:
        img = np.repeat(img[..., None], 3, axis=2)
    if "illumination" in params["types"]:
        img = _illumination(img, fov, params["illumination"], offset)
    if "spots" in params["types"]:
        img = _spots(img, params["spots"], offset)
    if "blur" in params["types"]:
        img = _blur(img, fov, params["blur"]["sigma"])
    out = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    out[~fov] = 0
    if grey_input:
        out = out[..., 0]
    return out


def degrade(image: np.ndarray, fov: np.ndarray, rng: np.random.Generator,
            types: list[str] | None = None, allowed=TYPES,
            severity: float | dict | None = None) -> tuple[np.ndarray, dict]:
    """Draw parameters (``sample``), scale them by ``severity`` (``with_severity``), apply."""
    params = with_severity(sample(rng, image.shape[0], image.shape[1], fov, types, allowed),
                           severity)
    return apply(image, fov, params), params
