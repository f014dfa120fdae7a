"""How many answers each rule injected, in this process and (as a JSON file) for another one."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from .rules import RULES


class Counts:
    """How many answers each rule injected (answers that differ from moto's), thread-safe.

    With `path`, every change is also written there as JSON (atomically: a temporary file renamed
    over it), so another process can read it with `read_counts(path)`: the lab's API runs in the
    lab daemon's own process.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._by_rule: dict[str, int] = {rule: 0 for rule in RULES}
        self._by_action: dict[str, dict[str, int]] = {rule: {} for rule in RULES}
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write()

    def add(self, rule: str, action: str = "", n: int = 1) -> None:
        if rule not in self._by_rule:
            raise KeyError(rule)
        with self._lock:
            self._by_rule[rule] += n
            if action:
                per = self._by_action[rule]
                per[action] = per.get(action, 0) + n
            if self.path:
                self._write()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_rule)

    def by_action(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {rule: dict(per) for rule, per in self._by_action.items()}

    @property
    def total(self) -> int:
        return sum(self.snapshot().values())

    def reset(self) -> None:
        with self._lock:
            self._by_rule = {rule: 0 for rule in RULES}
            self._by_action = {rule: {} for rule in RULES}
            if self.path:
                self._write()

    def _write(self) -> None:  # under self._lock
        if self.path is None:
            return
        data = {"pid": os.getpid(), "updated": time.time(), "by_rule": self._by_rule,
                "by_action": self._by_action, "total": sum(self._by_rule.values())}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, self.path)


def read_counts(path: str | os.PathLike) -> dict[str, int]:
    """The counts by rule a layer in another process wrote to `path` (all zero if it wrote none)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {rule: 0 for rule in RULES}
    return {rule: int(data.get("by_rule", {}).get(rule, 0)) for rule in RULES}
