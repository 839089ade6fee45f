"""Run ``stages.pretrain`` once per recipe variant and tabulate the held-out outcome.

``python scripts/pretrain_variants.py --out DIR [--params params.yaml] [--parallel N]
[--device auto|cpu] VARIANT ...`` where a VARIANT is ``name`` (the params as they are) or
``name:key=value;key=value`` (dotted keys, values in YAML: ``spl.enabled=false``,
``pretrain.epochs=20``). Each variant writes its params copy, encoder, metrics, log and
every probe of the run (``probes.json``, no dvclive needed) under ``DIR/name/``; ``DIR/table.md`` gets one row per variant: steps,
seconds, the held-out loss / chance per level and the kNN probes at the last probe
(docs/pretraining.md explains them). Nothing in the repository's outputs is touched. Runs
``--parallel`` variants at once (on a GPU machine; keep 1 on two cores).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import yaml

COLUMNS = ("steps", "seconds", "L1", "L2", "L3", "kNN", "LQ only", "lesion vs LQ healthy")


def parse(variant: str) -> tuple[str, dict]:
    name, _, rest = variant.partition(":")
    sets = {}
    for item in filter(None, rest.split(";")):
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{variant}: expected key=value, got {item!r}")
        sets[key.strip()] = yaml.safe_load(value)
    return name, sets


def with_overrides(base: dict, sets: dict) -> dict:
    out = json.loads(json.dumps(base))
    for key, value in sets.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise click.BadParameter(f"{key}: no section {part!r} in the params")
            node = node[part]
        if parts[-1] not in node:
            raise click.BadParameter(f"{key}: no such key in the params")
        node[parts[-1]] = value
    return out


def row(name: str, folder: Path, seconds: float) -> str:
    m = json.loads((folder / "pretrain.json").read_text())
    last = m.get("probe_last", {})
    held = last.get("heldout", {})
    cells = [m.get("steps"), f"{seconds:.0f}",
             *(f"{held[k]['ratio']:.2f}" if k in held else "-" for k in ("l1", "l2", "l3")),
             *(f"{last.get(k, float('nan')):.3f}" for k in
               ("balanced_accuracy", "lq_balanced_accuracy", "lesion_vs_lq_healthy"))]
    return "| " + " | ".join(str(c) for c in [name, *cells]) + " |"


@click.command(help=__doc__)
@click.argument("variants", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--params", "params_path", default="params.yaml", show_default=True)
@click.option("--store", default="data/patches/store", show_default=True)
@click.option("--dataset-info", default="data/degraded/dataset.json", show_default=True)
@click.option("--parallel", default=1, show_default=True, type=click.IntRange(1, 32))
@click.option("--device", default="auto", type=click.Choice(["auto", "cpu"]))
@click.option("--set", "common", default="", help="key=value;... applied to every variant "
              "first (e.g. pretrain.precision=fp32 to compare GPU runs with CPU ones).")
def main(variants, out, params_path, store, dataset_info, parallel, device, common):
    base = with_overrides(yaml.safe_load(Path(params_path).read_text()), parse(":" + common)[1])
    out = Path(out)
    jobs = [parse(v) for v in variants]

    def one(job):
        name, sets = job
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "params.yaml").write_text(yaml.safe_dump(with_overrides(base, sets),
                                                           sort_keys=False))
        t0 = time.perf_counter()
        with open(folder / "log.txt", "w") as log:
            rc = subprocess.call(
                [sys.executable, "-m", "stages.pretrain", "--params", str(folder / "params.yaml"),
                 "--store", store, "--dataset-info", dataset_info,
                 "--encoder", str(folder / "encoder.pt"), "--metrics", str(folder / "pretrain.json"),
                 "--checkpoints", str(folder / "ckpt"), "--live-dir", "", "--device", device],
                stdout=log, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - t0
        ckpt = folder / "ckpt" / "last.pt"
        if ckpt.exists():   # every probe of the run (the curve), from the last checkpoint
            import torch
            history = json.loads(torch.load(ckpt, map_location="cpu",
                                            weights_only=True)["history"])
            (folder / "probes.json").write_text(json.dumps(history["probe"], indent=1) + "\n")
            ckpt.unlink()
        if rc:
            return f"| {name} | failed (exit {rc}, {folder / 'log.txt'}) |"
        return row(name, folder, seconds)

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        rows = list(pool.map(one, jobs))
    table = "\n".join(["| variant | " + " | ".join(COLUMNS) + " |",
                       "|" + " --- |" * (len(COLUMNS) + 1), *rows]) + "\n"
    (out / "table.md").write_text(table)
    click.echo(table)


if __name__ == "__main__":
    main()
