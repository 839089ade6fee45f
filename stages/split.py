"""DVC stage `split`: validation carve-out and the subsets HL, LL, HH, LH."""
import click

from comcl.common import paths
from comcl.common.params import Params
from comcl.data.split import run
from stages.options import one_line_errors, params_option


@click.command(help="""Carve a validation split out of the training images (stratified by
grade and quality; by patient when the manifest has a `group` column) and write the four
training subsets HL, LL, HH, LH plus val and test to data/splits/*.parquet; counts and
low-quality fractions to metrics/data.json. Reads params: split.""")
@params_option
@click.option("--manifest", "manifest_path", default=f"{paths.DEGRADED}/{paths.MANIFEST}",
              show_default=True, type=click.Path(dir_okay=False), help="Degraded manifest.")
@click.option("--out", default=paths.SPLITS, show_default=True,
              type=click.Path(file_okay=False), help="Output folder (replaced atomically).")
@click.option("--metrics", default=f"{paths.METRICS}/data.json", show_default=True,
              help="Counts and fractions per split ('' to skip).")
@one_line_errors
def main(params_path, manifest_path, out, metrics):
    summary = run(Params.load(params_path), manifest_path, out, metrics or None)
    click.echo(f"split: subsets {summary['subsets']}, val {summary['val']['images']}, "
               f"test {summary['test']['images']} -> {out}")


if __name__ == "__main__":
    main()
