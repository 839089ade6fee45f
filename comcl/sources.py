"""Data sources for `prepare`: what each one must provide, and the registry by name.

A main source (``data.source``) gives a ``Source``: picklable ``jobs`` and a module-level
``render(job)`` that returns one manifest row (``image_id``, ``split`` train/test,
``quality``, ``quality_code``, ``lesion``, ``label`` or ``labels``, ``source``, ``width``,
``height``, optional ``group``, ...) plus the encoded ``image``, ``fov`` and
``lesion_mask`` bytes (``comcl.imagestore``); and ``info``, the ``dataset.json`` content
(``modality`` fundus/xray, ``task`` grading/multilabel, ``classes``, ``channels``).

An auxiliary source (``data.aux_source``, the detector's annotated set) gives the same,
where each rendered result also holds ``boxes``: a list of dicts with ``lesion_class``,
``x0``, ``y0``, ``x1``, ``y1`` (exclusive) and ``area``, in stored-image pixels; and
``classes``, the detector's class names in order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from comcl.params import Params


@dataclass
class Source:
    jobs: list
    render: Callable[[object], dict]
    info: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. files skipped, printed by prepare


@dataclass
class AuxSource:
    jobs: list
    render: Callable[[object], dict]
    classes: list[str]
    notes: list[str] = field(default_factory=list)


def main_source(name: str, params: Params) -> Source:
    if name == "synthetic":
        from comcl import synth_dataset
        return synth_dataset.main_source(params)
    raise AssertionError(name)


def aux_source(name: str, params: Params) -> AuxSource:
    if name == "synthetic":
        from comcl import synth_dataset
        return synth_dataset.aux_source(params)
    raise AssertionError(name)


MAIN_SOURCES = ("synthetic",)
AUX_SOURCES = ("synthetic",)
