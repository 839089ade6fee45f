"""Run the pipeline with a preset: ``python scripts/run_preset.py presets/NAME.yaml
[-S key=value ...] [--target STAGE] [--name EXP] [--queue] [--dry-run]``.

A preset is a partial params file (nested like ``params.yaml``). It is flattened into
``dvc exp run -S key=value`` overrides, the ``-S`` given here last (they win), so the
experiment is an ordinary DVC experiment: ``dvc exp show``, ``dvc metrics diff`` and
``scripts/compare`` see it, and its params are recorded in the experiment's params.yaml.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from comcl.experiments import presets


def command(preset: Path, extra: tuple[str, ...], target: str | None, name: str | None,
            queue: bool) -> list[str]:
    cmd = ["dvc", "exp", "run"]
    if queue:
        cmd.append("--queue")
    if name:
        cmd += ["-n", name]
    for item in presets.overrides(preset):
        cmd += ["-S", item]
    presets.check_sets(extra)
    for item in extra:
        cmd += ["-S", item]
    if target:
        cmd.append(target)
    return cmd


@click.command(help=__doc__)
@click.argument("preset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-S", "--set", "extra", multiple=True, help="key=value, after the preset's")
@click.option("--target", help="stage to run up to (default: the whole pipeline)")
@click.option("--name", help="experiment name (default: DVC's)")
@click.option("--queue", is_flag=True, help="queue it (dvc queue start runs it)")
@click.option("--dry-run", is_flag=True, help="print the dvc command only")
def main(preset, extra, target, name, queue, dry_run):
    cmd = command(preset, extra, target, name, queue)
    click.echo(" ".join(cmd))
    if not dry_run:
        sys.exit(subprocess.call(cmd))


if __name__ == "__main__":
    main()
