"""DVC stage `prepare`: build data/prepared/ from the configured data source."""
import click

from comcl.common import paths
from comcl.common.params import Params
from comcl.data.prepare import run
from stages.options import one_line_errors, params_option, workers_option


@click.command(help="""Build data/prepared/ from `data.source` (params.yaml).

The embedded default, `synthetic`, draws fundus-like images with known lesions (DR
grade 0-4 from the lesion load, about a third natively low quality) and an
IDRiD-like mask-annotated auxiliary set for the lesion detector. Writes PNG shards,
manifest.parquet, dataset.json and aux/. Reads params: data, synthetic.""")
@params_option
@click.option("--out", default=paths.PREPARED, show_default=True,
              type=click.Path(file_okay=False), help="Output folder (replaced atomically).")
@workers_option
@one_line_errors
def main(params_path, out, workers):
    info = run(Params.load(params_path), out, workers)
    click.echo(f"prepare: {info['counts']} images from {info['source']} -> {out}")


if __name__ == "__main__":
    main()
