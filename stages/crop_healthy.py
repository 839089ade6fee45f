"""DVC stage `crop_healthy`: random windows from the HH and LH training images."""
import click

from comcl.common import paths
from comcl.common.params import Params
from comcl.common.text import plural
from comcl.detection.crop_healthy import run
from stages.options import degraded_option, one_line_errors, params_option, splits_option


@click.command(help="""Cut `patches.healthy_per_image` random `patches.size` windows from each
HH and LH training image, each with at least `patches.fov_min` of its pixels inside the
field of view. Writes data/patches/healthy_boxes.parquet.
Reads params: patches.""")
@params_option
@splits_option
@degraded_option
@click.option("--out", default=f"{paths.PATCHES}/healthy_boxes.parquet", show_default=True)
@one_line_errors
def main(params_path, splits, degraded, out):
    res = run(Params.load(params_path), splits, degraded, out)
    click.echo(f"crop_healthy: {plural(res['windows'], 'window')} from "
               f"{plural(res['images'], 'image')} -> {out}")


if __name__ == "__main__":
    main()
