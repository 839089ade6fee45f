"""Paired comparison of experiments on the same test images, from what DVC stored.

    python -m comcl.experiments.compare baseline comcl-s0,comcl-s1,comcl-s2 [...]
    python -m comcl.experiments.compare --out report.json workspace path/to/folder

Each argument is one configuration: one source, or several separated by commas (its
seeds). A source is a DVC experiment name (``dvc exp show``), a git revision, a folder
holding ``metrics/predictions.parquet`` (or ``predictions.parquet``), the file itself, or
``workspace``; ``--protocol linear_probe`` reads the linear probe's predictions
(``metrics/linear_probe_predictions.parquet``) instead. Every configuration is compared
with the first, for each metric (grading:
quadratic weighted kappa and accuracy; multi-label: mean per-label kappa and accuracy),
overall and on the high- and low-quality images:
- the paired difference (the mean over seeds of each configuration's metric);
- its 95% paired-bootstrap interval: test images resampled (the same resample on both
  sides) and, where a configuration has several seeds, its seeds too, so that the
  interval holds the seed-to-seed variation (``paired_bootstrap``);
- each configuration's mean and standard deviation over its seeds;
- what that interval is over (``interval_over``): ``images and seeds`` where both sides
  have several seeds, ``images and the seeds of one side`` where one has, ``images only``
  with one seed a side. An interval over images only says nothing of seed-to-seed
  variation: a run compared with itself under another seed can exclude 0 (on the bench
  profile 2 of 3 such pairs did, docs/results_zen4.md, section B);
- a permutation p-value (``paired_permutation``): with several seeds a side, over the
  splits of the pooled runs (exact; 3 + 3 seeds give at best p = 0.1); with one seed a
  side, over per-image swaps of the two runs' predictions, which says nothing about
  seed-to-seed variation.
Nothing is re-trained. Runs on different test images, labels or quality labels are an
error naming both.
"""
from __future__ import annotations

import io
import itertools
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from comcl.common.errors import DataError
from comcl.diagnosis import predictions
from comcl.diagnosis.metrics import grading_from_confusion
from comcl.experiments.exp_refs import experiment_refs

PARTS = {"overall": None, "high_quality": "high", "low_quality": "low"}
METRICS = ("kappa", "accuracy")
FILE = Path("metrics") / "predictions.parquet"
# transfer protocol -> the per-image predictions its stage writes
PROTOCOLS = {"finetune": FILE,
             "linear_probe": Path("metrics") / "linear_probe_predictions.parquet"}


@dataclass
class Run:
    """One experiment's test predictions: labels (N, L) and predictions (N, L) as ints."""
    name: str
    image_id: np.ndarray
    quality: np.ndarray
    labels: np.ndarray
    preds: np.ndarray
    k: int   # classes per label (grading: the grades; multi-label: 2)


def load_run(source: str, cwd: Path = Path("."), file: Path = FILE) -> Run:
    """One experiment's predictions ``file`` (a protocol's, ``PROTOCOLS``) from a folder,
    a parquet file, a DVC experiment name or a git revision."""
    df, meta = predictions.read(_open(source, cwd, Path(file)))
    if meta.get("task") == "multilabel":
        classes = meta["classes"]
        labels = df[[f"label_{c}" for c in classes]].to_numpy(int)
        preds = df[[f"pred_{c}" for c in classes]].to_numpy(int)
        k = 2
    else:
        labels, preds = df[["label"]].to_numpy(int), df[["prediction"]].to_numpy(int)
        k = len(meta.get("classes") or []) or int(max(labels.max(), preds.max()) + 1)
    return Run(source, df["image_id"].to_numpy(str), df["quality"].to_numpy(str), labels,
               preds, k)


