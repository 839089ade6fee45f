"""User-facing errors: a clear one-line message naming the file, column or key at fault.

The library raises these plain exceptions (never a bare traceback from deep inside);
the stage layer (``stages/options.py: one_line_errors``) prints them as
``Error: <message>`` and exits with status 1.
"""


class PipelineError(Exception):
    """Bad input or a bad parameter; the message names what is wrong and where."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


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
