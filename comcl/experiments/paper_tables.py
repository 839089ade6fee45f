"""The paper's Tables 1-3 as DVC experiments: queue the grid, render the results.

    python -m comcl.experiments.paper_tables queue --seeds 3  # dvc exp run --queue, cell x seed
        [--cells table2] [--preset presets/bench.yaml]       # a subset of cells, a profile
    dvc queue start -j 1                          # run them (dvc queue status to follow)
    python -m comcl.experiments.paper_tables render --claims > docs/results.md
    python -m comcl.experiments.paper_tables export docs/grids/NAME   # keep them in git
    python -m comcl.experiments.paper_tables render --claims --from-dir docs/grids/NAME

Seeds are a grid axis: ``--seeds N`` queues each cell as ``<cell>-s0`` .. ``<cell>-s<N-1>``
with ``pretrain.seed``, ``finetune.seed`` and ``linear_probe.seed`` set to k (the data,
the detector and the windows stay those of ``params.yaml``, so every seed is tested on the
same images).
``render`` groups the runs of a cell: mean ± sd over seeds (the 95% interval of a cell
with one run); ``--claims`` adds the paper's claims decided by paired comparisons
(``comcl.experiments.claims``) from each experiment's ``metrics/predictions.parquet``.

Each experiment sets every varied key explicitly (so the grid does not depend on what
``params.yaml`` holds): ``degrade.target_ratio``, ``pretrain.method``, ``spl.enabled``
and ``pretrain.levels.*``. Methods: baseline = no pretraining (``pretrain.method: none``),
basic CL = SimCLR instance discrimination, CoMCL = all three levels with SPL. Table 3's
CoMCL_v1..v3 read as level subsets: v1 = L2 (lesion level: HL vs HH), v2 = L1 + L2
(+ quality level), v3 = L1 + L2 + L3 (the full method). ``render`` reads
``dvc exp show --all-commits --json`` (the newest run of each name), or a folder written
by ``export`` (one sub-folder per experiment with its metrics, per-image predictions and
params: DVC experiments are local git refs that a fresh clone does not have, so a grid
whose results should outlive the checkout is exported and committed), and lays the tables
out like the paper's, with the paper's EyeQ numbers beside ours. Tables 2-3's ablations
also run at a degraded ratio (``--cells table2-70``: ``t2-70-no-spl``, ..; their CoMCL,
baseline and basic CL rows are Table 1's cells of that ratio); ``render`` gives them their
own tables and ``--claims`` their own claims where they ran. ``render --prefix A --prefix B``
reads each cell whole from the first family that has it (a baseline, which has no
pretraining, from a family that differs only in pretraining params). The paper's Table 2
header reads "ACC | Kappa" but its CoMCL row equals Table 1's Kappa | ACC; we print it
in Table 1's order.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import click
import numpy as np

from comcl.common.atomic import atomic_file
from comcl.experiments.claims import at_ratio
from comcl.experiments.exp_refs import experiment_refs

BASE = {"degrade.target_ratio": "null", "pretrain.method": "comcl", "spl.enabled": "true",
        "pretrain.levels.l1": "true", "pretrain.levels.l2": "true", "pretrain.levels.l3": "true"}
RATIOS = {"native": "null", "70": "0.7", "100": "1.0"}
METHODS = {"baseline": {"pretrain.method": "none"}, "basiccl": {"pretrain.method": "simclr"},
           "comcl": {}}


# linear_probe.seed draws the random-init encoder of a cell without pretraining (and the
# probe's folds): without it the baseline's linear probe was one draw for every seed
# (the same predictions for s0 and s1, docs/benchmark.md, "Tenth session")
SEED_KEYS = ("pretrain.seed", "finetune.seed", "linear_probe.seed")
SEEDED = re.compile(r"^(?P<cell>.+)-s(?P<seed>\d+)$")


def grid(seeds: int = 0, ratio_ablations: bool = False) -> dict[str, dict[str, str]]:
    """Experiment name -> params it sets: the 13 cells of the three tables (with
    ``ratio_ablations`` also Tables 2-3's ablations at 70% and 100% low quality), or with
    ``seeds`` >= 1 each cell once per seed (``<cell>-s<k>``, the seed keys set to k)."""
    base = {**cells(), **(ratio_ablation_cells() if ratio_ablations else {})}
    if seeds >= 1:
        return {f"{name}-s{k}": {**sets, **{key: str(k) for key in SEED_KEYS}}
                for name, sets in base.items() for k in range(seeds)}
    return base


def cell_of(name: str) -> str:
    """The grid cell an experiment belongs to (``t2-no-spl-s1`` -> ``t2-no-spl``)."""
    m = SEEDED.match(name)
    return m["cell"] if m else name


def cells() -> dict[str, dict[str, str]]:
    """Cell name -> params it sets (13 cells cover the three tables)."""
    exps = {}
    for rname, ratio in RATIOS.items():
        for mname, extra in METHODS.items():
            exps[f"t1-{rname}-{mname}"] = {**BASE, "degrade.target_ratio": ratio, **extra}
    exps["t2-no-spl"] = {**BASE, "spl.enabled": "false"}
    exps["t2-no-multilevel"] = {**BASE, "pretrain.method": "single_level"}
    exps["t3-v1"] = {**BASE, "pretrain.levels.l1": "false", "pretrain.levels.l3": "false"}
    exps["t3-v2"] = {**BASE, "pretrain.levels.l3": "false"}
    return exps


def ratio_ablation_cells() -> dict[str, dict[str, str]]:
    """Tables 2 and 3's ablations at a degraded ratio (``t2-70-no-spl``, ``t3-100-v1``, ..):
    the native cell's params with ``degrade.target_ratio`` of that ratio. Their CoMCL,
    baseline and basic CL rows are Table 1's cells of the ratio (``t1-70-comcl``, ..)."""
    native = cells()
    exps = {}
    for rname, ratio in RATIOS.items():
        if rname == "native":
            continue
        for cell in ("t2-no-spl", "t2-no-multilevel", "t3-v1", "t3-v2"):
            exps[at_ratio(cell, rname)] = {**native[cell], "degrade.target_ratio": ratio}
    return exps


# Paper numbers on EyeQ (kappa, accuracy).
PAPER_T1 = {"baseline": [(0.804, 0.783), (0.743, 0.715), (0.674, 0.662)],
            "basiccl": [(0.848, 0.832), (0.783, 0.761), (0.694, 0.672)],  # Lesion-base CL [11]
            "comcl": [(0.884, 0.872), (0.852, 0.837), (0.793, 0.776)]}
TABLE2 = [("Baseline (ResNet)", "t1-native-baseline", (0.804, 0.783)),
          ("Basic CL (SimCLR)", "t1-native-basiccl", (0.842, 0.827)),
          ("CoMCL w/o multi-level", "t2-no-multilevel", (0.859, 0.836)),
          ("CoMCL w/o SPL", "t2-no-spl", (0.868, 0.860)),
          ("CoMCL", "t1-native-comcl", (0.884, 0.872))]
TABLE3 = [("CoMCL_v1 (L2)", "t3-v1", (0.846, 0.835)),
          ("CoMCL_v2 (L1 + L2)", "t3-v2", (0.867, 0.856)),
          ("CoMCL_v3 (L1 + L2 + L3)", "t1-native-comcl", (0.884, 0.872))]


TABLE2_CELLS = tuple(cell for _, cell, _ in TABLE2)


def queue_commands(seeds: int = 0, only: tuple[str, ...] = (),
                   preset: list[str] | None = None, prefix: str = "",
                   extra: tuple[str, ...] = ()) -> list[list[str]]:
    """One ``dvc exp run --queue`` per experiment: the preset's overrides first (a profile
    such as ``presets/bench.yaml``), then ``extra`` (e.g. the low-label protocol's
    ``finetune.label_fraction=0.1``), then the cell's and the seed's (they win). ``only``
    keeps those cells (all 13 when empty); ``prefix`` starts every name (a family of
    experiments that ``render --prefix`` reads apart)."""
    known = {**cells(), **ratio_ablation_cells()}
    unknown = sorted(set(only) - set(known))
    if unknown:
        raise click.BadParameter(f"unknown cell {', '.join(unknown)}; cells: "
                                 f"{', '.join(known)}", param_hint="--cells")
    cmds = []
    for name, sets in grid(seeds, ratio_ablations=bool(set(only) - set(cells()))).items():
        if only and cell_of(name) not in only:
            continue
        cmd = ["dvc", "exp", "run", "--queue", "-n", prefix + name]
        for item in [*(preset or []), *extra]:
            cmd += ["-S", item]
        for k, v in sets.items():
            cmd += ["-S", f"{k}={v}"]
        cmds.append(cmd)
    return cmds


def _walk(node, out: dict, stamps: dict, file: str) -> None:
    """Collect {experiment name: data of metrics ``file``} from `dvc exp show -A --json`;
    when a name was run more than once (on several commits), the newest run wins."""
    if isinstance(node, list):
        for item in node:
            _walk(item, out, stamps, file)
        return
    if not isinstance(node, dict):
        return
    state = (node.get("executor") or {}).get("state")
    if state not in (None, "success"):
        return   # queued, running (shows its base commit's metrics) or failed
    name = node.get("name") or node.get("rev")
    data = node.get("data") or {}
    metrics = (data.get("metrics") or {}).get(file) or {}
    stamp = data.get("timestamp") or ""
    if name and metrics.get("data") and (name not in out or stamp > stamps[name]):
        out[name], stamps[name] = metrics["data"], stamp
    for key in ("experiments", "revs"):
        _walk(node.get(key), out, stamps, file)


def collect(show_json, file: str = "metrics/eval.json") -> dict[str, dict]:
    out: dict[str, dict] = {}
    _walk(show_json, out, {}, file)
    return out


def _as_runs(runs: list[dict] | dict | None) -> list[dict]:
    """One run (a dict), a cell's runs (a list) or none, as a list."""
    return [runs] if isinstance(runs, dict) else (runs or [])


def _probe(runs: list[dict] | dict | None) -> str:
    """The encoder's lesion-vs-healthy kNN probe accuracy before -> after pretraining
    (mean over seeds)."""
    runs = _as_runs(runs)
    pairs = [((r.get("probe_first") or {}).get("accuracy", float("nan")),
              r["probe_last"]["accuracy"]) for r in runs
             if "accuracy" in (r.get("probe_last") or {})]
    if not pairs:
        return "n/a"
    first, last = np.mean(pairs, axis=0)
    return f"{first:.3f} -> {last:.3f}"


def _heldout(runs: list[dict] | dict | None) -> str:
    """Each enabled level's held-out loss / chance at the end of pretraining (mean over
    seeds; 1 = chance, lower = the objective is learned), e.g. ``0.59 / 1.09 / 1.12``."""
    runs = _as_runs(runs)
    out = []
    for level in ("l1", "l2", "l3"):
        vals = [r["probe_last"]["heldout"][level]["ratio"] for r in runs
                if level in ((r.get("probe_last") or {}).get("heldout") or {})]
        out.append(f"{np.mean(vals):.2f}" if vals else "—")
    return "n/a" if set(out) == {"—"} else " / ".join(out)


def family_names(found, prefixes: tuple[str, ...]) -> dict[str, str]:
    """{name read as a cell run (``t1-70-comcl-s0``): experiment name} of the experiments
    whose names start with one of ``prefixes``. A cell comes whole from the first prefix
    that has it: seeds of two families are never mixed in one cell."""
    out: dict[str, str] = {}
    for prefix in prefixes:
        mine = {n[len(prefix):]: n for n in sorted(found) if n.startswith(prefix)}
        taken = {cell_of(short) for short in out}
        out.update({short: full for short, full in mine.items()
                    if cell_of(short) not in taken})
    return out


def group(results: dict) -> dict[str, list]:
    """{cell: [what each of its runs holds]} (seeds in name order)."""
    out: dict[str, list] = {}
    for name in sorted(results):
        out.setdefault(cell_of(name), []).append(results[name])
    return out


def _cell(runs: list[dict] | dict | None, part: str, key: str) -> str:
    """One run: value [95% CI]; several (seeds): mean ± sd (n)."""
    runs = _as_runs(runs)
    vals = [r[part][key] for r in runs if part in r and key in r[part]]
    if not vals:
        return "n/a"
    if len(vals) > 1:
        return f"{np.mean(vals):.3f} ± {np.std(vals, ddof=1):.3f} ({len(vals)} seeds)"
    m = next(r[part] for r in runs if part in r and key in r[part])
    lo, hi = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
    ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else ""
    return f"{m[key]:.3f}{ci}"


def render(results: dict[str, dict], probes: dict[str, dict] | None = None,
           linear: dict[str, dict] | None = None) -> str:
    """Tables 1-3 of the fine-tuned classifiers (``metrics/eval.json``), and with ``linear``
    (``metrics/linear_probe.json``) Table 2 again under the linear-probe protocol."""
    results = group(results)
    linear = group(linear or {})
    probes = group(probes or {})
    lines = ["## Table 1: low-quality ratio x method (test set, overall)", "",
             "| method | ratio | kappa [95% CI] | accuracy [95% CI] | kappa, low-quality images "
             "| paper kappa | paper acc |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    labels = {"baseline": "Baseline (ResNet)", "basiccl": "Basic CL (SimCLR)", "comcl": "CoMCL"}
    for m, label in labels.items():
        for (rname, shown), paper in zip((("native", "native"), ("70", "70%"), ("100", "100%")),
                                         PAPER_T1[m]):
            r = results.get(f"t1-{rname}-{m}")
            lines.append(f"| {label} | {shown} | {_cell(r, 'overall', 'kappa')} | "
                         f"{_cell(r, 'overall', 'accuracy')} | {_cell(r, 'low_quality', 'kappa')} "
                         f"| {paper[0]:.3f} | {paper[1]:.3f} |")
    ablations = set(ratio_ablation_cells())   # the cells that exist only at a degraded ratio
    tables = [("Table 2: ablations (native ratio)", TABLE2),
              ("Table 3: level subsets (native ratio)", TABLE3)]
    for rname in RATIOS:   # the ablations at a degraded ratio, where one of them ran
        for title, rows in (("Table 2: ablations", TABLE2), ("Table 3: level subsets", TABLE3)):
            moved = [(label, at_ratio(exp, rname), paper) for label, exp, paper in rows]
            if rname != "native" and any(results.get(exp) for _, exp, _ in moved
                                         if exp in ablations):
                tables.append((f"{title} ({rname}% low quality; paper: native)", moved))
    for title, rows in tables:
        lines += ["", f"## {title}", "",
                  "| method | kappa [95% CI] | accuracy [95% CI] | kappa, low-quality images "
                  "| kNN probe | held-out loss / chance, L1 / L2 / L3 | paper kappa | paper acc |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for label, exp, paper in rows:
            r = results.get(exp)
            lines.append(f"| {label} | {_cell(r, 'overall', 'kappa')} | "
                         f"{_cell(r, 'overall', 'accuracy')} | {_cell(r, 'low_quality', 'kappa')} "
                         f"| {_probe(probes.get(exp))} | {_heldout(probes.get(exp))} "
                         f"| {paper[0]:.3f} | {paper[1]:.3f} |")
    for rname in RATIOS:
        rows = [(label, at_ratio(exp, rname)) for label, exp, _ in TABLE2]
        if not any(linear.get(exp) for _, exp in rows) or (
                rname != "native" and not any(linear.get(exp) for _, exp in rows
                                              if exp in ablations)):
            continue
        where = "" if rname == "native" else f", {rname}% low quality"
        lines += ["", f"## Table 2, linear probe (frozen encoder + logistic regression{where})",
                  "", "| method | kappa | accuracy | kappa, high-quality images "
                  "| kappa, low-quality images |", "| --- | --- | --- | --- | --- |"]
        for label, exp in rows:
            r = linear.get(exp)
            lines.append(f"| {label} | {_cell(r, 'overall', 'kappa')} | "
                         f"{_cell(r, 'overall', 'accuracy')} | {_cell(r, 'high_quality', 'kappa')} "
                         f"| {_cell(r, 'low_quality', 'kappa')} |")
    return "\n".join(lines) + "\n"


# what ``export`` keeps of each experiment: everything ``render`` and ``compare`` read
EXPORTED = ("params.yaml", "metrics/eval.json", "metrics/pretrain.json",
            "metrics/linear_probe.json", "metrics/predictions.parquet",
            "metrics/linear_probe_predictions.parquet")
JSON_FILES = ("metrics/eval.json", "metrics/pretrain.json", "metrics/linear_probe.json")


def export(dest: Path, prefix: str = "", cwd: Path = Path(".")) -> list[str]:
    """Write ``dest/<name>/<file>`` for each file of ``EXPORTED`` that each experiment
    (whose name starts with ``prefix``) holds; returns the names written."""
    written = []
    for name, rev in sorted(experiment_refs(cwd).items()):
        if not name.startswith(prefix):
            continue
        for file in EXPORTED:
            blob = subprocess.run(["git", "show", f"{rev}:{file}"], cwd=cwd,
                                  capture_output=True)
            if blob.returncode:
                continue   # e.g. the baseline has no pretrain.json
            target = dest / name / file
            with atomic_file(target) as tmp:   # it makes the parent folders
                tmp.write_bytes(blob.stdout)
        written.append(name)
    return written


def read_dir(src: Path, file: str) -> dict[str, dict]:
    """{experiment name: data of metrics ``file``} from a folder written by ``export``."""
    return {d.name: json.loads((d / file).read_text())
            for d in sorted(src.iterdir()) if (d / file).is_file()}


def runs_table(results: dict[str, dict], probes: dict[str, dict] | None = None,
               linear: dict[str, dict] | None = None) -> str:
    """One row per experiment (every seed): fine-tuned kappa overall / HQ / LQ, the linear
    probe's kappa, the encoder's kNN probe after pretraining and its held-out loss / chance
    per level; what the per-cell means of the tables are made of."""
    probes, linear = probes or {}, linear or {}
    lines = ["## Every run (per seed)", "",
             "| experiment | kappa | HQ | LQ | linear probe kappa | kNN probe "
             "| held-out loss / chance, L1 / L2 / L3 |", "| --- | --- | --- | --- | --- | --- | --- |"]

    def kappa(m: dict | None, part: str) -> str:
        v = ((m or {}).get(part) or {}).get("kappa")
        return "n/a" if v is None else f"{v:.3f}"
    for name in sorted(set(results) | set(linear), key=lambda n: (cell_of(n), n)):
        r, p = results.get(name), probes.get(name)
        knn = ((p or {}).get("probe_last") or {}).get("accuracy")
        lines.append(f"| {name} | {kappa(r, 'overall')} | {kappa(r, 'high_quality')} | "
                     f"{kappa(r, 'low_quality')} | {kappa(linear.get(name), 'overall')} | "
                     f"{'n/a' if knn is None else f'{knn:.3f}'} | {_heldout(p)} |")
    return "\n".join(lines) + "\n"


@click.group(help=__doc__.split("\n\n")[0])
def cli():
    pass


@cli.command("queue", help="Queue the 13 cells behind Tables 1-3 (dvc exp run --queue), "
             "each once per seed with --seeds.")
@click.option("--seeds", default=0, show_default=True, type=click.IntRange(0, 100),
              help="Seeds per cell (0: one run per cell, named as the cell).")
@click.option("--cells", default="", help="Comma-separated cells to queue (default: all 13); "
              "'table2' for the five of Table 2; 'table2-70' / 'table2-100' for them at that "
              "low-quality ratio (t1-70-comcl, t2-70-no-spl, ..).")
@click.option("--preset", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A profile (partial params file, e.g. presets/bench.yaml) every "
                   "experiment sets before its cell's params. One that changes the data or "
                   "the detector makes every experiment re-train the detector (DVC does not "
                   "run-cache stages with uncached metrics): for a grid, queue from a branch "
                   "that ran the profile once (presets/bench.yaml says how).")
@click.option("-S", "--set", "extra", multiple=True,
              help="key=value for every experiment, after the preset's (repeatable).")
@click.option("--prefix", default="", help="Start every experiment's name with this "
              "(e.g. 'll10-' for a low-label family; render --prefix reads it).")
@click.option("--dry-run", is_flag=True, help="Print the commands only.")
def queue(seeds, cells, preset, extra, prefix, dry_run):
    from comcl.experiments.presets import check_sets, overrides
    table2 = re.fullmatch(r"table2(?:-(70|100))?", cells)
    only = tuple(at_ratio(c, table2[1] or "native") for c in TABLE2_CELLS) if table2 \
        else tuple(c for c in cells.split(",") if c)
    check_sets(extra)
    for cmd in queue_commands(seeds, only, overrides(preset) if preset else None, prefix,
                              extra):
        click.echo(" ".join(cmd))
        if not dry_run:
            subprocess.run(cmd, check=True)
    if not dry_run:
        click.echo("queued; run them with: dvc queue start -j 1   (follow: dvc queue status)")


@cli.command("export", help="Copy each local DVC experiment's metrics, per-image "
             "predictions and params into DEST/<name>/ (commit it: render --from-dir and "
             "compare read it after the experiments' refs are gone).")
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--prefix", default="", help="Only experiments whose names start with this.")
def export_cmd(dest, prefix):
    names = export(Path(dest), prefix)
    if not names:
        raise click.ClickException("no DVC experiment to export (git for-each-ref refs/exps "
                                   "is empty: experiments are local to the clone that ran them)")
    click.echo(f"exported {len(names)} experiment{'s' * (len(names) != 1)} to {dest}")


@cli.command("render", help="Render the tables from `dvc exp show --all-commits --json` "
             "(or a saved copy, or a folder written by export) as Markdown.")
@click.option("--from-json", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A saved `dvc exp show --all-commits --json` output instead of running it.")
@click.option("--from-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="A folder written by `export` (one sub-folder per experiment).")
@click.option("--claims", is_flag=True, help="Add the claims, decided from the experiments' "
              "per-image predictions (paired bootstrap over images and seeds).")
@click.option("--runs", is_flag=True, help="Add a table with every run (each seed): "
              "kappa per quality, linear probe, kNN probe, held-out loss / chance.")
@click.option("--bootstrap", default=2000, show_default=True)
@click.option("--prefix", "prefixes", multiple=True, help="Render the experiments whose names "
              "start with this (queued with queue --prefix), read as the cells they name. "
              "Repeatable: a cell is read from the first prefix that has it (e.g. "
              "--prefix e15pp24- --prefix e15- takes CoMCL from the first family and the "
              "baseline, which has no pretraining, from the second); never mixed.")
def render_cmd(from_json, from_dir, claims, runs, bootstrap, prefixes):
    if from_dir:
        found = {f: read_dir(Path(from_dir), f) for f in JSON_FILES}
    else:
        if from_json:
            data = json.loads(open(from_json).read())
        else:
            proc = subprocess.run(["dvc", "exp", "show", "--all-commits", "--json"],
                                  capture_output=True, text=True, check=True)
            data = json.loads(proc.stdout)
        found = {f: collect(data, f) for f in JSON_FILES}
    names = family_names(found["metrics/eval.json"], prefixes or ("",))

    def family(f: str) -> dict:   # {cell-seed name: data} of the prefixes' experiments
        return {short: found[f][full] for short, full in names.items() if full in found[f]}
    results = family("metrics/eval.json")
    sys.stdout.write(render(results, family("metrics/pretrain.json"),
                            family("metrics/linear_probe.json")))
    if runs:
        sys.stdout.write("\n" + runs_table(results, family("metrics/pretrain.json"),
                                           family("metrics/linear_probe.json")))
    if claims:
        from comcl.common.errors import DataError
        from comcl.experiments import claims as claims_mod
        from comcl.experiments.compare import PROTOCOLS, load_run
        for protocol, title in (("finetune", "full fine-tuning"),
                                ("linear_probe", "linear probe")):
            loaded = {}
            for name in results:
                source = str(Path(from_dir) / names[name]) if from_dir else names[name]
                try:   # experiments run before the stage wrote predictions are left out
                    loaded[name] = load_run(source, file=PROTOCOLS[protocol])
                except DataError as exc:
                    print(f"claims ({protocol}): left out {name}: {exc}", file=sys.stderr)
            sys.stdout.write(f"\n## The paper's claims, {title} (paired bootstrap over test "
                             "images and, where a cell has several, its seeds)\n\n"
                             + claims_mod.markdown(claims_mod.decide(group(loaded), bootstrap)))


if __name__ == "__main__":
    cli()
