"""dvclive logger for a stage: written where dvc.yaml declares it (no dvc.yaml of its own,
no experiment commit), or none when the stage runs without a log folder."""
from __future__ import annotations

from pathlib import Path


def open_live(live_dir: str | Path | None, resume: bool = False):
    """A ``dvclive.Live`` on ``live_dir`` (``resume`` keeps its earlier steps), or None."""
    if not live_dir:
        return None
    from dvclive import Live
    return Live(dir=str(live_dir), dvcyaml=None, save_dvc_exp=False, resume=resume)
