"""Click options shared by the stage commands (same names, defaults and help everywhere)."""
import functools

import click

from comcl.common import paths
from comcl.common.errors import ParamError, PipelineError

params_option = click.option(
    "--params", "params_path", default=paths.PARAMS, show_default=True,
    type=click.Path(dir_okay=False), help="Parameter file.")
splits_option = click.option(
    "--splits", default=paths.SPLITS, show_default=True,
    type=click.Path(file_okay=False, exists=True), help="Output of `split`.")
degraded_option = click.option(
    "--degraded", default=paths.DEGRADED, show_default=True,
    type=click.Path(file_okay=False, exists=True), help="Output of `degrade`.")
workers_option = click.option(
    "--workers", type=click.IntRange(min=1), default=None,
    help="Worker processes [default: all cores].")
device_option = click.option(
    "--device", type=click.Choice(["auto", "cpu"]), default="auto", show_default=True,
    help="auto: CUDA when available.")


def one_line_errors(fn):
    """Print the library's ``PipelineError`` as one ``Error: ...`` line, exit status 1.

    A ``ParamError`` raised where the params file was not known names the one this
    command read (``--params``)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PipelineError as exc:
            if isinstance(exc, ParamError):
                exc = exc.with_source(kwargs.get("params_path") or paths.PARAMS)
            raise click.ClickException(str(exc)) from None
    return wrapper
