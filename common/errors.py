"""The one error type whose message is a single line a CLI can print as-is.

It lives on the bottom floor so that what refuses a file here (files.py) is an EnvError too: the
CLI's and the plugin's `except EnvError` turn it into one line and a usage or could-not-check exit,
wherever it was raised. awsenv/errors.py adds what counts as an API failure.
"""
from __future__ import annotations

from .display import LINE, for_terminal


class EnvError(Exception):
    """A user-facing failure: bad input, missing credentials, an environment not found, a folder
    that isn't ours."""

    def __str__(self) -> str:
        # Messages quote outside text (names, the API's own error text, paths): one line, nothing
        # that steers a terminal.
        return for_terminal(" ".join(str(self.args[0]).split()), LINE) if self.args else "error"
