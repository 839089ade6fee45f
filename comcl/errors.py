"""User-facing errors: a clear one-line message naming the file, column or key at fault.

Stages raise these (never a bare traceback from deep inside); click prints
``Error: <message>`` and exits with status 1.
"""
import click


class PipelineError(click.ClickException):
    """Bad input or a bad parameter; the message names what is wrong and where."""


class ParamError(PipelineError):
    """A parameter in params.yaml is missing or out of range; the message names the key."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"params.yaml: `{key}` {problem}")
        self.key = key
        self.problem = problem

    def __reduce__(self):  # picklable across process-pool workers
        return (ParamError, (self.key, self.problem))


class DataError(PipelineError):
    """An input file is unreadable or inconsistent; the message names the file."""
