"""The X-ray degradation model (DESIGN §3): noise, blur, contrast loss; greyscale images.

Same API as ``comcl.data.degradation_fundus`` (``TYPES``, ``sample``, ``apply``, ``degrade``), so that
``degrade`` and its preview handle X-rays through ``comcl.data.degrade.model_for("xray")``.
Three types, in any non-empty combination, applied in the order contrast, blur, noise
(the detector's noise comes last), inside the field of view (an X-ray's FOV is the whole
image):

- ``contrast``: contrast loss, x -> m + c (x - m) about the mean m inside the FOV, with
  c ~ U(0.4, 0.75), plus a brightness shift U(-0.08, 0.08) (of the full range): an
  under- or over-exposed, washed-out film;
- ``blur``: Gaussian blur (kernel follows sigma), sigma ~ U(1.5, 4) px at 512 px, scaled
  with the image size: patient motion, scatter;
- ``noise``: additive white Gaussian noise, std ~ U(0.02, 0.06) of the full range
  (5-15 grey levels), from a recorded seed: quantum and electronic noise of a low dose.

``sample`` draws the parameters (a JSON-able dict, recorded per image); ``apply`` is a
pure function of (image, FOV, parameters): the same parameters, read back from JSON,
give the same bytes.
"""
from __future__ import annotations

import cv2
import numpy as np

from comcl.data.severity import scaled_sigma, severity_of

from comcl.data.degradation_fundus import MIN_SIGMA, choose_types

TYPES = ("noise", "blur", "contrast")
REFERENCE_SIZE = 512.0
ORDER = ("contrast", "blur", "noise")



def sample(rng: np.random.Generator, height: int, width: int, fov: np.ndarray,
           types: list[str] | None = None, allowed: tuple[str, ...] | list[str] = TYPES) -> dict:
    """Draw degradation parameters; ``types`` fixes the combination, else a random
    non-empty subset of ``allowed`` (each of the 2^k - 1 combinations equally likely)."""
    chosen = choose_types(rng, TYPES, types, allowed)
    scale = min(height, width) / REFERENCE_SIZE
    params: dict = {"types": chosen}
    if "contrast" in chosen:
        params["contrast"] = {"factor": float(rng.uniform(0.4, 0.75)),
                              "shift": float(rng.uniform(-0.08, 0.08))}
    if "blur" in chosen:
        params["blur"] = {"sigma": float(rng.uniform(1.5, 4.0) * scale)}
    if "noise" in chosen:
        params["noise"] = {"sigma": float(rng.uniform(0.02, 0.06)),
                           "seed": int(rng.integers(0, 2 ** 31 - 1))}
    return params


def with_severity(params: dict, severity: float | dict | None) -> dict:
    """``params`` with each degradation's strength scaled by its severity (1: unchanged,
    0: none): the contrast factor's and shift's distance from none, blur and noise sigma.
    ``severity``: one number, or a mapping type -> number (a missing type: 1)."""
    sev = severity_of(severity, TYPES)
    if all(v == 1.0 for v in sev.values()):
        return params
    out = {**params}
    if "contrast" in out:
        c, k = out["contrast"], sev["contrast"]
        out["contrast"] = {"factor": 1.0 + (c["factor"] - 1.0) * k, "shift": c["shift"] * k}
    if "blur" in out:
        out["blur"] = {"sigma": scaled_sigma(out["blur"]["sigma"], sev["blur"])}
    if "noise" in out:
        out["noise"] = {**out["noise"], "sigma": out["noise"]["sigma"] * sev["noise"]}
    return out


def _contrast(img: np.ndarray, fov: np.ndarray, p: dict) -> np.ndarray:
    m = float(img[fov].mean()) if fov.any() else float(img.mean())
    return (img - m) * p["factor"] + m + p["shift"]


def _blur(img: np.ndarray, fov: np.ndarray, sigma: float) -> np.ndarray:
    if sigma < MIN_SIGMA:
        return img
    if fov.all():
        return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    m = fov.astype(np.float32)
    num = cv2.GaussianBlur(img * (m if img.ndim == 2 else m[..., None]), (0, 0), sigma,
                           borderType=cv2.BORDER_REFLECT)
    den = np.maximum(cv2.GaussianBlur(m, (0, 0), sigma, borderType=cv2.BORDER_REFLECT), 1e-3)
    return num / (den if img.ndim == 2 else den[..., None])


def _noise(img: np.ndarray, p: dict) -> np.ndarray:
    field = np.random.default_rng(p["seed"]).standard_normal(img.shape[:2], dtype=np.float32)
    field *= p["sigma"]
    return img + (field if img.ndim == 2 else field[..., None])


def apply(image: np.ndarray, fov: np.ndarray, params: dict) -> np.ndarray:
    """Degrade a greyscale (or RGB) uint8 image inside its FOV with the given parameters."""
    img = image.astype(np.float32) * (1.0 / 255.0)
    for kind in ORDER:
        if kind not in params["types"]:
            continue
        if kind == "contrast":
            img = _contrast(img, fov, params["contrast"])
        elif kind == "blur":
            img = _blur(img, fov, params["blur"]["sigma"])
        else:
            img = _noise(img, params["noise"])
    out = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    out[~fov] = 0
    return out


def degrade(image: np.ndarray, fov: np.ndarray, rng: np.random.Generator,
            types: list[str] | None = None, allowed=TYPES,
            severity: float | dict | None = None) -> tuple[np.ndarray, dict]:
    params = with_severity(sample(rng, image.shape[0], image.shape[1], fov, types, allowed),
                           severity)
    return apply(image, fov, params), params
