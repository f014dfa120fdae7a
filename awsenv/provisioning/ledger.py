"""A run ledger on disk: every ID is written the moment AWS returns it, before anything else
happens, and every `up` writes its RunId before it creates anything, so `down` can clean up
after a crash at any point even if a tag filter misses something.

The ledger is what makes a resource ours by proof (teardown.py): named here, or tagged with a RunId
named here. It is still checked against the resource's own tags before anything is deleted, and
it lives in a state folder that is ours (common/files.py: no other user can write it, and it is
never reached through a link); unreadable lines are skipped, so a corrupt ledger can't stop `down`.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from common import files

from .kinds import BY_NAME

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_RUN = re.compile(r"[0-9a-f]{6,64}")


class Ledger:
    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / "ledger.jsonl"

    def record(self, kind: str, resource_id: str) -> None:
        files.append_private(self.path, json.dumps({"kind": kind, "id": resource_id}) + "\n")

    def record_run(self, run_id: str) -> None:
        """An `up` is about to create: whatever carries its RunId tag is ours (an answer lost to an
        interrupt or a 5xx never reached record(), but the resource carries the tag)."""
        files.append_private(self.path, json.dumps({"run": run_id}) + "\n")

    def _lines(self) -> list[dict]:
        text = files.read_text(self.path)
        out = []
        for line in (text or "").splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue   # a line cut short by a crash, or not ours at all
            if isinstance(e, dict):
                out.append(e)
        return out

    def entries(self) -> list[tuple[str, str]]:
        return [(e["kind"], e["id"]) for e in self._lines()
                if e.get("kind") in BY_NAME and isinstance(e.get("id"), str) and _ID.fullmatch(e["id"])]

    def runs(self) -> set[str]:
        return {e["run"] for e in self._lines() if isinstance(e.get("run"), str) and _RUN.fullmatch(e["run"])}

    def clear(self) -> None:
        files.remove(self.path)
