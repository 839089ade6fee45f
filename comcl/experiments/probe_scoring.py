"""How the linear probe's C is chosen, measured: one feature pass per encoder, every scoring.

    python -m comcl.experiments.probe_scoring --params params.yaml \
        --encoder v2-s0=/tmp/enc/v2-s0.pt --encoder v3-s0=models/encoder.pt --out report.json

For each encoder the ``linear_probe`` stage's features (``linear_probe.features``: BatchNorm
re-estimated on the training images, standardised on train) are computed once; then, for
each cross-validation scoring in ``linear_probe.SCORINGS``, the C it chooses on the
training images and the test kappa (overall, high and low quality) of that choice; and, for
reference, the test kappa of every fixed C of ``linear_probe.Cs`` (which no protocol may
pick by: it is test data). Grading data only. Prints a table and writes a JSON report.
"""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from comcl.common import manifest
from comcl.common.atomic import write_text
from comcl.common.params import Params
from comcl.common.placement import Placement, default_device, setup_threads
from comcl.diagnosis import classifier, linear_probe
from comcl.diagnosis.metrics import grading_metrics
from comcl.diagnosis.training_set import read_training


def kappas(y: np.ndarray, pred: np.ndarray, quality: np.ndarray, k: int) -> dict:
    """Quadratic kappa overall and per quality (``HQ`` / ``LQ``)."""
    out = {"overall": grading_metrics(y, pred, k)["kappa"]}
    for q, value in (("HQ", "high"), ("LQ", "low")):
        m = quality == value
        if m.any():
            out[q] = grading_metrics(y[m], pred[m], k)["kappa"]
    return {name: round(v, 4) for name, v in out.items()}


def score_encoder(x_train, y_train, x_test, y_test, quality, k: int, cs, folds: int,
                  seed: int, class_weight) -> dict:
    """Per scoring: the chosen C and its test kappas; per fixed C: its test kappas."""
    out = {"by_scoring": {}, "by_C": {}}
    for name in linear_probe.SCORINGS:
        model = linear_probe.fit_logistic(x_train, y_train, cs, folds, seed, class_weight, name)
        prob = linear_probe.class_probabilities(model, x_test, np.unique(y_train), k)
        out["by_scoring"][name] = {"C": float(model.C),
                                   **kappas(y_test, prob.argmax(1), quality, k)}
    for c in cs:
        model = linear_probe.fit_logistic(x_train, y_train, [c], folds, seed, class_weight)
        prob = linear_probe.class_probabilities(model, x_test, np.unique(y_train), k)
        out["by_C"][str(c)] = kappas(y_test, prob.argmax(1), quality, k)
    return out


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True,
              type=click.Path(exists=True, dir_okay=False), help="linear_probe.* are read here.")
@click.option("--splits", default="data/splits", show_default=True, type=click.Path(exists=True))
@click.option("--degraded", default="data/degraded", show_default=True,
              type=click.Path(exists=True))
@click.option("--encoder", "encoders", multiple=True, required=True,
              help="NAME=PATH of an encoder.pt; repeat.")
@click.option("--out", default=None, help="JSON report.")
def main(params_path, splits, degraded, encoders, out):
    """Compare the linear probe's C-selection scorings on the same features."""
    params = Params.load(params_path)
    cs = params.number_list("linear_probe.Cs", lo=1e-6)
    folds = params.integer("linear_probe.cv_folds", lo=2)
    seed = params.integer("linear_probe.seed")
    size = params.integer("linear_probe.image_size", lo=32, hi=2048)
    weights = params.choice("linear_probe.class_weights", classifier.CLASS_WEIGHTS,
                            default="none")
    setup_threads()
    place = Placement.resolve(default_device())
    splits, degraded = Path(splits), Path(degraded)
    info = manifest.read_info(degraded)
    train, _ = read_training(splits)
    test = manifest.read(splits / "test.parquet", splits=("test",))
    report = {}
    for spec in encoders:
        name, _, path = spec.partition("=")
        cfg, x_train, x_test = linear_probe.features(path, info, degraded, train, test, size,
                                                     place)
        if cfg.task != "grading":
            raise click.UsageError(f"{path}: probe_scoring measures grading data only")
        report[name] = score_encoder(
            x_train, classifier.targets(train, cfg).astype(int), x_test,
            classifier.targets(test, cfg).astype(int), test["quality"].to_numpy(),
            len(cfg.classes), cs, folds, seed, None if weights == "none" else weights)
        row = report[name]["by_scoring"]
        click.echo(f"{name}: " + "; ".join(f"{s} C={r['C']:g} kappa {r['overall']:.3f} "
                                           f"(HQ {r.get('HQ', float('nan')):.3f}, "
                                           f"LQ {r.get('LQ', float('nan')):.3f})"
                                           for s, r in row.items()))
    if out:
        write_text(out, json.dumps(report, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
