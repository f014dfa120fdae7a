"""One typed error with a one-line message; CLIs print it as-is."""


class LabError(Exception):
    """Something in the local data plane failed; the message is one line for a person."""


class LabPrerequisiteError(LabError):
    """This machine can't run the local target (not root, a program missing)."""
