"""Paired comparison of pretrained encoders on held-out patches (the L1 claim).

    python -m comcl.experiments.encoder_compare --encoder comcl=models/encoder.pt \
        --encoder simclr=/tmp/simclr/encoder.pt --encoder random=none

For each encoder: kNN (k=5, cosine) on backbone features of the probe's held-out patches
(the images ``pretrain.probe_fraction`` holds out, never trained on), the training
patches as memory, BatchNorm re-estimated on them (``comcl.pretraining.probe``). Tasks:
``lesion_vs_lq_healthy`` (HL + LL vs LH: the quality level's claim that lesions must
not look like low-quality healthy patches), ``lesion_vs_healthy`` (all pools) and
``lq_lesion_vs_healthy`` (LL vs LH). Each pair's difference in balanced accuracy gets a
95% paired bootstrap interval over held-out **images** (patches of one image are not
independent), the same resamples for every encoder. ``random=none`` is a randomly
initialised backbone (seeded). Writes a JSON report and prints a table.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import click
import numpy as np
import torch

from comcl.common.params import Params
from comcl.common.placement import Placement
from comcl.detection import patch_store
from comcl.pretraining import probe
from comcl.pretraining.encoder import ContrastiveModel, build_backbone, load_encoder

TASKS = {"lesion_vs_lq_healthy": ("HL", "LL", "LH"),
         "lesion_vs_healthy": ("HL", "LL", "HH", "LH"),
         "lq_lesion_vs_healthy": ("LL", "LH")}


def load_model(spec: str, backbone: str, size: int, seed: int) -> tuple[ContrastiveModel, int]:
    """(model, its pretraining input size); ``none``: a seeded random ``backbone``."""
    torch.manual_seed(seed)
    if spec == "none":
        return ContrastiveModel(build_backbone(backbone)), size
    blob = load_encoder(spec)
    net = build_backbone(blob["backbone"])
    if "state_dict" in blob:
        net.load_state_dict(blob["state_dict"])
    return ContrastiveModel(net), int(blob.get("input_size", size))


def balanced(correct: np.ndarray, y: np.ndarray, weights: np.ndarray) -> float:
    """Balanced accuracy with per-patch bootstrap multiplicities ``weights``."""
    accs = [np.sum(correct[y == c] * weights[y == c]) / max(np.sum(weights[y == c]), 1e-12)
            for c in (0, 1)]
    return float(np.mean(accs))


def compare(results: dict, images: np.ndarray, n_boot: int, seed: int) -> dict:
    """results: name -> DataFrame(pool, lesion, correct). Paired image bootstrap."""
    rng = np.random.default_rng(seed)
    uniq, inv = np.unique(images, return_inverse=True)
    draws = [np.bincount(rng.integers(0, len(uniq), len(uniq)), minlength=len(uniq))[inv]
             for _ in range(n_boot)]
    out = {}
    for task, pools in TASKS.items():
        rows = np.isin(next(iter(results.values()))["pool"].to_numpy(), pools)
        point, boot = {}, {}
        for name, df in results.items():
            c, y = df["correct"].to_numpy()[rows], df["lesion"].to_numpy()[rows]
            point[name] = balanced(c, y, np.ones(rows.sum()))
            boot[name] = np.array([balanced(c, y, w[rows]) for w in draws])
        pairs = {}
        for a, b in itertools.combinations(results, 2):
            d = boot[a] - boot[b]
            lo, hi = np.percentile(d, [2.5, 97.5])
            pairs[f"{a} - {b}"] = {"delta": round(point[a] - point[b], 4),
                                   "ci95": [round(float(lo), 4), round(float(hi), 4)],
                                   "decided": bool(lo > 0 or hi < 0)}
        out[task] = {"patches": int(rows.sum()),
                     "balanced_accuracy": {k: round(v, 4) for k, v in point.items()},
                     "paired": pairs}
    return out


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--encoder", "encoders", multiple=True, required=True,
              help="name=path/to/encoder.pt, or name=none for a random backbone.")
@click.option("--params", "params_path", default="params.yaml", show_default=True)
@click.option("--store", default="data/patches/store", show_default=True)
@click.option("--bootstrap", default=2000, show_default=True)
@click.option("--out", default=None, help="JSON report path.")
def main(encoders, params_path, store, bootstrap, out):
    params = Params.load(params_path)
    fraction = params.number("pretrain.probe_fraction", 0.0, 1.0)
    seed, size = params.integer("pretrain.seed"), params.integer("pretrain.input_size")
    backbone = params.string("pretrain.backbone")
    arr, index = patch_store.load(store)
    held = probe.probe_split(index, fraction, seed)
    place = Placement(torch.device("cpu"))
    results = {}
    for spec in encoders:
        name, path = spec.split("=", 1)
        model, input_size = load_model(path, backbone, size, seed)
        results[name] = probe.Probe(arr, index, held, input_size, place, seed, None).correct(model)
    report = compare(results, index["image_id"].to_numpy()[held], bootstrap, seed)
    text = json.dumps(report, indent=2)
    if out:
        Path(out).write_text(text + "\n")
    for task, res in report.items():
        click.echo(f"{task} ({res['patches']} held-out patches): {res['balanced_accuracy']}")
        for pair, v in res["paired"].items():
            click.echo(f"  {pair}: {v['delta']:+.3f} [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}]"
                       f"{'  decided' if v['decided'] else ''}")


if __name__ == "__main__":
    main()
