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

Sources: ``synthetic`` (``comcl.synth_dataset``; ``synthetic.profile: chest`` goes to
``comcl.synth_chest``), ``eyeq`` (``comcl.source_eyeq``), ``chestxray14``
(``comcl.source_chestxray14``); auxiliary: ``synthetic``, ``idrid``
(``comcl.source_idrid``), ``chestxray14_boxes`` (``comcl.source_chestxray14``). The real
ones share ``comcl.source_files`` (paths, image indexes, ``data.on_missing``).
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
    if name != "chestxray14" and params.raw("data.quality_csv", None) is not None:
        from comcl.errors import ParamError
        raise ParamError("data.quality_csv", f"applies to data.source: chestxray14 only "
                                             f"(data.source is {name}); set it to null")
    if name == "synthetic":
        from comcl import synth_dataset
        return synth_dataset.main_source(params)
    if name == "eyeq":
        from comcl import source_eyeq
        return source_eyeq.main_source(params)
    if name == "chestxray14":
        from comcl import source_chestxray14
        return source_chestxray14.main_source(params)
    raise AssertionError(name)


def aux_source(name: str, params: Params) -> AuxSource:
    if name == "synthetic":
        from comcl import synth_dataset
        return synth_dataset.aux_source(params)
    if name == "idrid":
        from comcl import source_idrid
        return source_idrid.aux_source(params)
    if name == "chestxray14_boxes":
        from comcl import source_chestxray14
        return source_chestxray14.aux_source(params)
    raise AssertionError(name)


MAIN_SOURCES = ("synthetic", "eyeq", "chestxray14")
AUX_SOURCES = ("synthetic", "idrid", "chestxray14_boxes")
