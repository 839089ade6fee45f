"""Pretraining curves of several runs on one figure: held-out loss / chance per level and
the kNN probe's balanced accuracy, against the training step.

    python -m comcl.experiments.pretrain_curves --run CoMCL=dvclive/pretrain \
        --run "w/o SPL=/tmp/nospl/live" --run SimCLR=/tmp/simclr/live --out docs/figures/x.png

Reads the dvclive folders' ``plots/metrics/heldout/ratio_<level>.tsv`` and
``plots/metrics/probe/*.tsv`` (what ``pretrain`` logs at every probe), or a run's
``probes.json`` (every probe, as ``scripts/pretrain_variants.py`` writes it; no dvclive). The same curves
are in ``dvc plots`` (dvc.yaml's ``pretrain_heldout`` and ``pretrain_probe``), for
comparing DVC experiments.
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

PANELS = [("heldout/ratio_l1", "L1 quality: held-out loss / chance"),
          ("heldout/ratio_l2", "L2 lesion: held-out loss / chance"),
          ("heldout/ratio_l3", "L3 LQ lesion: held-out loss / chance"),
          ("probe/knn_balanced_accuracy", "kNN lesion vs healthy (balanced acc.)"),
          ("probe/knn_lq_balanced_accuracy", "kNN, low-quality patches only"),
          ("probe/knn_lesion_vs_lq_healthy", "kNN lesion vs LQ healthy")]


def read_tsv(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    if not path.exists():
        return None
    data = np.loadtxt(path, skiprows=1, usecols=(0, 1), ndmin=2)
    return data[:, 0], data[:, 1]


JSON_KEYS = {"probe/knn_balanced_accuracy": "balanced_accuracy",
             "probe/knn_lq_balanced_accuracy": "lq_balanced_accuracy",
             "probe/knn_lesion_vs_lq_healthy": "lesion_vs_lq_healthy"}


def read_probes(path: Path, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, values) of one panel from a ``probes.json`` list of probe records."""
    import json
    rows = json.loads(path.read_text())
    if key.startswith("heldout/"):
        level = key.split("_")[-1]
        pts = [(r["step"], r["heldout"][level]["ratio"]) for r in rows
               if level in r.get("heldout", {})]
    else:
        pts = [(r["step"], r[JSON_KEYS[key]]) for r in rows if JSON_KEYS[key] in r]
    return (np.array([p[0] for p in pts]), np.array([p[1] for p in pts])) if pts else None


def source(path: Path) -> Path:
    """A run's curves: ``probes.json`` itself, a folder holding one (``pretrain_variants``'
    output), or a dvclive folder."""
    if path.is_dir() and not (path / "plots").is_dir() and (path / "probes.json").is_file():
        return path / "probes.json"
    return path


def curve(live: Path, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    return (read_probes(live, key) if live.suffix == ".json"
            else read_tsv(live / "plots" / "metrics" / f"{key}.tsv"))


def draw(runs: dict[str, Path], out: Path) -> None:
    """One figure, a panel per curve, a line per run. A run with no curve at all is an
    error naming it (a wrong path would otherwise leave its line silently missing)."""
    runs = {name: source(path) for name, path in runs.items()}
    for name, live in runs.items():
        if not any(curve(live, key) is not None for key, _ in PANELS):
            raise click.ClickException(
                f"--run {name}={live}: no curve there (expected a dvclive folder with "
                "plots/metrics/heldout/*.tsv or probe/*.tsv, or a probes.json)")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7), constrained_layout=True)
    for ax, (key, title) in zip(axes.flat, PANELS):
        for name, live in runs.items():
            xy = curve(live, key)
            if xy is not None:
                ax.plot(*xy, marker="o", ms=3, label=name)
        ref, ref_label = (1.0, "chance") if key.startswith("heldout") else (0.5, "chance")
        ax.axhline(ref, color="grey", ls="--", lw=1, label=ref_label)
        if key.startswith("heldout"):
            ax.axhline(0.7, color="tab:red", ls=":", lw=1, label="target 0.7")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Pretraining on held-out patches (probe images never trained on)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90, metadata={"Software": None})
    plt.close(fig)


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--run", "runs", multiple=True, required=True, help="name=dvclive folder, or name=probes.json (or a folder holding one)")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
def main(runs, out):
    draw({r.split("=", 1)[0]: Path(r.split("=", 1)[1]) for r in runs}, Path(out))
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
