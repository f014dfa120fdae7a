"""The two outcomes of a check that are neither "holds" nor "violated".

A check raises these (or a fixture or probe raises them for it); the pytest plugin turns them into
skips whose reason starts with a prefix that junit, the report and the exit code all recognise.
Kept apart from EnvError on purpose: "could not look" must never read as "out of compliance".
"""
from __future__ import annotations

NOT_CHECKED = "not checked: "
NOT_APPLICABLE = "not applicable: "


class _Undecided(Exception):
    def __str__(self) -> str:
        return " ".join(str(self.args[0]).split()) if self.args else "no reason given"


class NotChecked(_Undecided):
    """The check could not look (no route to the host, no key, a vantage point that reaches nothing):
    no verdict on the environment. The message says why, in one line."""


class NotApplicable(_Undecided):
    """The check does not apply here (a target without hosts or without that vantage point, the
    other stage): it decides nothing."""
