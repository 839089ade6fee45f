"""User-facing errors: a clear one-line message naming the file, column or key at fault.

The library raises these plain exceptions (never a bare traceback from deep inside);
the stage layer (``stages/options.py: one_line_errors``) prints them as
``Error: <message>`` and exits with status 1.
"""
from __future__ import annotations


class PipelineError(Exception):
    """Bad input or a bad parameter; the message names what is wrong and where."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ParamError(PipelineError):
    """A parameter is missing or out of range; the message names the params file and key.

    ``source`` is the params file actually read (``--params other.yaml``); raised where
    it is not known, the stage layer fills it in (``with_source``)."""

    def __init__(self, key: str, problem: str, source: str | None = None):
        super().__init__(f"{source or 'params.yaml'}: `{key}` {problem}")
        self.key = key
        self.problem = problem
        self.source = source

    def with_source(self, source: str) -> "ParamError":
        """The same error naming ``source``, unless it already names a file."""
        return self if self.source else ParamError(self.key, self.problem, str(source))

    def __reduce__(self):  # picklable across process-pool workers
        return (ParamError, (self.key, self.problem, self.source))


class DataError(PipelineError):
    """An input file is unreadable or inconsistent; the message names the file."""


class CorruptImageError(DataError):
    """An image file that cannot be decoded, or decodes only with damaged data
    (``data.on_corrupt: skip`` leaves such files out)."""
