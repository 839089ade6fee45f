"""Lesion classes and the bit-mask encoding of lesion pixels.

A lesion mask is one uint8 channel: bit i set where lesion class ``LESION_CLASSES[i]``
covers the pixel (classes may overlap). The optic disc is anatomy, not a lesion.
"""
from __future__ import annotations

import numpy as np

LESION_CLASSES = ("MA", "HE", "EX", "SE")
LESION_NAMES = {
    "MA": "microaneurysm",
    "HE": "haemorrhage",
    "EX": "hard exudate",
    "SE": "soft exudate",
}
# ChestX-ray8's eight diseases, the multi-label task and the chest detector classes.
CHEST_DISEASES = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass",
                  "Nodule", "Pneumonia", "Pneumothorax")


def class_bit(name: str) -> int:
    return 1 << LESION_CLASSES.index(name)


def class_mask(mask: np.ndarray, name: str) -> np.ndarray:
    """Boolean pixels of one lesion class in a bit mask."""
    return (mask & class_bit(name)) > 0
