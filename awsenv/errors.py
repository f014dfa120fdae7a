"""awsenv's errors: the one error type (EnvError, from common/errors.py, where the files module's
refusals derive from it too) and what counts as an API failure."""
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from common.display import LINE, for_terminal
from common.errors import EnvError

__all__ = ["API_ERRORS", "EnvError", "one_line"]

# What a call to the AWS API can end in besides an answer: an error answer (ClientError), no answer
# or a transport failure (BotoCoreError), or an answer that isn't one (ResponseParserError: invalid
# XML from an endpoint or a proxy in the way, which botocore does not derive from BotoCoreError).
# Each is "could not check" for the suite and a one-line error for provision.py, never a traceback.
API_ERRORS = (BotoCoreError, ClientError, ResponseParserError)


def one_line(exc: BaseException) -> str:
    """Any failure worth showing a user, as one line (botocore's errors included)."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        text = f"AWS API: {err.get('Code')}: {err.get('Message')}"
    elif type(exc).__module__.startswith("botocore"):
        text = f"AWS API: {str(exc)}"
    else:
        text = str(exc) or type(exc).__name__
    return for_terminal(" ".join(text.split()), LINE)
