"""DVC stage `detect`: lesion windows on the HL and LL training images."""
import click

from comcl.common import paths
from comcl.common.params import Params
from comcl.common.text import plural
from comcl.detection.detect import run
from stages.options import degraded_option, one_line_errors, params_option, splits_option


@click.command(help="""Run the lesion detector on the HL and LL training images (batched,
inference mode, all cores), keep boxes with score > `detect.conf`, side at most
`patches.size` and at least `detect.border` px from the edges, and expand each to a
`patches.size` square window containing it. Writes data/patches/lesion_boxes.parquet,
metrics/detect.json (and, on data with lesion masks, window precision and lesion recall)
and a figure. Reads params: detect, patches.size.""")
@params_option
@splits_option
@degraded_option
@click.option("--model", default=f"{paths.MODELS}/detector.pt", show_default=True)
@click.option("--out", default=f"{paths.PATCHES}/lesion_boxes.parquet", show_default=True)
@click.option("--metrics", default=f"{paths.METRICS}/detect.json", show_default=True)
@click.option("--figure", default=f"{paths.PLOTS}/detect/windows.png", show_default=True,
              help="Boxes and windows on a few images ('' to skip).")
@one_line_errors
def main(params_path, splits, degraded, model, out, metrics, figure):
    res = run(Params.load(params_path), splits, degraded, model, out, metrics, figure or None)
    extra = (f", window precision {res['window_precision']}, lesion recall {res['lesion_recall']}"
             if "window_precision" in res else "")
    click.echo(f"detect: {plural(res['windows'], 'window')} on "
               f"{plural(res['images'], 'image')}{extra} -> {out}")


if __name__ == "__main__":
    main()
