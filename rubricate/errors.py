"""The few exceptions meant for users. The CLI prints them without a traceback.

Each carries a message and an optional hint, and maps to an exit code, so scripts can tell a usage
mistake from bad input from a run that failed part-way.
"""

from __future__ import annotations

EXIT_INPUT = 1  # bad input: a malformed line, a missing field (also the `--on-error fail` exit)
EXIT_USAGE = 2  # bad command line: click's own code for usage errors
EXIT_FAILURE = 3  # the run went through but some work failed (a model call, a comparison)
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


class RubricateError(Exception):
    """An error a user can act on: a message, a hint, an exit code."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(RubricateError):
    """Options that contradict each other or name something that does not exist."""

    exit_code = EXIT_USAGE


class InputError(RubricateError):
    """A record that cannot be read or mapped. `where` is `FILE:LINE` (or `FILE:row N`)."""

    exit_code = EXIT_INPUT

    def __init__(self, message: str, hint: str | None = None, *, where: str | None = None,
                 field: str | None = None, record_id: str | None = None):
        self.where = where
        self.field = field
        self.record_id = record_id
        prefix = f"{where}: " if where else ""
        ident = f" (id {record_id})" if record_id else ""
        super().__init__(f"{prefix}{message}{ident}", hint)
        self.reason = message
