"""DVC stage `build_patches`: all lesion and healthy windows into one uint8 array."""
import click

from comcl.common import paths
from comcl.common.text import plural
from comcl.detection.patch_store import build
from stages.options import degraded_option, one_line_errors


@click.command(help="""Cut every lesion window (detect) and healthy window (crop_healthy) once
into data/patches/store/patches.npy (N x size x size x C, uint8) with index.parquet
(pool HL/LL/HH/LH, image, window, class, quality), so that pretraining reads patches at
memory speed; draws a grid of windows per class and quality. Reads no params.""")
@click.option("--lesion-boxes", default=f"{paths.PATCHES}/lesion_boxes.parquet", show_default=True,
              type=click.Path(dir_okay=False, exists=True))
@click.option("--healthy-boxes", default=f"{paths.PATCHES}/healthy_boxes.parquet",
              show_default=True, type=click.Path(dir_okay=False, exists=True))
@degraded_option
@click.option("--out", default=f"{paths.PATCHES}/store", show_default=True)
@click.option("--figure", default=f"{paths.PLOTS}/patches/windows.png", show_default=True,
              help="Grid of windows ('' to skip).")
@one_line_errors
def main(lesion_boxes, healthy_boxes, degraded, out, figure):
    res = build(lesion_boxes, healthy_boxes, degraded, out, figure or None)
    click.echo(f"build_patches: {plural(res['patches'], 'patch', 'patches')} "
               f"{res['per_pool']} -> {out}")


if __name__ == "__main__":
    main()
