"""DVC stage `linear_probe`: frozen encoder + logistic regression, test metrics per quality."""
import click

from comcl.common import paths
from comcl.common.params import Params
from comcl.diagnosis.linear_probe import run
from stages.options import (
    degraded_option,
    one_line_errors,
    params_option,
    splits_option,
    workers_option,
)


@click.command(help="""Linear-probe transfer: freeze models/encoder.pt, re-estimate its
BatchNorm statistics on the training images, fit a logistic regression on its features
(C by cross-validation on the training images), and report test metrics overall and per
quality, with 95% bootstrap intervals, in metrics/linear_probe.json; per-image predictions
in metrics/linear_probe_predictions.parquet (as evaluate's, for the comparison command).
Reads params: linear_probe.""")
@params_option
@splits_option
@degraded_option
@click.option("--encoder", default=f"{paths.MODELS}/encoder.pt", show_default=True)
@click.option("--metrics", default=f"{paths.METRICS}/linear_probe.json", show_default=True)
@click.option("--predictions", default=f"{paths.METRICS}/linear_probe_predictions.parquet",
              show_default=True, help="Per-image predictions ('' to skip).")
@workers_option
@one_line_errors
def main(params_path, splits, degraded, encoder, metrics, predictions, workers):
    res = run(Params.load(params_path), splits, degraded, encoder, metrics, workers,
              predictions_out=predictions or None)
    shown = ", ".join(f"{k}: kappa {v['kappa']}" for k, v in res.items()
                      if isinstance(v, dict) and "kappa" in v)
    click.echo(f"linear_probe: {shown} (C {res['chosen_C']}) -> {metrics}")


if __name__ == "__main__":
    main()