def _open(source: str, cwd: Path, file: Path):
    path = cwd / source
    if source == "workspace":
        path = cwd
    if path.is_dir():
        for cand in (path / file, path / file.name):
            if cand.is_file():
                return cand
        raise DataError(f"{path}: no {file} or {file.name} in this folder")
    if path.is_file():
        return path
    rev = _resolve_rev(source, cwd)
    blob = subprocess.run(["git", "show", f"{rev}:{file.as_posix()}"], cwd=cwd,
                          capture_output=True)
    if blob.returncode:
        raise DataError(f"{source}: revision {rev[:12]} has no {file}")
    return io.BytesIO(blob.stdout)


def _resolve_rev(name: str, cwd: Path) -> str:
    """A DVC experiment name (refs/exps/.../<name>, the newest) or any git revision."""
    refs = experiment_refs(cwd)
    if name in refs:
        return refs[name]
    rev = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"],
                         cwd=cwd, capture_output=True, text=True)
    if rev.returncode:
        raise DataError(f"{name}: not a folder, a file, a DVC experiment or a git revision")
    return rev.stdout.strip()


def check_same_test_set(runs: list[Run]) -> None:
    ref = runs[0]
    for run in runs[1:]:
        for what, a, b in (("test images", ref.image_id, run.image_id),
                           ("labels", ref.labels, run.labels),
                           ("quality labels", ref.quality, run.quality)):
            if a.shape != b.shape or not np.array_equal(a, b):
                raise DataError(f"{ref.name} and {run.name} were evaluated on different "
                                f"test sets (their {what} differ); compare runs of one "
                                "test set only")


def metric_values(labels: np.ndarray, preds: np.ndarray, k: int, weights: np.ndarray) -> dict:
    """Kappa and accuracy with per-image multiplicities ``weights``, from weighted
    confusion matrices (one per label, averaged)."""
    out = {m: 0.0 for m in METRICS}
    for j in range(labels.shape[1]):
        cm = np.bincount(labels[:, j] * k + preds[:, j], weights=weights,
                         minlength=k * k).reshape(k, k)
        res = grading_from_confusion(cm)
        for m in METRICS:
            out[m] += res[m] / labels.shape[1]
    return out


def config_metric(runs: list[Run], rows: np.ndarray, weights: np.ndarray,
                  picks: np.ndarray | None = None) -> dict:
    """The mean over seeds (``picks``: a resample of them) of each run's metric."""
    chosen = runs if picks is None else [runs[i] for i in picks]
    vals = [metric_values(r.labels[rows], r.preds[rows], r.k, weights) for r in chosen]
    return {m: float(np.mean([v[m] for v in vals])) for m in METRICS}


def bootstrap_draw(rng: np.random.Generator, n: int, sides) -> tuple[np.ndarray, list]:
    """One resample: multiplicities of ``n`` test images (shared by every side) and, per
    side with several seeds, the seeds drawn (None for a single seed)."""
    w = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
    return w, [rng.integers(0, len(s), len(s)) if len(s) > 1 else None for s in sides]


def paired_bootstrap(a: list[Run], b: list[Run], rows: np.ndarray, n_boot: int,
                     rng: np.random.Generator) -> dict:
    """{metric: (B,) differences mean_a - mean_b} over resamples of the test images
    (``rows``; the same for both sides) and, for a side with several seeds, of its seeds:
    the interval then holds the seed-to-seed variation too, not only the images'."""
    out = {m: np.empty(n_boot) for m in METRICS}
    for i in range(n_boot):
        w, (sa, sb) = bootstrap_draw(rng, len(rows), (a, b))
        ma, mb = config_metric(a, rows, w, sa), config_metric(b, rows, w, sb)
        for m in METRICS:
            out[m][i] = ma[m] - mb[m]
    return out


