"""Bounded waits that say what they wait for and show progress (Terratest's habit).

One loop (wait_for) serves every wait: each names what it waits for, has a deadline, shows
progress every 15 s, and ends either done, failed at once, or timed out. boto3's waiters hold the
acceptors (what counts as done, what counts as failed); they are stepped one attempt at a time
through that loop, several at once where the waits overlap (a NAT gateway and the instances).
"""
from __future__ import annotations

import time
from collections.abc import Callable

from botocore.exceptions import WaiterError

from .errors import EnvError

NOTE_EVERY = 15.0


def wait_for(pending: dict[str, tuple[Callable[[], object], float]], progress=print, delay: float = 1.0,
             first_delay: float | None = None) -> dict:
    """Poll every check in `pending` ({what: (check, timeout)}) until each returns a truthy value.

    A check raising EnvError fails the wait at once; any other exception counts as "not yet" and
    is named if the wait times out. Returns {what: value}. With `first_delay`, the waits between
    polls back off: first_delay, doubling, at most `delay` (a state that changes in a second is seen
    in a second, one that takes minutes costs a call every `delay` seconds); else every `delay`.
    """
    pending = dict(pending)
    done: dict[str, object] = {}
    last_error: dict[str, Exception] = {}
    start = time.monotonic()
    last_note = 0.0
    interval = delay if first_delay is None else min(first_delay, delay)
    while True:
        for what, (check, timeout) in list(pending.items()):
            try:
                value = check()
            except EnvError:
                raise
            except Exception as exc:  # noqa: BLE001 - reported if the wait times out
                value, last_error[what] = None, exc
            if value:
                done[what] = value
                del pending[what]
                if time.monotonic() - start > 2:
                    progress(f"  {what}: done after {time.monotonic() - start:.0f}s")
            elif time.monotonic() - start > timeout:
                detail = f" (last error: {last_error[what]})" if what in last_error else ""
                raise EnvError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        if not pending:
            return done
        elapsed = time.monotonic() - start
        if elapsed - last_note >= NOTE_EVERY:
            longest = max(t for _, t in pending.values())
            progress(f"  waiting for {', '.join(pending)} ({elapsed:.0f}s of at most {longest:.0f}s)")
            last_note = elapsed
        time.sleep(interval)
        interval = min(delay, interval * 2)


def waiter_step(client, waiter_name: str, what: str, **kwargs) -> Callable[[], bool]:
    """One attempt of a boto3 waiter: True when done, False when not yet, EnvError when it failed.

    Only the waiter's "retry" state is "not yet": a failure acceptor (terminal failure) or an error
    no acceptor matches (UnauthorizedOperation, a malformed ID) ends the wait at once rather than
    polling until the deadline while a NAT gateway bills.
    """
    waiter = client.get_waiter(waiter_name)

    def step() -> bool:
        try:
            waiter.wait(WaiterConfig={"Delay": 0, "MaxAttempts": 1}, **kwargs)
            return True
        except WaiterError as exc:
            if "Max attempts exceeded" in str(exc):
                return False
            error = exc.last_response.get("Error", {}) if isinstance(exc.last_response, dict) else {}
            raise EnvError(f"{what}: failed ({error.get('Code', '')}: {error.get('Message') or exc})") from None
    return step


def wait_with_waiter(client, waiter_name: str, what: str, timeout: float, progress=print,
                     delay: float = 5.0, first_delay: float | None = None, **kwargs) -> None:
    wait_for({what: (waiter_step(client, waiter_name, what, **kwargs), timeout)}, progress, delay, first_delay)


def wait_all(client, waits: list[tuple[str, str, float, dict]], progress=print, delay: float = 5.0,
             first_delay: float | None = None) -> None:
    """Several waiters at once ((waiter_name, what, timeout, kwargs) each): the longest sets the pace."""
    wait_for({what: (waiter_step(client, name, what, **kwargs), timeout) for name, what, timeout, kwargs in waits},
             progress, delay, first_delay)


def wait_until(predicate: Callable[[], object], what: str, timeout: float, progress=print, delay: float = 1.0,
               first_delay: float | None = None):
    """Poll predicate() until it returns a truthy value; that value is returned."""
    return wait_for({what: (predicate, timeout)}, progress, delay, first_delay)[what]


def api_check(read: Callable[[], object], what: str, not_yet_codes: frozenset[str] = frozenset()) -> Callable[[], object]:
    """A check for wait_for from one API read: its value is the answer; an API error whose code is in
    `not_yet_codes` is "not yet" (a just-created ID that hasn't propagated); any other API error
    fails the wait at once, as a waiter's does (never polled until the deadline)."""
    from botocore.exceptions import ClientError

    def check():
        try:
            return read()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") in not_yet_codes:
                return None
            raise EnvError(f"{what}: failed ({error.get('Code', '')}: {error.get('Message') or exc})") from None
    return check
