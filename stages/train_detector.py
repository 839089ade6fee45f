"""DVC stage `train_detector`: Faster R-CNN lesion detector on the auxiliary set."""
import click

from comcl.common import paths
from comcl.common.params import Params
from comcl.detection.train_detector import run
from stages.options import one_line_errors, params_option


@click.command(help="""Train the lesion detector (torchvision Faster R-CNN; `detector.arch`:
mobilenet_v3 or resnet50) on the auxiliary set's boxes (data/prepared/aux), random init
or a local `detector.weights` file; nothing is downloaded. Holds out
`detector.holdout_fraction` of the images and reports AP@0.5 per class and their mean
in metrics/detector.json, with a figure of predictions. Reads params: detector.""")
@params_option
@click.option("--prepared", default=paths.PREPARED, show_default=True,
              type=click.Path(file_okay=False, exists=True), help="Output of `prepare`.")
@click.option("--model", default=f"{paths.MODELS}/detector.pt", show_default=True,
              help="Where to write the detector.")
@click.option("--metrics", default=f"{paths.METRICS}/detector.json", show_default=True)
@click.option("--figure", default=f"{paths.PLOTS}/detector/predictions.png", show_default=True,
              help="Predictions vs ground truth ('' to skip).")
@click.option("--live-dir", default="dvclive/train_detector", show_default=True,
              help="dvclive folder for the training curves ('' to skip).")
@one_line_errors
def main(params_path, prepared, model, metrics, figure, live_dir):
    res = run(Params.load(params_path), prepared, model, metrics, figure or None, live_dir or None)
    click.echo(f"train_detector: AP@0.5 {res['ap50']}, mean {res['map50']} "
               f"({res['holdout_images']} held-out images) -> {model}")


if __name__ == "__main__":
    main()