def paired_permutation(a: list[Run], b: list[Run], rows: np.ndarray, n_perm: int,
                       rng: np.random.Generator) -> dict:
    """{metric: two-sided p-value} of the observed difference.

    With several seeds on both sides the runs are the exchangeable units: every split of
    the pooled runs into groups of the two sizes (exact; the smallest p is then
    2 / C(n_a + n_b, n_a)). With one seed a side, the two predictions of each image are
    swapped at random (exact when 2^images <= ``n_perm``); that p holds for these two
    runs, not for their configurations."""
    ones = np.ones(len(rows))
    observed = {m: config_metric(a, rows, ones)[m] - config_metric(b, rows, ones)[m]
                for m in METRICS}
    if len(a) > 1 and len(b) > 1:
        return _run_permutation(a, b, rows, observed)
    return _image_permutation(a[0], b[0], rows, n_perm, rng, observed)


def _run_permutation(a, b, rows, observed) -> dict:
    pooled, ones = a + b, np.ones(len(rows))
    per_run = [metric_values(r.labels[rows], r.preds[rows], r.k, ones) for r in pooled]
    hits, total = {m: 0 for m in METRICS}, 0
    for group in itertools.combinations(range(len(pooled)), len(a)):
        rest = [i for i in range(len(pooled)) if i not in group]
        total += 1
        for m in METRICS:
            d = np.mean([per_run[i][m] for i in group]) - np.mean([per_run[i][m] for i in rest])
            hits[m] += abs(d) >= abs(observed[m]) - 1e-12
    return {m: hits[m] / total for m in METRICS}


def _image_permutation(ra: Run, rb: Run, rows, n_perm, rng, observed) -> dict:
    n, ones = len(rows), np.ones(len(rows))
    labels, pa, pb = ra.labels[rows], ra.preds[rows], rb.preds[rows]
    if 2 ** n <= n_perm:
        swaps = (np.array(s, bool) for s in itertools.product((False, True), repeat=n))
        total = 2 ** n
    else:
        swaps = (rng.random(n) < 0.5 for _ in range(n_perm))
        total = n_perm
    hits = {m: 0 for m in METRICS}
    for swap in swaps:
        xa, xb = np.where(swap[:, None], pb, pa), np.where(swap[:, None], pa, pb)
        ma, mb = metric_values(labels, xa, ra.k, ones), metric_values(labels, xb, rb.k, ones)
        for m in METRICS:
            hits[m] += abs(ma[m] - mb[m]) >= abs(observed[m]) - 1e-12
    return {m: hits[m] / total for m in METRICS}


# interval_over -> (mark after the interval, footnote) where it does not hold both sides' seeds
PARTIAL_INTERVALS = {
    "images only": ("¹", "¹ One seed a side: the interval is over test images only and holds "
                    "no seed-to-seed variation; the p-value swaps the two runs' predictions "
                    "per image."),
    "images and the seeds of one side": ("²", "² One side has one seed: the interval holds "
                                         "the other side's seed-to-seed variation, not this "
                                         "one's."),
    "images and the seeds of some cells": ("³", "³ Some of the four cells have one seed: the "
                                           "interval holds the seed-to-seed variation of the "
                                           "cells with several, not of the others.")}


def interval_over(*sides: list) -> str:
    """What the paired bootstrap resamples for sides (lists of runs) with these many seeds."""
    several = sum(len(side) > 1 for side in sides)
    if several == 0:
        return "images only"
    if several == len(sides):
        return "images and seeds"
    return ("images and the seeds of one side" if len(sides) == 2
            else "images and the seeds of some cells")


def marked_interval(delta: float, ci95: list, over: str, used: set) -> str:
    """``+d [lo, hi]`` with the footnote mark of an interval over ``over`` (none where it
    holds every seed); ``over`` is recorded in ``used`` for ``interval_notes``."""
    used.add(over)
    mark = PARTIAL_INTERVALS.get(over, ("",))[0]
    return f"{delta:+.3f} [{ci95[0]:+.3f}, {ci95[1]:+.3f}]{' ' + mark if mark else ''}"


def interval_notes(used: set) -> list[str]:
    """The footnotes of the partial intervals in ``used``, in a fixed order."""
    return [note for kind, (_, note) in PARTIAL_INTERVALS.items() if kind in used]


