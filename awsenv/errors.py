"""One error type whose message is a single line a CLI can print as-is."""


class EnvError(Exception):
    """A user-facing failure: bad input, missing credentials, an environment not found."""

    def __str__(self) -> str:
        return " ".join(str(self.args[0]).split()) if self.args else "error"


class NotCompliant(EnvError):
    """The environment was read but does not match what was asked for (e.g. selector matched two)."""
