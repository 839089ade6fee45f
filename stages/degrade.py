"""DVC stage `degrade`: degrade high-quality images up to `degrade.target_ratio` per split."""
import click

from comcl.common import paths
from comcl.common.params import Params
from comcl.data.degrade import run
from stages.options import one_line_errors, params_option, workers_option


@click.command(help="""Degrade randomly chosen high-quality images of each split (fundus:
illumination, spots, blur, in any non-empty combination; parameters recorded per image)
until the split's low-quality fraction equals `degrade.target_ratio` (null: keep the
native ratio). Writes data/degraded/ and a before/after preview figure.
Reads params: degrade.""")
@params_option
@click.option("--prepared", default=paths.PREPARED, show_default=True,
              type=click.Path(file_okay=False, exists=True), help="Output of `prepare`.")
@click.option("--out", default=paths.DEGRADED, show_default=True,
              type=click.Path(file_okay=False), help="Output folder (replaced atomically).")
@click.option("--preview", default=f"{paths.PLOTS}/degrade/preview.png", show_default=True,
              help="Before/after figure ('' to skip).")
@workers_option
@one_line_errors
def main(params_path, prepared, out, preview, workers):
    fractions = run(Params.load(params_path), prepared, out, preview or None, workers)
    shown = ", ".join(f"{k} {v:.3f}" for k, v in sorted(fractions.items()))
    click.echo(f"degrade: low-quality fraction per split: {shown} -> {out}")


if __name__ == "__main__":
    main()
