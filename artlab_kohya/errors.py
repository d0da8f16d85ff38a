"""The one error type the command line turns into output: its lines, then its exit status.

Library code raises an `ArtlabError` subclass with a message meant for the user (no traceback is
shown); the CLI's entry point prints `lines()` to stderr and exits with `exit_code`. A spec error
exits 2 and lists every located issue; everything else that stops a command exits 1.
"""

from __future__ import annotations

SPEC_ERROR = 2


class ArtlabError(Exception):
    """A failure meant for the user, one line unless a subclass says more."""

    exit_code = 1

    def lines(self) -> list[str]:
        return [f"error: {self}"]


class InputError(ArtlabError):
    """Input the command cannot use (an unknown field name, a bad value): exit 2, like a spec error."""

    exit_code = SPEC_ERROR
