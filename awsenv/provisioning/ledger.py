"""A run ledger on disk: every ID is written the moment AWS returns it, before anything else
happens, so `down` can clean up after a crash at any point even if a tag filter misses it.

The ledger is only a hint: teardown looks every entry up and deletes it only if the resource's
own tags say it belongs to the environment. A corrupt or hostile ledger can't make it delete
anything else, and can't stop `down` (unreadable lines are skipped).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .kinds import BY_NAME

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


class Ledger:
    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / "ledger.jsonl"

    def record(self, kind: str, resource_id: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps({"kind": kind, "id": resource_id}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def entries(self) -> list[tuple[str, str]]:
        try:
            lines = self.path.read_bytes().decode("utf-8", errors="replace").splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            try:
                e = json.loads(line)
            except ValueError:
                continue   # a line cut short by a crash, or not ours at all
            if (isinstance(e, dict) and e.get("kind") in BY_NAME and isinstance(e.get("id"), str)
                    and _ID.fullmatch(e["id"])):
                out.append((e["kind"], e["id"]))
        return out

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
