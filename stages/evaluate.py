"""DVC stage `evaluate`: test metrics overall and per quality, plots and Grad-CAM."""
import click

from comcl.common import paths
from comcl.common.params import Params
from comcl.diagnosis.evaluate import run
from stages.options import (
    degraded_option,
    one_line_errors,
    params_option,
    splits_option,
    workers_option,
)


@click.command(help="""Evaluate models/classifier.pt on the test split: quadratic weighted
kappa, accuracy, macro F1 and per-class recall (grading) or per-label kappa and accuracy
and macro AUROC (multi-label), overall and on the high- and low-quality images, with
95% bootstrap intervals, in metrics/eval.json; per-image predictions in
metrics/predictions.parquet; dvclive confusion matrix or ROC curves;
Grad-CAM saliency of a fixed set of test images. Reads params: evaluate.""")
@params_option
@splits_option
@degraded_option
@click.option("--model", default=f"{paths.MODELS}/classifier.pt", show_default=True)
@click.option("--metrics", default=f"{paths.METRICS}/eval.json", show_default=True)
@click.option("--predictions", default=f"{paths.METRICS}/predictions.parquet",
              show_default=True, help="Per-image predictions ('' to skip).")
@click.option("--live-dir", default="dvclive/evaluate", show_default=True,
              help="dvclive folder for the plots ('' to skip).")
@click.option("--figure", default=f"{paths.PLOTS}/evaluate/gradcam.png", show_default=True,
              help="Grad-CAM figure ('' to skip).")
@workers_option
@one_line_errors
def main(params_path, splits, degraded, model, metrics, predictions, live_dir, figure,
         workers):
    res = run(Params.load(params_path), splits, degraded, model, metrics, live_dir or None,
              figure or None, workers, predictions_out=predictions or None)
    shown = ", ".join(f"{k}: kappa {v['kappa']} acc {v['accuracy']}" for k, v in res.items())
    click.echo(f"evaluate: {shown} -> {metrics}")


if __name__ == "__main__":
    main()
