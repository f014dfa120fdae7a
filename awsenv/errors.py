"""One error type whose message is a single line a CLI can print as-is."""


class EnvError(Exception):
    """A user-facing failure: bad input, missing credentials, an environment not found."""

    def __str__(self) -> str:
        return " ".join(str(self.args[0]).split()) if self.args else "error"


def one_line(exc: BaseException) -> str:
    """Any failure worth showing a user, as one line (botocore's errors included)."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"AWS API: {err.get('Code')}: {err.get('Message')}"
    if type(exc).__module__.startswith("botocore"):
        return f"AWS API: {' '.join(str(exc).split())}"
    return " ".join(str(exc).split()) or type(exc).__name__
