"""Bounded waits that say what they wait for and show progress (Terratest's habit).

boto3's waiters hold the acceptors (what counts as done, what counts as failed); we step them one
attempt at a time so a person sees progress and every wait has a deadline.
"""
from __future__ import annotations

import time

from botocore.exceptions import WaiterError

from .errors import EnvError


def wait_with_waiter(client, waiter_name: str, what: str, timeout: float, progress=print,
                     delay: float = 5.0, **kwargs) -> None:
    waiter = client.get_waiter(waiter_name)
    start = time.monotonic()
    last_note = 0.0
    while True:
        try:
            waiter.wait(WaiterConfig={"Delay": 1, "MaxAttempts": 1}, **kwargs)
            if time.monotonic() - start > 2:
                progress(f"  {what}: done after {time.monotonic() - start:.0f}s")
            return
        except WaiterError as exc:
            if "terminal failure" in str(exc):
                raise EnvError(f"{what}: failed ({exc.last_response.get('Error', {}).get('Message', exc)})") from None
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            raise EnvError(f"timed out after {timeout:.0f}s waiting for {what}")
        if elapsed - last_note >= 15 or last_note == 0:
            progress(f"  waiting for {what} ({elapsed:.0f}s of at most {timeout:.0f}s)")
            last_note = elapsed or 0.001
        time.sleep(delay)


def wait_all(client, waits: list[tuple[str, str, float, dict]], progress=print, delay: float = 5.0) -> None:
    """Wait for several things at once: (waiter_name, what, timeout, waiter kwargs) each.

    One loop polls every pending waiter in turn, so slow resources (a NAT gateway, minutes on AWS)
    and fast ones (instances) progress together: the wait is the longest of them, not their sum.
    """
    pending = {what: (client.get_waiter(name), timeout, kwargs) for name, what, timeout, kwargs in waits}
    start = time.monotonic()
    last_note = 0.0
    while True:
        for what, (waiter, timeout, kwargs) in list(pending.items()):
            try:
                waiter.wait(WaiterConfig={"Delay": 1, "MaxAttempts": 1}, **kwargs)
            except WaiterError as exc:
                if "terminal failure" in str(exc):
                    raise EnvError(f"{what}: failed "
                                   f"({exc.last_response.get('Error', {}).get('Message', exc)})") from None
                if time.monotonic() - start > timeout:
                    raise EnvError(f"timed out after {timeout:.0f}s waiting for {what}") from None
                continue
            del pending[what]
            if time.monotonic() - start > 2:
                progress(f"  {what}: done after {time.monotonic() - start:.0f}s")
        if not pending:
            return
        elapsed = time.monotonic() - start
        if elapsed - last_note >= 15 or last_note == 0:
            progress(f"  waiting for {', '.join(pending)} ({elapsed:.0f}s; at most "
                     f"{max(t for _, t, _ in pending.values()):.0f}s)")
            last_note = elapsed or 0.001
        time.sleep(delay)


def wait_until(predicate, what: str, timeout: float, progress=print, delay: float = 1.0):
    """Poll predicate() until it returns a truthy value; that value is returned."""
    start = time.monotonic()
    last_note = 0.0
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - the last error is reported on timeout
            last_error = exc
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            detail = f" (last error: {last_error})" if last_error else ""
            raise EnvError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        if elapsed - last_note >= 15:
            progress(f"  waiting for {what} ({elapsed:.0f}s of at most {timeout:.0f}s)")
            last_note = elapsed
        time.sleep(delay)
