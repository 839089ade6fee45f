"""How the linear probe's C is chosen, measured: one feature pass per encoder, every scoring.

    python -m comcl.experiments.probe_scoring --params params.yaml \
        --encoder v2-s0=/tmp/enc/v2-s0.pt --encoder v3-s0=models/encoder.pt --out-dir DIR

For each encoder the ``linear_probe`` stage's features (``logistic_probe.features``: BatchNorm
re-estimated on the training images, standardised on train) are computed once; then, for
each cross-validation scoring in ``logistic_probe.SCORINGS``, the stage's regression
(``logistic_probe.Probe``) and its outputs, as the stage would write them with
``linear_probe.scoring`` set so (``DIR/NAME/SCORING/``: the comparison command reads them);
with ``--per-c``, for reference, the test kappa of every fixed C of ``linear_probe.Cs``
(which no protocol may pick by: it is test data). Prints a line per encoder and writes
``DIR/report.json``.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from comcl.common.atomic import write_text
from comcl.common.params import Params
from comcl.common.placement import Placement, default_device, setup_threads
from comcl.diagnosis import logistic_probe, predictions


def fixed_c_kappas(probe: logistic_probe.Probe, cfg, x_train, x_test, train, test) -> dict:
    """Test kappa overall / HQ / LQ of every fixed C (reference only: chosen on test)."""
    out = {}
    for c in probe.cs:
        fixed = logistic_probe.Probe([c], probe.folds, probe.seed, probe.class_weight,
                                     probe.scoring)
        result, _ = fixed.report(cfg, x_train, x_test, train, test, n_boot=0)
        out[str(c)] = {q: round(result[k]["kappa"], 4) for q, k in QUALITIES.items()
                       if k in result}
    return out


QUALITIES = {"overall": "overall", "HQ": "high_quality", "LQ": "low_quality"}


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True,
              type=click.Path(exists=True, dir_okay=False), help="linear_probe.* are read here.")
@click.option("--splits", default="data/splits", show_default=True, type=click.Path(exists=True))
@click.option("--degraded", default="data/degraded", show_default=True,
              type=click.Path(exists=True))
@click.option("--encoder", "encoders", multiple=True, required=True,
              help="NAME=PATH of an encoder.pt; repeat.")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False),
              help="Writes NAME/SCORING/linear_probe.json and linear_probe_predictions.parquet "
                   "(what the stage writes with linear_probe.scoring: SCORING) and report.json.")
@click.option("--per-c/--no-per-c", default=False, show_default=True,
              help="Also the test kappa of every fixed C (5 more fits per C).")
def main(params_path, splits, degraded, encoders, out_dir, per_c):
    """Compare the linear probe's C-selection scorings on the same features."""
    conf = logistic_probe.ProbeConfig.from_params(Params.load(params_path))
    setup_threads()
    place = Placement.resolve(default_device())
    splits, degraded, out_dir = Path(splits), Path(degraded), Path(out_dir)
    info, train, test = logistic_probe.probe_images(splits, degraded, conf.fraction, conf.seed)
    report = {}
    for spec in encoders:
        name, _, path = spec.partition("=")
        cfg, x_train, x_test = logistic_probe.features(path, info, degraded, train, test,
                                                       conf.size, place, seed=conf.seed)
        report[name] = {}
        for scoring in logistic_probe.SCORINGS:
            probe = conf.probe(scoring)
            result, frame = probe.report(cfg, x_train, x_test, train, test, conf.n_boot)
            result.update(label_fraction=conf.fraction)
            folder = out_dir / name / scoring
            folder.mkdir(parents=True, exist_ok=True)
            predictions.write(frame, cfg.task, cfg.classes,
                              folder / "linear_probe_predictions.parquet")
            write_text(folder / "linear_probe.json",
                       json.dumps(result, indent=2, sort_keys=True) + "\n")
            report[name][scoring] = {"C": result["chosen_C"],
                                     **{q: round(result[k]["kappa"], 4)
                                        for q, k in QUALITIES.items() if k in result}}
        if per_c:
            report[name]["per_C"] = fixed_c_kappas(probe, cfg, x_train, x_test, train, test)
        click.echo(f"{name}: " + "; ".join(
            f"{s} C={r['C']} kappa {r['overall']:.3f} (HQ {r.get('HQ', float('nan')):.3f}, "
            f"LQ {r.get('LQ', float('nan')):.3f})"
            for s, r in report[name].items() if s in logistic_probe.SCORINGS))
        write_text(out_dir / "report.json", json.dumps(report, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
