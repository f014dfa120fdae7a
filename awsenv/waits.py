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
