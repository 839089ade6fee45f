"""Real vs synthetic image quality: the table behind ``degrade.severity``'s defaults.

    python -m comcl.experiments.quality_table --eyeq ../shared/fixtures/eyeq \
        --degraded data/degraded --out docs/quality.md

Measures ``comcl.data.quality_stats`` (brightness, RMS contrast, Laplacian-variance
sharpness inside the FOV, at the stored 512 px FOV crop) on real EyeQ photographs by
their quality label (Good / Usable / Reject) and on the synthetic high- and low-quality
images of a ``degraded`` store, and writes a Markdown table (median [min, max] per group).
"""
from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from comcl.common import manifest, paths
from comcl.data import fundus_fov
from comcl.data.quality_stats import STATS, image_stats
from comcl.data.source_eyeq import read_labels, read_photo
from comcl.imaging.imagestore import ImageStore

EYEQ_NAMES = {0: "EyeQ Good", 1: "EyeQ Usable", 2: "EyeQ Reject"}


def eyeq_rows(folder: Path, size: int = 512) -> list[dict]:
    """Stats of every labelled image in ``folder/images`` (labels from its CSVs)."""
    labels = pd.concat([read_labels(p) for p in sorted(folder.glob("Label_EyeQ_*.csv"))])
    quality = dict(zip(labels["image"], labels["quality_code"]))
    rows = []
    for path in sorted((folder / "images").iterdir()):
        if path.name not in quality:
            continue
        image, _, _ = read_photo(path, size)
        out, fov, _ = fundus_fov.preprocess(image, size)
        rows.append({"group": EYEQ_NAMES[int(quality[path.name])], "image": path.name,
                     **image_stats(out, fov)})
    return rows


def synthetic_rows(degraded: Path, per_group: int = 60) -> list[dict]:
    df = manifest.read(degraded / paths.MANIFEST)
    store = ImageStore(degraded / paths.IMAGES)
    rows = []
    for quality in ("high", "low"):
        for iid in sorted(df.loc[df["quality"] == quality, "image_id"])[:per_group]:
            rec = store.record(iid)
            rows.append({"group": f"synthetic {quality}", "image": iid,
                         **image_stats(rec.image, rec.fov)})
    return rows


def markdown(rows: list[dict]) -> str:
    t = pd.DataFrame(rows)
    lines = ["| group | images | " + " | ".join(STATS) + " |",
             "| --- | --- | " + " | ".join("---" for _ in STATS) + " |"]
    for group, g in t.groupby("group", sort=True):
        cells = [f"{g[s].median():.3g} [{g[s].min():.3g}, {g[s].max():.3g}]" for s in STATS]
        lines.append(f"| {group} | {len(g)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--eyeq", type=click.Path(file_okay=False, exists=True), required=True,
              help="Folder with Label_EyeQ_*.csv and images/.")
@click.option("--degraded", default=paths.DEGRADED, show_default=True,
              type=click.Path(file_okay=False, exists=True))
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the Markdown table here (else print it).")
def main(eyeq, degraded, out):
    text = markdown(eyeq_rows(Path(eyeq)) + synthetic_rows(Path(degraded)))
    if out:
        Path(out).write_text(text)
    click.echo(text)


if __name__ == "__main__":
    main()