def compare(configs: dict[str, list[Run]], n_boot: int = 2000, n_perm: int = 2000,
            seed: int = 0) -> dict:
    """Each configuration against the first one, per part and metric."""
    every = [r for runs in configs.values() for r in runs]
    check_same_test_set(every)
    quality = every[0].quality
    names = list(configs)
    report = {"reference": names[0], "images": int(len(quality)), "parts": {}}
    for part, q in PARTS.items():
        rows = np.flatnonzero(quality == q) if q else np.arange(len(quality))
        if not len(rows):
            continue
        ones = np.ones(len(rows))
        entry = {"images": int(len(rows)), "configs": {}, "vs_reference": {}}
        for name, runs in configs.items():
            vals = [metric_values(r.labels[rows], r.preds[rows], r.k, ones) for r in runs]
            entry["configs"][name] = {
                m: {"mean": round(float(np.mean([v[m] for v in vals])), 4),
                    "sd": round(float(np.std([v[m] for v in vals], ddof=1)), 4)
                    if len(vals) > 1 else None, "seeds": len(vals)} for m in METRICS}
        for name in names[1:]:
            rng = np.random.default_rng(seed)
            a, b = configs[name], configs[names[0]]
            boot = paired_bootstrap(a, b, rows, n_boot, rng)
            perm = paired_permutation(a, b, rows, n_perm, np.random.default_rng(seed + 1))
            obs_a, obs_b = config_metric(a, rows, ones), config_metric(b, rows, ones)
            entry["vs_reference"][name] = {m: {
                "delta": round(obs_a[m] - obs_b[m], 4),
                "ci95": [round(float(x), 4) for x in np.percentile(boot[m], [2.5, 97.5])],
                "p_permutation": round(perm[m], 4), "interval_over": interval_over(a, b)}
                for m in METRICS}
        report["parts"][part] = entry
    return report


def markdown(report: dict) -> str:
    ref = report["reference"]
    lines = [f"Paired against `{ref}` on {report['images']} test images.", "",
             "| part | metric | config | mean ± sd (seeds) | Δ vs reference [95% CI] | p |",
             "| --- | --- | --- | --- | --- | --- |"]
    used = set()
    for part, entry in report["parts"].items():
        for m in METRICS:
            for name, vals in entry["configs"].items():
                v = vals[m]
                sd = f" ± {v['sd']:.3f}" if v["sd"] is not None else ""
                d = entry["vs_reference"].get(name, {}).get(m)
                delta = (marked_interval(d["delta"], d["ci95"], d["interval_over"], used)
                         if d else "—")
                p = f"{d['p_permutation']:.3f}" if d and d["p_permutation"] is not None else "—"
                lines.append(f"| {part} ({entry['images']}) | {m} | {name} | "
                             f"{v['mean']:.3f}{sd} ({v['seeds']}) | {delta} | {p} |")
    notes = interval_notes(used)
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


@click.command(help=__doc__.split("\n\n")[0])
@click.argument("configs", nargs=-1, required=True)
@click.option("--bootstrap", default=2000, show_default=True, help="Bootstrap resamples.")
@click.option("--permutations", default=2000, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="JSON report.")
@click.option("--protocol", type=click.Choice(sorted(PROTOCOLS)), default="finetune",
              show_default=True, help="Whose predictions: the fine-tuned classifier "
              "(evaluate) or the linear probe on the frozen encoder (linear_probe).")
def main(configs, bootstrap, permutations, seed, out, protocol):
    if len(configs) < 2:
        raise click.UsageError("give at least two configurations")
    try:
        runs = {c: [load_run(s, file=PROTOCOLS[protocol]) for s in c.split(",")]
                for c in configs}
        report = compare(runs, bootstrap, permutations, seed)
    except DataError as exc:
        raise click.ClickException(str(exc)) from None
    if out:
        Path(out).write_text(json.dumps(report, indent=2) + "\n")
    click.echo(markdown(report))


if __name__ == "__main__":
    main()
