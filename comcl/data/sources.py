"""Data sources for `prepare`: what each one must provide, and the registry by name.

A main source (``data.source``) gives a ``Source``: picklable ``jobs`` and a module-level
``render(job)`` that returns one manifest row (``image_id``, ``split`` train/test,
``quality``, ``quality_code``, ``lesion``, ``label`` or ``labels``, ``source``, ``width``,
``height``, optional ``group``, ...) plus the encoded ``image``, ``fov`` and
``lesion_mask`` bytes (``comcl.imaging.imagestore``); and ``info``, the ``dataset.json`` content
(``modality`` fundus/xray, ``task`` grading/multilabel, ``classes``, ``channels``).

An auxiliary source (``data.aux_source``, the detector's annotated set) gives the same,
where each rendered result also holds ``boxes``: a list of dicts with ``lesion_class``,
``x0``, ``y0``, ``x1``, ``y1`` (exclusive) and ``area``, in stored-image pixels; and
``classes``, the detector's class names in order.

Sources: ``synthetic`` (``comcl.data.synth_dataset``; ``synthetic.profile: chest`` goes to
``comcl.data.synth_chest``), ``eyeq`` (``comcl.data.source_eyeq``), ``chestxray14``
(``comcl.data.source_chestxray14``); auxiliary: ``synthetic``, ``idrid``
(``comcl.data.source_idrid``), ``chestxray14_boxes`` (``comcl.data.source_chestxray14_boxes``). The real
ones share ``comcl.data.source_files`` (paths, image indexes, ``data.on_missing``).
"""
from __future__ import annotations

from comcl.common.errors import ParamError
from comcl.common.params import Params
from comcl.data import (
    source_chestxray14,
    source_chestxray14_boxes,
    source_eyeq,
    source_idrid,
    synth_dataset,
)
from comcl.data.source_types import AuxSource, Source

MAIN_SOURCES = ("synthetic", "eyeq", "chestxray14")
AUX_SOURCES = ("synthetic", "idrid", "chestxray14_boxes")
_MAIN = {"synthetic": synth_dataset.main_source, "eyeq": source_eyeq.main_source,
         "chestxray14": source_chestxray14.main_source}
_AUX = {"synthetic": synth_dataset.aux_source, "idrid": source_idrid.aux_source,
        "chestxray14_boxes": source_chestxray14_boxes.aux_source}


def main_source(name: str, params: Params) -> Source:
    if name != "chestxray14" and params.raw("data.quality_csv", None) is not None:
        raise ParamError("data.quality_csv", f"applies to data.source: chestxray14 only "
                                             f"(data.source is {name}); set it to null")
    return _MAIN[name](params)


def aux_source(name: str, params: Params) -> AuxSource:
    return _AUX[name](params)
